package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/setpay/setpay/protocol"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), append([]string{"setpay"}, args...), &out)
	return out.String(), err
}

func TestCodesListsEveryCode(t *testing.T) {
	out, err := run(t, "codes")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range protocol.Codes() {
		if !strings.Contains(out, c.String()) {
			t.Errorf("codes output lacks %d %q", c, c.String())
		}
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	req := &protocol.PInitReq{LIDC: []byte("C-1"), Language: "en", BrandID: "TestBrand", BIN: "411111", Suites: []protocol.Suite{protocol.SuitePQ}}
	good := protocol.NewWrapper(req, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), nil, nil).Marshal()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("a valid message is described", func(t *testing.T) {
		out, err := run(t, "parse", write("ok.der", good))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "PInitReq: ") || !strings.Contains(out, "2026-11-01T12:00:00Z") {
			t.Errorf("output %q", out)
		}
	})
	t.Run("a message with a trailing byte is rejected with exit code 1", func(t *testing.T) {
		_, err := run(t, "parse", write("bad.der", append(good, 0)))
		if err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), "code 1)") {
			t.Fatalf("got %v (exit %d)", err, ExitCode(err))
		}
	})
	t.Run("a missing argument is a usage error with exit code 2", func(t *testing.T) {
		_, err := run(t, "parse")
		if err == nil || ExitCode(err) != 2 {
			t.Fatalf("got %v", err)
		}
	})
}

func TestVectorsVerify(t *testing.T) {
	out, err := run(t, "vectors", "verify")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, " passed, 0 failed\n") {
		t.Errorf("output %q", out)
	}
	out, err = run(t, "vectors", "verify", "../../vectors")
	if err != nil || !strings.Contains(out, "0 failed") {
		t.Errorf("directory: %q, %v", out, err)
	}
	if _, err := run(t, "vectors", "verify", t.TempDir()); err == nil || ExitCode(err) != 1 {
		t.Errorf("an empty directory: %v", err)
	}
}
