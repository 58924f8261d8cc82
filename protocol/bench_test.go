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
