package protocol_test

import (
	"testing"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/internal/testpki"

	. "github.com/setpay/setpay/protocol"
)

// BenchmarkPReq measures the cryptography of one PReq in each suite: the
// cardholder's dual signature and HPKE seal of the PI, the merchant's
// verification of the dual signature, the gateway's opening of the PI; and
// the whole of each party's step (NewPReq, VerifyPReq, VerifyAuthReq), which
// adds hashing, encoding and certificate-chain verification.
//
//	go test ./protocol -run '^$' -bench PReq -benchmem
func BenchmarkPReq(b *testing.B) {
	for _, s := range Suites {
		f := newFlow(b, s)
		f.must(f.pinit, f.purchase, f.authorize)
		xid := f.preq.OIData.TransIDs.XID
		dsIn := DualSignatureInput(f.preqRes.PIMD, f.preqRes.OIMD)
		pt, err := OpenEnvelope(f.p.Gateway.KE, &f.preq.PI.Sealed, LabelSealPIDual, PIAAD(xid))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.String()+"/sign", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ForgeSign(f.p.Cardholder, LabelDualSig, dsIn)
			}
		})
		b.Run(s.String()+"/verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !ForgeVerify(s, f.p.Cardholder.Cert, LabelDualSig, dsIn, f.preq.PI.DualSignature) {
					b.Fatal("dual signature does not verify")
				}
			}
		})
		b.Run(s.String()+"/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealPIDual, pt, PIAAD(xid))
			}
		})
		b.Run(s.String()+"/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := OpenEnvelope(f.p.Gateway.KE, &f.preq.PI.Sealed, LabelSealPIDual, PIAAD(xid)); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The same HPKE operations straight on circl, as the floor that
		// seal and open are compared with in one run.
		hs := s.HPKE()
		info := []byte("setpay/1 PI dual-signed, same length!")
		pk, sk := testpkiKEM(s)
		var enc, ct []byte
		b.Run(s.String()+"/seal-circl-baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				snd, _ := hs.NewSender(pk, info)
				var sealer interface {
					Seal(pt, aad []byte) ([]byte, error)
				}
				enc, sealer, _ = snd.Setup(f.rnd)
				ct, _ = sealer.Seal(pt, PIAAD(xid))
			}
		})
		b.Run(s.String()+"/open-circl-baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rcv, _ := hs.NewReceiver(sk, info)
				opener, _ := rcv.Setup(enc)
				if _, err := opener.Open(ct, PIAAD(xid)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.String()+"/cardholder-NewPReq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.rebuildPReq(nil, nil)
			}
		})
		f.must(f.pinit, f.purchase, f.authorize)
		b.Run(s.String()+"/merchant-VerifyPReq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VerifyPReq(f.p.Trust, &f.pinitRes.Data, &f.order, f.preq, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.String()+"/gateway-VerifyAuthReq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VerifyAuthReq(f.p.Trust, f.p.Gateway, AmountPolicy{}, f.authReq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func testpkiKEM(s Suite) (kem.PublicKey, kem.PrivateKey) {
	return testpki.KEMKey(s, "bench", "baseline")
}

// BenchmarkParse measures the strict parse of a PReq and an AuthReq.
func BenchmarkParse(b *testing.B) {
	f := newFlow(b, SuitePQ)
	f.must(f.pinit, f.purchase, f.authorize)
	for name, m := range map[string]Message{"PReq": f.preq, "AuthReq": f.authReq} {
		raw := NewWrapper(m, f.preq.OIData.TransIDs.PReqDate, nil, nil).Marshal()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParties measures each party's handling of each purchase message
// in each suite, as the agents call it: building a message (New…) and
// checking a received one (Verify…), with allocations. With BenchmarkPReq
// (the cryptographic operations alone) it shows what each step costs on
// top of its cryptography.
//
//	go test ./protocol -run '^$' -bench Parties -benchmem
func BenchmarkParties(b *testing.B) {
	for _, s := range Suites {
		f := newFlow(b, s)
		f.run()
		tr := f.trust()
		bench := func(name string, fn func() error) {
			b.Run(s.String()+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := fn(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		bench("account-hash", func() error {
			AccountHash(s, f.card.PAN, f.card.CardExpiry, f.card.PANSecret)
			return nil
		})
		bench("merchant-NewPInitRes", func() error {
			_, err := NewPInitRes(&PInitResParams{Req: f.pinitReq, Suite: s, Key: f.p.Merchant.Sig, Gateway: f.p.Gateway.KE.Chain,
				LIDM: []byte("M-42"), XID: f.pinitRes.Data.TransIDs.XID, ChallM: f.pinitRes.Data.ChallM, PReqDate: testpki.Epoch})
			return err
		})
		bench("cardholder-VerifyPInitRes", func() error {
			_, err := VerifyPInitRes(tr, f.pinitReq, f.pinitRes, nil)
			return err
		})
		bench("merchant-VerifyPReq", func() error {
			_, err := VerifyPReq(tr, &f.pinitRes.Data, &f.order, f.preq, false)
			return err
		})
		bench("merchant-NewAuthReq", func() error {
			_, err := NewAuthReq(&AuthReqParams{Keys: f.p.Merchant, Gateway: f.terms.Gateway, TransIDs: f.pinitRes.Data.TransIDs,
				RRPID: f.auth.Request.RRPID, AuthAmt: f.authAmt, PReq: f.verified, PI: f.preq.PI, Rand: f.rnd})
			return err
		})
		bench("gateway-VerifyAuthReq", func() error {
			_, err := VerifyAuthReq(tr, f.p.Gateway, f.policy, f.authReq)
			return err
		})
		bench("gateway-NewAuthRes", func() error {
			_, err := NewAuthRes(f.p.Gateway, f.auth, &AuthDecision{Result: AuthApproved, AuthAmt: f.auth.Request.AuthAmt,
				AuthCode: "A1B2C3", BankRef: []byte("hold-1")}, testpki.Epoch, f.rnd)
			return err
		})
		bench("merchant-VerifyAuthRes", func() error {
			_, err := VerifyAuthRes(tr, f.p.Merchant, f.terms.Gateway, f.authReqData(), f.authRes)
			return err
		})
		bench("merchant-NewPRes", func() error {
			_, err := NewPRes(f.p.Merchant.Sig, &f.preq.OIData, PurchApproved, &f.authData.AuthAmt, 0)
			return err
		})
		bench("cardholder-VerifyPRes", func() error {
			_, err := VerifyPRes(tr, f.terms, &f.preqRes.PReq.OIData, f.pres, nil)
			return err
		})
		bench("merchant-NewCapReq", func() error {
			_, _, err := NewCapReq(f.p.Merchant, f.terms.Gateway, f.capSent.RRPID, 7, f.capItems, f.rnd)
			return err
		})
		bench("gateway-VerifyCapReq", func() error {
			_, err := VerifyCapReq(tr, f.p.Gateway, f.capReq)
			return err
		})
		bench("gateway-NewCapRes", func() error {
			_, err := NewCapRes(f.p.Gateway, f.batch, f.capData.Items, f.rnd)
			return err
		})
		bench("merchant-VerifyCapRes", func() error {
			_, err := VerifyCapRes(tr, f.p.Merchant, f.terms.Gateway, f.capSent, f.capRes)
			return err
		})
	}
}
