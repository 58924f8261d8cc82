package vectors_test

import (
	"os"
	"testing"
	"testing/fstest"

	"github.com/setpay/setpay/vectors"
)

// FuzzCheck feeds arbitrary vector files to the checker, beside the real
// PKI files: it must report or refuse them, never panic.
func FuzzCheck(f *testing.F) {
	pq, err := os.ReadFile("pki-pq.json")
	if err != nil {
		f.Fatal(err)
	}
	nist, err := os.ReadFile("pki-nist.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"negative-encoding.json", "construction-pq.json", "construction-nist.json"} {
		b, err := os.ReadFile(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"schema":"setpay-vectors/1","kind":"negative","suite":"pq","vectors":[{"check":"CapReq","expect":{"code":1,"item":5},"input":"00"}]}`))
	f.Add([]byte(`{"schema":"setpay-vectors/1","kind":"transcript","suite":"nist","transcripts":[{"steps":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := fstest.MapFS{
			"pki-pq.json":   {Data: pq},
			"pki-nist.json": {Data: nist},
			"x.json":        {Data: b},
		}
		r, err := vectors.Check(fsys)
		if err == nil && r.Passed+r.Failed == 0 {
			t.Fatal("no error and nothing checked")
		}
	})
}
