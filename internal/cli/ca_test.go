package cli

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	out, err := run(t, "ca", "init", "--dir", dir, "--suite", "nist", "--brand", "TestBrand", "--host", "ca.example", "--host", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "nist: root certificate nist/root.pem, SHA-256 ") || strings.Contains(out, "pq") {
		t.Errorf("init output %q", out)
	}

	t.Run("list shows every issued certificate as valid", func(t *testing.T) {
		out, err := run(t, "ca", "list", "--dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1+11 || !strings.HasPrefix(lines[0], "SUITE") {
			t.Fatalf("list:\n%s", out)
		}
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "nist ") || !strings.Contains(l, " valid ") || !strings.Contains(l, "O=TestBrand") {
				t.Errorf("line %q", l)
			}
		}
	})

	t.Run("revoke marks a certificate revoked with its reason", func(t *testing.T) {
		out, _ := run(t, "ca", "list", "--dir", dir)
		var serial string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); strings.Contains(sc.Text(), "merchant-CA signature") {
				serial = f[3] // SUITE ISSUER(2 words) SERIAL
			}
		}
		if serial == "" {
			t.Fatalf("no merchant-CA signature certificate in\n%s", out)
		}
		out, err := run(t, "ca", "revoke", "--dir", dir, "--serial", serial, "--reason", "keyCompromise")
		if err != nil || out != "revoked "+serial+" (keyCompromise)\n" {
			t.Fatalf("revoke: %q, %v", out, err)
		}
		out, _ = run(t, "ca", "list", "--dir", dir)
		if !strings.Contains(out, serial) || !strings.Contains(out, "revoked (keyCompromise)") {
			t.Errorf("list after revoke:\n%s", out)
		}
		if _, err := run(t, "ca", "revoke", "--dir", dir, "--serial", serial); err == nil {
			t.Error("revoked twice")
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"ca", "init", "--dir", dir},                                         // not empty
			{"ca", "init", "--dir", t.TempDir(), "--suite", "rsa"},               // no such suite
			{"ca", "revoke", "--dir", dir, "--serial", "x"},                      // not a number
			{"ca", "revoke", "--dir", dir, "--serial", "1"},                      // no such certificate
			{"ca", "revoke", "--dir", dir, "--serial", "1", "--reason", "bored"}, // no such reason
			{"ca", "list"}, // no --dir
		} {
			if _, err := run(t, args...); err == nil || ExitCode(err) != 2 {
				t.Errorf("%q: %v", args, err)
			}
		}
	})
}

func TestCAPassphraseFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("s3cret passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "ca", "init", "--dir", dir, "--suite", "pq", "--passphrase-file", pf); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pq", "brand.key"))
	if err != nil || !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
		t.Fatalf("brand key not encrypted: %v\n%s", err, b)
	}
	if _, err := run(t, "ca", "list", "--dir", dir); err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Errorf("list without the passphrase: %v", err)
	}
	if out, err := run(t, "ca", "list", "--dir", dir, "--passphrase-file", pf); err != nil || !strings.Contains(out, "brand CA") {
		t.Errorf("list with the passphrase: %v\n%s", err, out)
	}
}
