package protocol_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
)

// One fuzz target per parser, in the manner of age's FuzzMalleability
// (filippo.io/age internal/format): the parser never panics, fails only with
// an error carrying a protocol Code, and accepts only inputs that are the
// canonical encoding of what it returns, so that no two encodings of a
// message exist. Seeds are the corpora of encoding_test.go: real messages,
// sealed plaintexts and certificates from purchases in both suites, with and
// without a cardholder certificate, and from registrations.

func FuzzParse(f *testing.F) {
	for _, s := range append(wireCorpusFor(f).messages, regCorpusFor(f).messages...) {
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
	seeds := append(wireCorpusFor(f).inner[name], regCorpusFor(f).inner[name]...)
	if len(seeds) == 0 {
		f.Fatalf("no %s in the corpora", name)
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

func FuzzCertReqSigned(f *testing.F) { fuzzDecoder(f, "CertReqSigned", Decode[CertReqSigned]) }
func FuzzCertResSigned(f *testing.F) { fuzzDecoder(f, "CertResSigned", Decode[CertResSigned]) }
func FuzzCAInitData(f *testing.F)    { fuzzDecoder(f, "CAInitData", Decode[CAInitData]) }
func FuzzBCI(f *testing.F)           { fuzzDecoder(f, "BCI", Decode[BCI]) }

// FuzzUpdateRevocation feeds arbitrary BCI and CRL bytes to Decode and
// Trust.UpdateRevocation, which must never panic, must fail only with
// CodeRevocationInfo, and must leave the state in force when it fails. With
// resign, a BCI that decodes is signed again by the brand of its suite and
// made to list the CRL bytes, so that the fuzzer reaches the CRL checks.
func FuzzUpdateRevocation(f *testing.F) {
	type base struct {
		p   *testpki.PKI
		bci *BCI
		crl []byte
	}
	var bases []base
	for _, s := range Suites {
		p := pkiFor(s)
		crl := p.CRL(p.CCA, 1, p.Cardholder.Cert.X509.SerialNumber)
		bases = append(bases, base{p, p.BCI(5, crl), crl})
		next := p.CRL(p.MCA, 2, p.Merchant.Sig.Cert.X509.SerialNumber)
		brand := p.CRL(p.Brand, 2, p.PCA.X509.SerialNumber)
		for _, resign := range []bool{false, true} {
			f.Add(Encode(p.BCI(6, next, brand)), next, resign)
			f.Add(Encode(p.BCI(6, brand)), brand, resign)
		}
	}
	for _, s := range regCorpusFor(f).inner["BCI"] {
		f.Add(s.der, []byte{}, false)
	}
	roots := [][]byte{bases[0].p.Root.Cert, bases[1].p.Root.Cert}
	f.Fuzz(func(t *testing.T, bciDER, crlDER []byte, resign bool) {
		bci, err := Decode[BCI](bciDER)
		if err != nil {
			if CodeOf(err) == 0 {
				t.Fatalf("error without a Code: %v", err)
			}
			return
		}
		tr, err := NewTrust(roots...)
		if err != nil {
			t.Fatal(err)
		}
		tr.Now = func() time.Time { return testpki.Epoch }
		for _, b := range bases {
			if err := tr.UpdateRevocation(b.bci, [][]byte{b.crl}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if resign {
			for _, b := range bases {
				if b.p.Suite == bci.Data.Suite {
					bci.Data.CRLs[0].CRL = ThumbprintOf(crlDER)
					bci = b.p.SignBCI(bci.Data)
				}
			}
		}
		err = tr.UpdateRevocation(bci, [][]byte{crlDER}, nil)
		if err == nil {
			return
		}
		if CodeOf(err) != CodeRevocationInfo {
			t.Fatalf("UpdateRevocation failed with code %d: %v", CodeOf(err), err)
		}
		for _, b := range bases {
			if c := verifyCode(tr, b.p.Cardholder); c != CodeCertRevoked {
				t.Fatalf("a failed update changed the state in force (%s cardholder: code %d)", b.p.Suite, c)
			}
			if c := verifyCode(tr, b.p.Merchant.Sig); c != 0 {
				t.Fatalf("a failed update changed the state in force (%s merchant: code %d)", b.p.Suite, c)
			}
		}
	})
}

// FuzzVerify feeds arbitrary messages to the receiving party's verification
// of each message type, in the context of a completed purchase of each suite
// (the PInitReq and PInitRes sent, the AuthReq and CapReq the merchant
// remembers). Every entry point must fail with a protocol Code and never
// panic. Seeds are the purchase's own messages, which verify.
func FuzzVerify(f *testing.F) {
	flows := map[Suite]*flow{}
	for _, s := range Suites {
		fl := newFlow(f, s)
		fl.run()
		flows[s] = fl
		for _, m := range []Message{fl.pinitRes, fl.preq, fl.authReq, fl.authRes, fl.pres, fl.capReq, fl.capRes} {
			f.Add(uint8(s), wireBytes(m))
		}
	}
	f.Fuzz(func(t *testing.T, suite uint8, b []byte) {
		fl := flows[Suite(suite)]
		if fl == nil {
			fl = flows[SuitePQ]
		}
		w, err := Parse(b)
		if err != nil {
			return // FuzzParse covers the parser
		}
		tr := fl.trust()
		switch m := w.Message.(type) {
		case *PInitRes:
			_, err = VerifyPInitRes(tr, fl.pinitReq, m, nil)
		case *PReq:
			_, err = VerifyPReq(tr, &fl.pinitRes.Data, &fl.order, m, false)
		case *AuthReq:
			_, err = VerifyAuthReq(tr, fl.p.Gateway, fl.policy, m)
		case *AuthRes:
			_, err = VerifyAuthRes(tr, fl.p.Merchant, fl.terms.Gateway, fl.authReqData(), m)
		case *PRes:
			_, err = VerifyPRes(tr, fl.terms, &fl.preqRes.PReq.OIData, m, nil)
		case *CapReq:
			var b *CaptureBatch
			if b, err = VerifyCapReq(tr, fl.p.Gateway, m); err == nil {
				for _, it := range b.Items {
					if it.Err != nil && CodeOf(it.Err) == 0 {
						t.Fatalf("capture item error without a Code: %v", it.Err)
					}
				}
			}
		case *CapRes:
			_, err = VerifyCapRes(tr, fl.p.Merchant, fl.terms.Gateway, fl.capSent, m)
		case *Error:
			_, err = VerifyError(tr, m, CertGatewaySignature, fl.s)
		default:
			return
		}
		if err != nil && CodeOf(err) == 0 {
			t.Fatalf("%s verification failed without a Code: %v", w.Message.Type(), err)
		}
	})
}

// FuzzApplicant feeds arbitrary messages to the applicant's checks of the
// CA's replies (CardCInitRes, Me-AqCInitRes, RegFormRes, CertRes and
// CertInqRes through CheckCertRes), each at the stage of a registration
// where it is expected. Every check must fail with a protocol Code and
// never panic. Seeds are the CA's genuine replies of each stage.
func FuzzApplicant(f *testing.F) {
	type stage struct {
		reg   Registration // the applicant's state before the check
		check func(r *Registration, m Message) error
	}
	var stages []stage
	for _, s := range Suites {
		c := newRegFlow(f, s, RoleCardholder)
		c.sendCardInit()
		c.fatal(c.answerCardInit())
		stages = append(stages, stage{*c.reg, func(r *Registration, m Message) error {
			res, ok := m.(*CardCInitRes)
			if !ok {
				return nil
			}
			return r.CheckCardCInitRes(res, nil)
		}})
		f.Add(uint8(len(stages)-1), wireBytes(c.cardInitRes))
		c.fatal(c.checkCardInit())
		c.sendRegForm()
		c.fatal(c.caRegForm())
		stages = append(stages, stage{*c.reg, func(r *Registration, m Message) error {
			res, ok := m.(*RegFormRes)
			if !ok {
				return nil
			}
			_, err := r.CheckRegFormRes(res)
			return err
		}})
		f.Add(uint8(len(stages)-1), wireBytes(c.regFormRes))
		c.fatal(c.checkRegForm())
		c.fatal(c.certRequest())
		c.certRes = c.ca.answer(c.request)
		stages = append(stages, stage{*c.reg, func(r *Registration, m Message) error {
			_, err := r.CheckCertRes(m)
			return err
		}})
		f.Add(uint8(len(stages)-1), wireBytes(c.certRes))

		m := newRegFlow(f, s, RoleMerchant)
		m.sendMeInit()
		m.fatal(m.answerMeInit())
		stages = append(stages, stage{*m.reg, func(r *Registration, msg Message) error {
			res, ok := msg.(*MeAqCInitRes)
			if !ok {
				return nil
			}
			return r.CheckMeAqCInitRes(res, nil)
		}})
		f.Add(uint8(len(stages)-1), wireBytes(m.meInitRes))
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		st := stages[int(which)%len(stages)]
		w, err := Parse(b)
		if err != nil {
			return // FuzzParse covers the parser
		}
		reg := st.reg // each input checks against the same state
		if err := st.check(&reg, w.Message); err != nil && CodeOf(err) == 0 {
			t.Fatalf("the applicant's check of a %s failed without a Code: %v", w.Message.Type(), err)
		}
	})
}
