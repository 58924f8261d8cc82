package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/setpay/setpay/internal/lesson"
)

// TestDemoAttacks: each attack exits 0 and names the party, the check and
// the code that caught it; list lists them all.
func TestDemoAttacks(t *testing.T) {
	out, err := run(t, "demo", "--attack", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range lesson.Attacks() {
		if !strings.Contains(out, a.Name) {
			t.Errorf("attack list lacks %s", a.Name)
		}
		out, err := run(t, "demo", "--attack", a.Name, "--no-color")
		if err != nil {
			t.Errorf("%s: %v", a.Name, err)
			continue
		}
		flat := strings.Join(strings.Fields(out), " ")
		want := []string{"CAUGHT", "by the " + string(a.Party), a.Check, "code " + itoa(int(a.Code))}
		for _, w := range want {
			if !strings.Contains(flat, w) {
				t.Errorf("%s: output lacks %q:\n%s", a.Name, w, out)
			}
		}
	}
	if _, err := run(t, "demo", "--attack", "no-such"); err == nil {
		t.Error("an unknown attack succeeded")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestDemoStep: --step pauses before each message; Enter shows it, q
// quits; every line fits 80 columns in plain text.
func TestDemoStep(t *testing.T) {
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("\n\nq\n")
	out, err := run(t, "demo", "--step", "--no-color", "--seed", "3")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "[Enter: show, q: quit]") != 3 || !strings.Contains(out, "stopped before step 3") {
		t.Errorf("prompts and stop:\n%s", out)
	}
	if !strings.Contains(out, "== step 2/12  PInitRes") || strings.Contains(out, "== step 3/12") {
		t.Error("the steps shown are not the first two")
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("--no-color output has ANSI escapes")
	}

	stdin = strings.NewReader(strings.Repeat("\n", 12))
	out, err = run(t, "demo", "--step", "--no-color")
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(out, "\n") {
		// The prompt line is the step's announcement and the keys; every
		// other line fits the width.
		if n := utf8.RuneCountInString(l); n > lesson.Width && !strings.Contains(l, "[Enter") {
			t.Errorf("line %d is %d columns: %q", i+1, n, l)
		}
	}
	for _, w := range []string{"APPROVED", "checks by the gateway", "reads panData", "never receives this message", "[ciphertext,"} {
		if !strings.Contains(out, w) {
			t.Errorf("the walkthrough lacks %q", w)
		}
	}
}

// TestDemoExports: --trace, --mermaid and --der-dir write what they
// promise, and the same seed writes the same bytes.
func TestDemoExports(t *testing.T) {
	dir := t.TempDir()
	tr1, tr2 := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	mm, ders := filepath.Join(dir, "run.md"), filepath.Join(dir, "der")
	if _, err := run(t, "demo", "--seed", "9", "--trace", tr1, "--mermaid", mm, "--der-dir", ders); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "demo", "--seed", "9", "--trace", tr2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(tr1)
	b, _ := os.ReadFile(tr2)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("two runs with seed 9 wrote different traces")
	}
	var tr lesson.Trace
	if err := json.Unmarshal(a, &tr); err != nil || tr.Seed != 9 || len(tr.Steps) != 12 {
		t.Fatalf("trace: %v, seed %d, %d steps", err, tr.Seed, len(tr.Steps))
	}
	m, _ := os.ReadFile(mm)
	if !bytes.Contains(m, []byte("sequenceDiagram")) || !bytes.Contains(m, []byte("C->>M: 3. PReq")) {
		t.Errorf("mermaid:\n%s", m)
	}
	preq, err := os.ReadFile(filepath.Join(ders, "03-PReq.der"))
	if err != nil || !bytes.Equal(preq, tr.Steps[2].DER) {
		t.Fatalf("03-PReq.der: %v", err)
	}
	if _, err := exec.LookPath("openssl"); err == nil || os.Getenv("CI") == "true" {
		out, err := exec.Command("openssl", "asn1parse", "-inform", "DER", "-in", filepath.Join(ders, "03-PReq.der")).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("SEQUENCE")) {
			t.Errorf("openssl asn1parse: %v\n%s", err, out)
		}
	}
	if _, err := run(t, "demo", "--seed", "1", "--data-dir", dir); err == nil {
		t.Error("--data-dir with the walkthrough was accepted")
	}
}
