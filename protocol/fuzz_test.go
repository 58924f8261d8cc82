package protocol_test

import (
	"bytes"
	"testing"

	. "github.com/setpay/setpay/protocol"
)

// One fuzz target per parser, in the manner of age's FuzzMalleability
// (filippo.io/age internal/format): the parser never panics, fails only with
// an error carrying a protocol Code, and accepts only inputs that are the
// canonical encoding of what it returns, so that no two encodings of a
// message exist. Seeds are the corpus of encoding_test.go: real messages,
// sealed plaintexts and certificates from purchases in both suites, with and
// without a cardholder certificate.

func FuzzParse(f *testing.F) {
	for _, s := range wireCorpusFor(f).messages {
		f.Add(s.der)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := Parse(b)
		if err != nil {
			if w != nil {
				t.Fatal("Parse returned a message and an error")
			}
			if CodeOf(err) == 0 {
				t.Fatalf("error without a Code: %v", err)
			}
			return
		}
		if !bytes.Equal(w.Marshal(), b) {
			t.Fatalf("accepted an input that is not its own encoding:\n in  %x\n out %x", b, w.Marshal())
		}
		if w.Header.Version != Version || w.Message == nil {
			t.Fatalf("accepted version %d, message %v", w.Header.Version, w.Message)
		}
	})
}

// fuzzDecoder runs the malleability property on one strict decoder, seeded
// with the corpus encodings of that structure.
func fuzzDecoder[T any, PT interface {
	*T
	Structure
}](f *testing.F, name string, decode func([]byte) (*T, error)) {
	seeds := wireCorpusFor(f).inner[name]
	if len(seeds) == 0 {
		f.Fatalf("no %s in the corpus", name)
	}
	for _, s := range seeds {
		f.Add(s.der)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			if v != nil {
				t.Fatalf("%s decoder returned a value and an error", name)
			}
			if CodeOf(err) == 0 {
				t.Fatalf("error without a Code: %v", err)
			}
			return
		}
		if out := Encode(PT(v)); !bytes.Equal(out, b) {
			t.Fatalf("accepted a %s that is not its own encoding:\n in  %x\n out %x", name, b, out)
		}
	})
}

func FuzzPIContent(f *testing.F)     { fuzzDecoder(f, "PIContent", Decode[PIContent]) }
func FuzzPIData(f *testing.F)        { fuzzDecoder(f, "PIData", Decode[PIData]) }
func FuzzOIData(f *testing.F)        { fuzzDecoder(f, "OIData", Decode[OIData]) }
func FuzzAuthReqSigned(f *testing.F) { fuzzDecoder(f, "AuthReqSigned", Decode[AuthReqSigned]) }
func FuzzAuthResSigned(f *testing.F) { fuzzDecoder(f, "AuthResSigned", Decode[AuthResSigned]) }
func FuzzCapReqSigned(f *testing.F)  { fuzzDecoder(f, "CapReqSigned", Decode[CapReqSigned]) }
func FuzzCapResSigned(f *testing.F)  { fuzzDecoder(f, "CapResSigned", Decode[CapResSigned]) }
func FuzzCapTokenData(f *testing.F)  { fuzzDecoder(f, "CapTokenData", Decode[CapTokenData]) }

func FuzzParseCertificate(f *testing.F) {
	for _, c := range wireCorpusFor(f).certs {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCertificate(b)
		if err != nil {
			if c != nil {
				t.Fatal("ParseCertificate returned a certificate and an error")
			}
			if CodeOf(err) == 0 {
				t.Fatalf("error without a Code: %v", err)
			}
			return
		}
		if !bytes.Equal(c.X509.Raw, b) {
			t.Fatalf("accepted a certificate that is not its own encoding:\n in  %x\n raw %x", b, c.X509.Raw)
		}
		if c.Thumb != ThumbprintOf(b) {
			t.Fatal("thumbprint is not that of the input")
		}
		if c.Type.Issuer() == 0 && c.Type != CertRootCA {
			t.Fatalf("accepted unknown certificate type %d", c.Type)
		}
		if c.Type.IsKeyExchange() != CertHasKEMKey(c) {
			t.Fatalf("%s certificate with KEM key %v", c.Type, CertHasKEMKey(c))
		}
		if !c.Type.IsCA() && !c.Suite.Valid() {
			t.Fatalf("%s certificate of suite %d", c.Type, c.Suite)
		}
	})
}
