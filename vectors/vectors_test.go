package vectors_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"testing"
	"testing/fstest"

	"github.com/setpay/setpay/vectors"
)

// TestCommittedVectors checks every committed vector: positives verify and
// re-encode, negatives are rejected by the named party with exactly the named
// code. (protocol's TestGenerateVectors checks that they do not drift from a
// fresh generation.)
func TestCommittedVectors(t *testing.T) {
	r, err := vectors.Check(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Failures {
		t.Error(f)
	}
	t.Log(r)
	if r.Passed < 200 {
		t.Errorf("only %d vectors passed", r.Passed)
	}
}

// TestEmbeddedVectorsAreTheCommittedOnes makes sure the CLI checks what is in
// this directory.
func TestEmbeddedVectorsAreTheCommittedOnes(t *testing.T) {
	a, err := vectors.Check(vectors.Committed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := vectors.Check(os.DirFS("."))
	if a.String() != b.String() {
		t.Errorf("embedded %v, directory %v", a, b)
	}
}

// mutated returns the committed files with one file changed by edit.
func mutated(t *testing.T, name string, edit func(map[string]any)) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	entries, _ := fs.Glob(os.DirFS("."), "*.json")
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		if e == name {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			edit(v)
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		fsys[e] = &fstest.MapFile{Data: b}
	}
	return fsys
}

func first(v map[string]any, list string) map[string]any {
	return v[list].([]any)[0].(map[string]any)
}

func TestCheckerFailsWhatItShould(t *testing.T) {
	cases := []struct {
		name, file string
		edit       func(map[string]any)
	}{
		{"a negative vector expecting another code", "negative-pq.json", func(v map[string]any) {
			first(v, "vectors")["expect"].(map[string]any)["code"] = 47.0 // the first vector expects 30
		}},
		{"a negative vector whose input is a valid message", "negative-nist.json", func(v map[string]any) {
			neg := first(v, "vectors") // a PInitRes check: give it the context's own valid flow
			neg["check"] = "Parse"
			neg["input"] = neg["context"].(map[string]any)["pinitreq"]
		}},
		{"a construction vector with a wrong output", "construction-pq.json", func(v map[string]any) {
			for _, c := range v["vectors"].([]any) {
				c := c.(map[string]any)
				if c["name"] == "HOD" {
					c["output"].(map[string]any)["hod"] = "00" + c["output"].(map[string]any)["hod"].(string)[2:]
				}
			}
		}},
		{"a message vector with a wrong decoded field", "message-nist.json", func(v map[string]any) {
			first(v, "vectors")["decoded"].(map[string]any)["Header"].(map[string]any)["SWIdent"] = "other"
		}},
		{"a transcript with a step replaced", "transcript-pq.json", func(v map[string]any) {
			tr := first(v, "transcripts")
			steps := tr["steps"].([]any)
			steps[5], steps[1] = steps[1], steps[5]
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := vectors.Check(mutated(t, c.file, c.edit))
			if err != nil {
				t.Fatal(err)
			}
			if r.Failed != 1 {
				t.Fatalf("%v; failures: %v", r, r.Failures)
			}
		})
	}
	t.Run("a file of another schema is refused", func(t *testing.T) {
		if _, err := vectors.Check(mutated(t, "pki-pq.json", func(v map[string]any) { v["schema"] = "setpay-vectors/2" })); err == nil {
			t.Fatal("accepted")
		}
	})
}
