package protocol_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
	"github.com/setpay/setpay/vectors"
)

// Every check a party makes has a case here that breaks exactly that check
// (all earlier checks pass) and expects exactly its code. The cases run for
// both suites.

func (f *flow) must(steps ...func() error) {
	f.t.Helper()
	mustSteps(f.t, steps...)
}

// mustSteps runs setup steps that must succeed.
func mustSteps(t testing.TB, steps ...func() error) {
	t.Helper()
	for _, st := range steps {
		if err := st(); err != nil {
			t.Fatalf("setup step failed: %v", err)
		}
	}
}

// otherPKI is the hierarchy of the other suite, for cross-suite cases.
func (f *flow) otherPKI() *testpki.PKI { return otherSuitePKI(f.s) }

// otherSuitePKI is the test hierarchy of the suite other than s.
func otherSuitePKI(s Suite) *testpki.PKI {
	if s == SuitePQ {
		return pkiFor(SuiteNIST)
	}
	return pkiFor(SuitePQ)
}

// trustBothSuites makes the receiving party trust the roots of both suites'
// hierarchies.
func (f *flow) trustBothSuites() {
	f.roots = [][]byte{pkiFor(SuitePQ).Root.Cert, pkiFor(SuiteNIST).Root.Cert}
}

// resignPInitRes has the merchant sign a PInitRes built for a doctored copy
// of the cardholder's PInitReq.
func (f *flow) resignPInitRes(edit func(req *PInitReq), suite Suite, keys *MerchantKeys, gateway [][]byte) {
	req := *f.pinitReq
	req.Suites = append([]Suite(nil), req.Suites...)
	edit(&req)
	var err error
	f.pinitRes, err = NewPInitRes(&PInitResParams{Req: &req, Suite: suite, Key: keys.Sig, Gateway: gateway,
		LIDM: []byte("M-42"), XID: XID{1}, ChallM: Challenge{2}, PReqDate: testpki.Epoch})
	if err != nil {
		f.t.Fatal(err)
	}
}

// rebuildPReq builds the PReq again from a doctored copy of the purchase
// terms and parameters, as a cardholder that got them wrong would.
func (f *flow) rebuildPReq(editTerms func(*PurchaseTerms), editParams func(*PReqParams)) {
	terms := *f.terms
	if editTerms != nil {
		editTerms(&terms)
	}
	p := &PReqParams{
		Terms: &terms, ChallC: f.pinitReq.ChallC, BrandID: testpki.TestBrand, BIN: testpki.TestBIN,
		OD: f.order.OD, PurchAmt: f.order.PurchAmt, RRPID: RRPID{3}, ODSalt: Nonce{4}, EXNonce: Nonce{5},
		Card: f.card, Key: f.cardholder, Rand: f.rnd,
	}
	if editParams != nil {
		editParams(p)
	}
	r, err := NewPReq(p)
	if err != nil {
		f.t.Fatal(err)
	}
	f.preqRes, f.preq = r, r.PReq
}

// forgePI opens the PI as the gateway would, lets edit change its content,
// has the cardholder sign the result again and seals it to the gateway with
// the transaction's XID: a PI only a colluding cardholder could produce,
// used to reach the gateway's checks behind the dual signature.
func (f *flow) forgePI(edit func(*PIContent)) {
	xid := f.pinitRes.Data.TransIDs.XID
	pt, err := OpenEnvelope(f.p.Gateway.KE, &f.preq.PI.Sealed, LabelSealPIDual, PIAAD(xid))
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := Decode[PIContent](pt)
	if err != nil {
		f.t.Fatal(err)
	}
	edit(c)
	ds := ForgeSign(f.cardholder, LabelDualSig, DualSignatureInput(PIMD(f.s, &c.PIData), c.OIMD))
	f.preq.PI.DualSignature = &ds
	f.preq.PI.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealPIDual, Encode(c), PIAAD(xid))
}

// skipMerchant stands for a merchant that forwards a PReq it did not (or
// could not) check, so that the gateway's own check is what is tested.
func (f *flow) skipMerchant() {
	f.verified = &VerifiedPReq{OIMD: f.preqRes.OIMD, HOD: f.preq.OIData.HOD}
}

// sealAuthReq re-signs (with key) and re-seals an edited AuthReqData.
func (f *flow) sealAuthReq(key *SigningKey, edit func(*AuthReqData)) {
	pt, err := OpenEnvelope(f.p.Gateway.KE, &f.authReq.Sealed, LabelSealAuthReq, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := Decode[AuthReqSigned](pt)
	if err != nil {
		f.t.Fatal(err)
	}
	edit(&s.Data)
	if key != nil {
		s.Signature = ForgeSign(key, LabelSigAuthReq, Encode(&s.Data))
	}
	f.authReq.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealAuthReq, Encode(s), nil)
}

// decide has the gateway answer with dec for a doctored Authorization.
func (f *flow) decide(editAuth func(*Authorization), dec *AuthDecision) {
	a := *f.auth
	if editAuth != nil {
		editAuth(&a)
	}
	if dec == nil {
		dec = &AuthDecision{Result: AuthApproved, AuthAmt: a.Request.AuthAmt, AuthCode: "A1B2C3", BankRef: []byte("hold-1")}
	}
	var err error
	f.authRes, err = NewAuthRes(f.p.Gateway, &a, dec, testpki.Epoch, f.rnd)
	if err != nil {
		f.t.Fatal(err)
	}
}

// caseTables are every table of checks, in the order of the protocol; the
// vector generator publishes each case as a negative vector.
var caseTables = [][]checkCase{errorChecksCases, cardholderChecksPInitResCases, merchantChecksPReqCases, gatewayChecksAuthReqCases, merchantChecksAuthResCases, cardholderChecksPResCases, gatewayChecksCapReqCases, merchantChecksCapResCases, certificateChecksCases}

type checkCase struct {
	name string
	want Code
	run  func(f *flow) error
}

func runChecks(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, s := range Suites {
		for _, c := range cases {
			t.Run(s.String()+"/"+c.name, func(t *testing.T) {
				f := newFlow(t, s)
				err := c.run(f)
				if got := CodeOf(err); got != c.want {
					t.Fatalf("got %v (code %d), want code %d (%v)", err, got, c.want, c.want)
				}
			})
		}
	}
}

var cardholderChecksPInitResCases = func() []checkCase {
	return []checkCase{
		{"a suite the cardholder did not offer is a downgrade", CodeDowngrade, func(f *flow) error {
			f.must(f.pinit)
			o := f.otherPKI()
			f.resignPInitRes(func(r *PInitReq) { r.Suites = []Suite{o.Suite} }, o.Suite, o.Merchant, o.Gateway.KE.Chain)
			return f.checkPInitRes()
		}},
		{"an offer echo that differs from the offer is a downgrade", CodeDowngrade, func(f *flow) error {
			o := f.otherPKI()
			f.must(f.pinit)
			f.pinitReq.Suites = []Suite{f.s, o.Suite} // what C really sent
			f.resignPInitRes(func(r *PInitReq) { r.Suites = []Suite{o.Suite} }, o.Suite, o.Merchant, o.Gateway.KE.Chain)
			f.trustBothSuites()
			return f.checkPInitRes()
		}},
		{"a changed signed field breaks the merchant signature", CodeSignature, func(f *flow) error {
			f.must(f.pinit)
			f.pinitRes.Data.ChallM[0] ^= 1
			return f.checkPInitRes()
		}},
		{"a signature by a gateway certificate is the wrong role", CodeCertRole, func(f *flow) error {
			f.must(f.pinit)
			f.pinitRes.Signature = ForgeSign(f.p.Gateway.Sig, LabelSigPInitRes, Encode(&f.pinitRes.Data))
			f.pinitRes.Certificates = append(f.pinitRes.Certificates, f.p.Gateway.Sig.Chain...)
			return f.checkPInitRes()
		}},
		{"RRPID not echoed", CodeRRPIDMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.resignPInitRes(func(r *PInitReq) { r.RRPID[0] ^= 1 }, f.s, f.p.Merchant, f.p.Gateway.KE.Chain)
			return f.checkPInitRes()
		}},
		{"Chall-C not echoed", CodeChallCMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.resignPInitRes(func(r *PInitReq) { r.ChallC[0] ^= 1 }, f.s, f.p.Merchant, f.p.Gateway.KE.Chain)
			return f.checkPInitRes()
		}},
		{"another LID-C in TransIDs", CodeTransIDsMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.resignPInitRes(func(r *PInitReq) { r.LIDC = []byte("someone else") }, f.s, f.p.Merchant, f.p.Gateway.KE.Chain)
			return f.checkPInitRes()
		}},
		{"PEThumb naming a gateway signature certificate is the wrong role", CodeCertRole, func(f *flow) error {
			f.must(f.pinit)
			f.resignPInitRes(func(*PInitReq) {}, f.s, f.p.Merchant, f.p.Gateway.Sig.Chain)
			return f.checkPInitRes()
		}},
		{"PEThumb naming a certificate that is not sent", CodeCertMissing, func(f *flow) error {
			f.must(f.pinit)
			f.pinitRes.Data.PEThumb[0] ^= 1
			f.pinitRes.Signature = ForgeSign(f.p.Merchant.Sig, LabelSigPInitRes, Encode(&f.pinitRes.Data))
			return f.checkPInitRes()
		}},
	}
}()

func TestCardholderChecksPInitRes(t *testing.T) { runChecks(t, cardholderChecksPInitResCases) }

var merchantChecksPReqCases = func() []checkCase {
	return []checkCase{
		{"an unsigned PReq where a certificate is required", CodeCertRequired, func(f *flow) error {
			f.cardholder, f.reqCert = nil, true
			f.must(f.pinit)
			return f.purchase()
		}},
		{"a changed OIData breaks the dual signature", CodeDualSignature, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.OIData.BIN = "999999"
			return f.checkPReq()
		}},
		{"a changed PIMD breaks the dual signature", CodeDualSignature, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PIMD[0] ^= 1
			return f.checkPReq()
		}},
		{"a dual signature claiming another suite", CodeSuiteMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.DualSignature.Suite = f.otherPKI().Suite
			return f.checkPReq()
		}},
		{"a dual signature of an unknown suite", CodeUnknownSuite, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.DualSignature.Suite = 77
			return f.checkPReq()
		}},
		{"another XID in OIData", CodeXIDMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.rebuildPReq(func(t *PurchaseTerms) { t.Data.TransIDs.XID[0] ^= 1 }, nil)
			return f.checkPReq()
		}},
		{"another LID-M in OIData", CodeTransIDsMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.rebuildPReq(func(t *PurchaseTerms) { t.Data.TransIDs.LIDM = []byte("M-43") }, nil)
			return f.checkPReq()
		}},
		{"Chall-M not echoed", CodeChallMMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.rebuildPReq(func(t *PurchaseTerms) { t.Data.ChallM[0] ^= 1 }, nil)
			return f.checkPReq()
		}},
		{"Chall-C not echoed", CodeChallCMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.rebuildPReq(nil, func(p *PReqParams) { p.ChallC[0] ^= 1 })
			return f.checkPReq()
		}},
		{"OIData names another gateway", CodeWrongGateway, func(f *flow) error {
			f.must(f.pinit)
			other := f.p.NewGateway("gateway two")
			f.rebuildPReq(func(t *PurchaseTerms) { t.Gateway = other.KE.Cert }, nil)
			return f.checkPReq()
		}},
		{"HOD of another amount", CodeHODMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.rebuildPReq(nil, func(p *PReqParams) { p.PurchAmt.Value-- })
			return f.checkPReq()
		}},
		{"HOD of another order description", CodeHODMismatch, func(f *flow) error {
			f.must(f.pinit)
			f.rebuildPReq(nil, func(p *PReqParams) { p.OD = []byte("1 x something cheaper") })
			return f.checkPReq()
		}},
		{"a PI sealed under another suite", CodeSuiteMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.Sealed.Suite = f.otherPKI().Suite
			return f.checkPReq()
		}},
		{"a PI sealed to another gateway", CodeWrongGateway, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.Sealed = ForgeSeal(f.rnd, f.p.NewGateway("gateway two").KE.Cert, LabelSealPIDual, []byte("x"), nil)
			return f.checkPReq()
		}},
	}
}()

func TestMerchantChecksPReq(t *testing.T) { runChecks(t, merchantChecksPReqCases) }

var gatewayChecksAuthReqCases = func() []checkCase {
	return []checkCase{
		{"an AuthReq sealed to another gateway does not open", CodeDecrypt, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.authReq.Sealed.Recipient[0] ^= 1
			return f.checkAuthReq()
		}},
		{"a changed AuthReq ciphertext does not open", CodeDecrypt, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.authReq.Sealed.Ciphertext[0] ^= 1
			return f.checkAuthReq()
		}},
		{"an AuthReq envelope of another suite", CodeSuiteMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.authReq.Sealed.Suite = f.otherPKI().Suite
			return f.checkAuthReq()
		}},
		{"an AuthReq envelope of an unknown suite", CodeUnknownSuite, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.authReq.Sealed.Suite = 99
			return f.checkAuthReq()
		}},
		{"an envelope holding something else than AuthReqSigned", CodeMalformed, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.authReq.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealAuthReq, Encode(&f.preq.OIData), nil)
			return f.checkAuthReq()
		}},
		{"a changed AuthReqData breaks the merchant signature", CodeSignature, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.sealAuthReq(nil, func(d *AuthReqData) { d.AuthAmt.Value++ })
			return f.checkAuthReq()
		}},
		{"an AuthReq signed by a cardholder certificate is the wrong role", CodeCertRole, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			pt, _ := OpenEnvelope(f.p.Gateway.KE, &f.authReq.Sealed, LabelSealAuthReq, nil)
			s, _ := Decode[AuthReqSigned](pt)
			s.Signature = ForgeSign(f.p.Cardholder, LabelSigAuthReq, Encode(&s.Data))
			s.Certificates = append(s.Certificates, f.p.Cardholder.Chain...)
			f.authReq.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealAuthReq, Encode(s), nil)
			return f.checkAuthReq()
		}},
		{"a merchant key-exchange certificate of another merchant", CodeMerchantMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			other := f.p.NewMerchant("merchant two", MerchantData{MerchantID: "M-0002", Name: "Other Shop", AcquirerBIN: "400000"})
			keys := *f.p.Merchant
			keys.KE = other.KE
			var err error
			f.authReq, err = NewAuthReq(&AuthReqParams{Keys: &keys, Gateway: f.terms.Gateway, TransIDs: f.pinitRes.Data.TransIDs,
				RRPID: RRPID{9}, AuthAmt: f.authAmt, PReq: f.verified, PI: f.preq.PI, Rand: f.rnd})
			if err != nil {
				f.t.Fatal(err)
			}
			return f.checkAuthReq()
		}},
		{"a PI sealed under another suite", CodeSuiteMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.Sealed.Suite = f.otherPKI().Suite
			return f.authorize()
		}},
		{"a PI sealed to another gateway", CodeWrongGateway, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.Sealed.Recipient[0] ^= 1
			return f.authorize()
		}},
		{"a PI from another transaction does not open (XID is its AAD)", CodeDecrypt, func(f *flow) error {
			g := newFlow(f.t, f.s)
			g.rnd = rand.NewChaCha8([32]byte{42})
			g.must(g.pinit, g.purchase)
			f.must(f.pinit, f.purchase)
			f.preq.PI = g.preq.PI
			return f.authorize()
		}},
		{"a dual-signed PI stripped of its signature does not open", CodeDecrypt, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.DualSignature, f.preq.PI.Certificates = nil, nil
			return f.authorize()
		}},
		{"a sealed PI holding something else than PIContent", CodeMalformed, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealPIDual, []byte{0x30, 0}, PIAAD(f.pinitRes.Data.TransIDs.XID))
			return f.authorize()
		}},
		{"a dual signature from another transaction", CodeDualSignature, func(f *flow) error {
			g := newFlow(f.t, f.s)
			g.rnd = rand.NewChaCha8([32]byte{43})
			g.must(g.pinit, g.purchase)
			f.must(f.pinit, f.purchase)
			f.preq.PI.DualSignature = g.preq.PI.DualSignature
			return f.authorize()
		}},
		{"a cardholder certificate from a foreign hierarchy", CodeCertChain, func(f *flow) error {
			foreign := testpki.New(f.s, "a foreign brand")
			f.cardholder = foreign.Cardholder
			f.must(f.pinit)
			f.rebuildPReq(nil, nil)
			f.skipMerchant()
			return f.authorize()
		}},
		{"a PI re-sealed by another gateway names the first one (flaw fix 1)", CodeWrongGateway, func(f *flow) error {
			// The cardholder meant gateway two. Gateway two opens the PI and
			// re-seals it, unchanged and still validly dual-signed, to the
			// gateway of this test. PIHead names gateway two.
			f.must(f.pinit)
			two := f.p.NewGateway("gateway two")
			f.rebuildPReq(func(t *PurchaseTerms) { t.Gateway = two.KE.Cert }, nil)
			xid := f.pinitRes.Data.TransIDs.XID
			pt, err := OpenEnvelope(two.KE, &f.preq.PI.Sealed, LabelSealPIDual, PIAAD(xid))
			if err != nil {
				f.t.Fatal(err)
			}
			f.preq.PI.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealPIDual, pt, PIAAD(xid))
			f.skipMerchant()
			return f.authorize()
		}},
		{"PIHead names another XID", CodeXIDMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) { c.PIData.PIHead.TransIDs.XID[0] ^= 1 })
			return f.authorize()
		}},
		{"PIHead names another PReqDate", CodeTransIDsMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) {
				c.PIData.PIHead.TransIDs.PReqDate = c.PIData.PIHead.TransIDs.PReqDate.Add(time.Hour)
			})
			return f.authorize()
		}},
		{"a PI linked to another OIData (swap-oi)", CodeOIMDMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) { c.OIMD[0] ^= 1 })
			return f.authorize()
		}},
		{"PIHead HOD differs from the merchant's", CodeHODMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) { c.PIData.PIHead.HOD[0] ^= 1 })
			return f.authorize()
		}},
		{"PIHead names another merchant", CodeMerchantMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) { c.PIData.PIHead.MerchantID = "M-9999" })
			return f.authorize()
		}},
		{"the merchant asks more than the cardholder agreed (inflate-amount)", CodeAmountMismatch, func(f *flow) error {
			f.authAmt.Value++
			f.must(f.pinit, f.purchase)
			return f.authorize()
		}},
		{"the merchant asks in another currency", CodeAmountMismatch, func(f *flow) error {
			f.authAmt.Currency = 840
			f.must(f.pinit, f.purchase)
			return f.authorize()
		}},
		{"a card number failing the Luhn check", CodeCardData, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) { c.PIData.PANData.PAN = ForgePAN("4111111111111112") })
			return f.authorize()
		}},
		{"a card expiry month 13", CodeCardData, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.forgePI(func(c *PIContent) { c.PIData.PANData.CardExpiry = "202913" })
			return f.authorize()
		}},
		{"an unsigned PI with a PANSecret", CodeCardData, func(f *flow) error {
			f.cardholder = nil
			f.must(f.pinit, f.purchase)
			xid := f.pinitRes.Data.TransIDs.XID
			pt, err := OpenEnvelope(f.p.Gateway.KE, &f.preq.PI.Sealed, LabelSealPIUnsig, PIAAD(xid))
			if err != nil {
				f.t.Fatal(err)
			}
			c, _ := Decode[PIContent](pt)
			c.PIData.PANData.PANSecret[0] = 1
			f.preq.PI.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealPIUnsig, Encode(c), PIAAD(xid))
			return f.authorize()
		}},
		{"card data of another card than the certificate's", CodeAccountHash, func(f *flow) error {
			pan, _ := NewPAN("5555555555554444")
			f.card.PAN = pan
			f.must(f.pinit, f.purchase)
			return f.authorize()
		}},
		{"a wrong PANSecret", CodeAccountHash, func(f *flow) error {
			f.card.PANSecret[0] ^= 1
			f.must(f.pinit, f.purchase)
			return f.authorize()
		}},
		{"a cardholder certificate without account hash", CodeAccountHash, func(f *flow) error {
			key := testpki.SigningKey(f.s, "no hash", "cardholder")
			der := f.p.CCA.Issue(testpki.Options{Type: CertCardholderSignature, Name: "no hash", Public: key})
			k, err := NewSigningKey(key, append([][]byte{der}, f.p.CCA.Chain...))
			if err != nil {
				f.t.Fatal(err)
			}
			f.cardholder = k
			f.must(f.pinit, f.purchase)
			return f.authorize()
		}},
	}
}()

func TestGatewayChecksAuthReq(t *testing.T) { runChecks(t, gatewayChecksAuthReqCases) }

func TestAmountPolicyAllowsOverAuthorization(t *testing.T) {
	f := newFlow(t, SuitePQ)
	f.policy = AmountPolicy{MaxOverPercent: 20}
	f.authAmt.Value = f.order.PurchAmt.Value * 120 / 100
	f.must(f.pinit, f.purchase, f.authorize)
	f.authAmt.Value++
	if err := f.authorize(); CodeOf(err) != CodeAmountMismatch {
		t.Fatalf("21%% over a 20%% policy: got %v", err)
	}
}

var merchantChecksAuthResCases = func() []checkCase {
	return []checkCase{
		{"an AuthRes sealed to another merchant does not open", CodeDecrypt, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			f.authRes.Sealed.Recipient[0] ^= 1
			return f.checkAuthRes()
		}},
		{"an envelope holding something else than AuthResSigned", CodeMalformed, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			f.authRes.Sealed = ForgeSeal(f.rnd, f.p.Merchant.KE.Cert, LabelSealAuthRes, []byte{0x30, 0x00}, nil)
			return f.checkAuthRes()
		}},
		{"a changed AuthResData breaks the gateway signature", CodeSignature, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			pt, _ := OpenEnvelope(f.p.Merchant.KE, &f.authRes.Sealed, LabelSealAuthRes, nil)
			s, _ := Decode[AuthResSigned](pt)
			s.Data.AuthCode = "FORGED"
			f.authRes.Sealed = ForgeSeal(f.rnd, f.p.Merchant.KE.Cert, LabelSealAuthRes, Encode(s), nil)
			return f.checkAuthRes()
		}},
		{"an AuthRes signed by a merchant certificate is the wrong role", CodeCertRole, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			pt, _ := OpenEnvelope(f.p.Merchant.KE, &f.authRes.Sealed, LabelSealAuthRes, nil)
			s, _ := Decode[AuthResSigned](pt)
			s.Signature = ForgeSign(f.p.Merchant.Sig, LabelSigAuthRes, Encode(&s.Data))
			s.Certificates = f.p.Merchant.Sig.Chain
			f.authRes.Sealed = ForgeSeal(f.rnd, f.p.Merchant.KE.Cert, LabelSealAuthRes, Encode(s), nil)
			return f.checkAuthRes()
		}},
		{"an AuthRes signed by another gateway than the one sealed to", CodeWrongGateway, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			two := f.p.NewGateway("gateway two")
			two.TokenKey = f.p.Gateway.TokenKey
			var err error
			f.authRes, err = NewAuthRes(two, f.auth, &AuthDecision{Result: AuthApproved, AuthAmt: f.authAmt, AuthCode: "A", BankRef: []byte("h")}, testpki.Epoch, f.rnd)
			if err != nil {
				f.t.Fatal(err)
			}
			return f.checkAuthRes()
		}},
		{"RRPID not echoed", CodeRRPIDMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.decide(func(a *Authorization) { a.Request.RRPID[0] ^= 1 }, nil)
			return f.checkAuthRes()
		}},
		{"an AuthRes for another XID", CodeXIDMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.decide(func(a *Authorization) { a.Request.TransIDs.XID[0] ^= 1 }, nil)
			return f.checkAuthRes()
		}},
		{"an AuthRes naming another merchant (flaw fix 2)", CodeMerchantMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			other := f.p.NewMerchant("merchant two", MerchantData{MerchantID: "M-0002", Name: "Other Shop", AcquirerBIN: "400000"})
			f.decide(func(a *Authorization) { a.Merchant = other.Sig.Cert }, nil)
			return f.checkAuthRes()
		}},
		{"an approval above the amount asked", CodeAmountMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize)
			f.decide(nil, &AuthDecision{Result: AuthApproved, AuthAmt: Amount{Currency: 978, Value: 999999}, AuthCode: "X", BankRef: []byte("h")})
			return f.checkAuthRes()
		}},
	}
}()

func TestMerchantChecksAuthRes(t *testing.T) { runChecks(t, merchantChecksAuthResCases) }

var cardholderChecksPResCases = func() []checkCase {
	newPRes := func(f *flow, key *SigningKey, edit func(*OIData)) {
		oi := f.preq.OIData
		edit(&oi)
		var err error
		f.pres, err = NewPRes(key, &oi, PurchApproved, &f.authData.AuthAmt, 0)
		if err != nil {
			f.t.Fatal(err)
		}
	}
	return []checkCase{
		{"a PRes signed by another merchant", CodeMerchantMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			other := f.p.NewMerchant("merchant two", MerchantData{MerchantID: "M-0002", Name: "Other Shop", AcquirerBIN: "400000"})
			newPRes(f, other.Sig, func(*OIData) {})
			return f.checkPRes()
		}},
		{"a changed PResData breaks the signature", CodeSignature, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond, f.answer)
			f.pres.Data.AuthAmt.Value++
			return f.checkPRes()
		}},
		{"RRPID not echoed", CodeRRPIDMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			newPRes(f, f.p.Merchant.Sig, func(oi *OIData) { oi.RRPID[0] ^= 1 })
			return f.checkPRes()
		}},
		{"Chall-C not echoed", CodeChallCMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			newPRes(f, f.p.Merchant.Sig, func(oi *OIData) { oi.ChallC[0] ^= 1 })
			return f.checkPRes()
		}},
		{"a PRes for another XID", CodeXIDMismatch, func(f *flow) error {
			f.must(f.pinit, f.purchase, f.authorize, f.respond)
			newPRes(f, f.p.Merchant.Sig, func(oi *OIData) { oi.TransIDs.XID[0] ^= 1 })
			return f.checkPRes()
		}},
	}
}()

func TestCardholderChecksPRes(t *testing.T) { runChecks(t, cardholderChecksPResCases) }

var gatewayChecksCapReqCases = func() []checkCase {
	upToAuth := func(f *flow) { f.must(f.pinit, f.purchase, f.authorize, f.respond) }
	item := func(f *flow) *CapItem {
		return &CapItem{TransIDs: f.authData.TransIDs, AuthRRPID: f.authData.RRPID, CapAmt: f.authData.AuthAmt, CapToken: *f.authData.CapToken}
	}
	// capItem runs the capture of one doctored item and returns its result.
	capItem := func(f *flow, edit func(*CapItem)) error {
		it := item(f)
		edit(it)
		f.capItems = []CapItem{*it}
		f.must(f.capture)
		return f.itemErr()
	}
	return []checkCase{
		{"a CapReq sealed to another gateway does not open", CodeDecrypt, func(f *flow) error {
			upToAuth(f)
			f.must(f.capture)
			f.capReq.Sealed.Recipient[0] ^= 1
			return f.checkCapReq()
		}},
		{"a changed CapReqData breaks the merchant signature", CodeSignature, func(f *flow) error {
			upToAuth(f)
			f.must(f.capture)
			pt, _ := OpenEnvelope(f.p.Gateway.KE, &f.capReq.Sealed, LabelSealCapReq, nil)
			s, _ := Decode[CapReqSigned](pt)
			s.Data.Items[0].CapAmt.Value--
			f.capReq.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealCapReq, Encode(s), nil)
			return f.checkCapReq()
		}},
		{"a merchant key-exchange certificate of another merchant", CodeMerchantMismatch, func(f *flow) error {
			upToAuth(f)
			other := f.p.NewMerchant("merchant two", MerchantData{MerchantID: "M-0002", Name: "Other Shop", AcquirerBIN: "400000"})
			keys := *f.p.Merchant
			keys.KE = other.KE
			var err error
			f.capReq, f.capSent, err = NewCapReq(&keys, f.terms.Gateway, RRPID{8}, 1, []CapItem{*item(f)}, f.rnd)
			if err != nil {
				f.t.Fatal(err)
			}
			return f.checkCapReq()
		}},
		{"a CapToken of another transaction", CodeCapTokenInvalid, func(f *flow) error {
			g := newFlow(f.t, f.s)
			g.rnd = rand.NewChaCha8([32]byte{44})
			g.must(g.pinit, g.purchase, g.authorize, g.respond)
			upToAuth(f)
			return capItem(f, func(it *CapItem) { it.CapToken = *g.authData.CapToken })
		}},
		{"a CapToken whose content names another XID", CodeXIDMismatch, func(f *flow) error {
			upToAuth(f)
			return capItem(f, func(it *CapItem) {
				tok := f.openToken(it)
				tok.XID[0] ^= 1
				// Made with the real token key and bound to the item's XID,
				// but naming another: only the gateway itself could err so.
				it.CapToken = ForgeSealCapTokenFor(f.rnd, f.p.Gateway, tok, it.TransIDs.XID)
			})
		}},
		{"a CapToken forged by the merchant (sealed to the gateway's public key)", CodeCapTokenInvalid, func(f *flow) error {
			upToAuth(f)
			return capItem(f, func(it *CapItem) {
				tok := f.openToken(it)
				tok.AuthAmt.Value *= 100
				it.CapToken = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, "setpay/1 CapToken", Encode(tok), PIAAD(it.TransIDs.XID))
				it.CapToken.Recipient = TokenKeyID(f.s, Secret{})
			})
		}},
		{"a CapToken made with another gateway's token key", CodeCapTokenInvalid, func(f *flow) error {
			upToAuth(f)
			other := f.p.NewGateway("gateway two")
			return capItem(f, func(it *CapItem) { it.CapToken = ForgeSealCapToken(f.rnd, other, f.openToken(it)) })
		}},
		{"a CapToken captured by another merchant", CodeMerchantMismatch, func(f *flow) error {
			upToAuth(f)
			other := f.p.NewMerchant("merchant two", MerchantData{MerchantID: "M-0002", Name: "Other Shop", AcquirerBIN: "400000"})
			var err error
			f.capReq, f.capSent, err = NewCapReq(other, f.terms.Gateway, RRPID{8}, 1, []CapItem{*item(f)}, f.rnd)
			if err != nil {
				f.t.Fatal(err)
			}
			f.must(f.checkCapReq)
			return f.itemErr()
		}},
		{"a capture naming another authorization RRPID", CodeRRPIDMismatch, func(f *flow) error {
			upToAuth(f)
			return capItem(f, func(it *CapItem) { it.AuthRRPID[0] ^= 1 })
		}},
		{"a capture in another currency", CodeAmountMismatch, func(f *flow) error {
			upToAuth(f)
			return capItem(f, func(it *CapItem) { it.CapAmt.Currency = 840 })
		}},
		{"a capture above the authorized amount", CodeCaptureExceeds, func(f *flow) error {
			upToAuth(f)
			return capItem(f, func(it *CapItem) { it.CapAmt.Value++ })
		}},
	}
}()

func TestGatewayChecksCapReq(t *testing.T) { runChecks(t, gatewayChecksCapReqCases) }

func (f *flow) openToken(it *CapItem) *CapTokenData {
	pt, err := OpenCapToken(f.p.Gateway, &it.CapToken, it.TransIDs.XID)
	if err != nil {
		f.t.Fatal(err)
	}
	tok, err := Decode[CapTokenData](pt)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func TestCaptureBelowAuthorizationIsAccepted(t *testing.T) {
	f := newFlow(t, SuitePQ)
	f.must(f.pinit, f.purchase, f.authorize, f.respond)
	f.capItems = []CapItem{{TransIDs: f.authData.TransIDs, AuthRRPID: f.authData.RRPID, CapAmt: Amount{Currency: 978, Value: 1}, CapToken: *f.authData.CapToken}}
	f.must(f.capture, f.itemErr, f.settle)
	if got := f.capData.Items[0].CapAmt.Value; got != 1 {
		t.Fatalf("captured %d, want 1", got)
	}
}

var merchantChecksCapResCases = func() []checkCase {
	upToCap := func(f *flow) { f.must(f.pinit, f.purchase, f.authorize, f.respond, f.capture) }
	// capRes has the gateway answer with results edited by edit.
	capRes := func(f *flow, edit func([]CapResItem) []CapResItem, sentEdit func(*CapReqData)) error {
		res := []CapResItem{{XID: f.authData.TransIDs.XID, CapAmt: f.authData.AuthAmt}}
		res = edit(res)
		var err error
		f.capRes, err = NewCapRes(f.p.Gateway, &CaptureBatch{Request: f.batch.Request, Merchant: f.batch.Merchant, MerchantKE: f.batch.MerchantKE, Items: f.batch.Items}, pad(res, len(f.batch.Items)), f.rnd)
		if err != nil {
			return err
		}
		sent := *f.capSent
		if sentEdit != nil {
			sentEdit(&sent)
		}
		f.capSent = &sent
		return f.checkCapRes()
	}
	same := func(r []CapResItem) []CapResItem { return r }
	return []checkCase{
		{"a CapRes that does not open", CodeDecrypt, func(f *flow) error {
			upToCap(f)
			f.must(f.settle)
			f.capRes.Sealed.Ciphertext[3] ^= 1
			return f.checkCapRes()
		}},
		{"a CapRes signed by another gateway than the one sealed to", CodeWrongGateway, func(f *flow) error {
			upToCap(f)
			two := f.p.NewGateway("gateway two")
			var err error
			f.capRes, err = NewCapRes(two, f.batch, []CapResItem{{XID: f.authData.TransIDs.XID, CapAmt: f.authData.AuthAmt}}, f.rnd)
			if err != nil {
				f.t.Fatal(err)
			}
			return f.checkCapRes()
		}},
		{"RRPID not echoed", CodeRRPIDMismatch, func(f *flow) error {
			upToCap(f)
			return capRes(f, same, func(d *CapReqData) { d.RRPID[0] ^= 1 })
		}},
		{"another batch", CodeMerchantMismatch, func(f *flow) error {
			upToCap(f)
			return capRes(f, same, func(d *CapReqData) { d.BatchID++ })
		}},
		{"a result for another transaction", CodeXIDMismatch, func(f *flow) error {
			upToCap(f)
			return capRes(f, func(r []CapResItem) []CapResItem { r[0].XID[0] ^= 1; return r }, nil)
		}},
		{"a result capturing more than asked", CodeAmountMismatch, func(f *flow) error {
			upToCap(f)
			return capRes(f, func(r []CapResItem) []CapResItem { r[0].CapAmt.Value++; return r }, nil)
		}},
		{"fewer results than items", CodeTransIDsMismatch, func(f *flow) error {
			upToCap(f)
			it := f.capSent.Items[0]
			return capRes(f, same, func(d *CapReqData) { d.Items = append(d.Items, it) })
		}},
	}
}()

func TestMerchantChecksCapRes(t *testing.T) { runChecks(t, merchantChecksCapResCases) }

func pad(r []CapResItem, n int) []CapResItem {
	for len(r) < n {
		r = append(r, r[0])
	}
	return r[:n]
}

var certificateChecksCases = func() []checkCase {
	// Each case issues a cardholder certificate that breaks one rule of
	// Trust.Verify and runs the merchant's check of a PReq signed with it.
	withCardholder := func(f *flow, ca *testpki.CA, o testpki.Options) error {
		key := testpki.SigningKey(f.s, o.Name, "cardholder")
		o.Name = "test cardholder"
		if o.Public == nil {
			o.Public = key
		}
		if o.Type == 0 {
			o.Type = CertCardholderSignature
		}
		o.Extensions = append(o.Extensions, AccountHashExtension(AccountHash(f.s, f.card.PAN, f.card.CardExpiry, f.card.PANSecret)))
		der := ca.Issue(o)
		// Build the PReq with the usual cardholder, then sign the dual
		// signature with key and carry the doctored certificate instead
		// (NewSigningKey would refuse some of these certificates itself).
		f.must(f.pinit)
		f.rebuildPReq(nil, nil)
		ds := Signature{Suite: f.s, Signer: ThumbprintOf(der),
			Value: rawSign(f.s, key, LabelDualSig, DualSignatureInput(f.preqRes.PIMD, f.preqRes.OIMD))}
		f.preq.PI.DualSignature = &ds
		f.preq.PI.Certificates = append([][]byte{der}, ca.Chain...)
		return f.checkPReq()
	}
	return []checkCase{
		{"an expired cardholder certificate", CodeCertExpired, func(f *flow) error {
			return withCardholder(f, f.p.CCA, testpki.Options{NotAfter: testpki.Epoch.Add(-time.Minute)})
		}},
		{"a cardholder certificate not yet valid", CodeCertExpired, func(f *flow) error {
			return withCardholder(f, f.p.CCA, testpki.Options{NotBefore: testpki.Epoch.Add(time.Minute)})
		}},
		{"an expired cardholder CA", CodeCertExpired, func(f *flow) error {
			cca := f.p.Brand.SubCA(CertCardholderCA, "expired CCA")
			der := f.p.Brand.Issue(testpki.Options{Type: CertCardholderCA, Name: "expired CCA", Public: cca.Key,
				NotAfter: testpki.Epoch.Add(-time.Minute), Extensions: []pkix.Extension{BrandExtension(testpki.TestBrand)}})
			cca.Cert, cca.Chain = der, append([][]byte{der}, f.p.Brand.Chain...)
			cca.X509, _ = x509.ParseCertificate(der)
			return withCardholder(f, cca, testpki.Options{})
		}},
		{"a revoked cardholder certificate", CodeCertRevoked, func(f *flow) error {
			f.revoked = append(f.revoked, f.p.Cardholder.Cert.X509.SerialNumber)
			f.must(f.pinit)
			return f.purchase()
		}},
		{"a revoked cardholder CA", CodeCertRevoked, func(f *flow) error {
			f.revoked = append(f.revoked, f.p.CCA.X509.SerialNumber)
			f.must(f.pinit)
			return f.purchase()
		}},
		{"a cardholder certificate issued by the merchant CA", CodeCertChain, func(f *flow) error {
			return withCardholder(f, f.p.MCA, testpki.Options{})
		}},
		{"a merchant certificate used as cardholder certificate", CodeCertRole, func(f *flow) error {
			return withCardholder(f, f.p.MCA, testpki.Options{Type: CertMerchantSignature,
				Extensions: []pkix.Extension{MerchantDataExtension(MerchantData{MerchantID: "M-1", Name: "n", AcquirerBIN: "400000"})}})
		}},
		{"a cardholder certificate allowing key encipherment", CodeCertRole, func(f *flow) error {
			return withCardholder(f, f.p.CCA, testpki.Options{KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})
		}},
		{"a cardholder certificate with a small-order Ed25519 key", CodeCertKeyType, func(f *flow) error {
			identity := make(ed25519.PublicKey, 32)
			identity[0] = 1 // the neutral element: any "signature" R = [r]B, S = r would verify
			return withCardholder(f, f.p.CCA, testpki.Options{Public: identity})
		}},
		{"a merchant certificate without merchant data", CodeCertRole, func(f *flow) error {
			return withCardholder(f, f.p.MCA, testpki.Options{Type: CertMerchantSignature})
		}},
		{"a cardholder certificate with merchant data", CodeCertRole, func(f *flow) error {
			return withCardholder(f, f.p.CCA, testpki.Options{
				Extensions: []pkix.Extension{MerchantDataExtension(MerchantData{MerchantID: "M-1", Name: "n", AcquirerBIN: "400000"})}})
		}},
		{"a cardholder certificate of the other suite", CodeCertKeyType, func(f *flow) error {
			o := f.otherPKI()
			f.cardholder = o.Cardholder
			f.must(f.pinit)
			f.preq = nil
			// Sign the dual signature with the other suite's key but label it
			// with this transaction's suite, so only the key type is wrong.
			f.rebuildPReq(nil, func(p *PReqParams) { p.Key = nil })
			ds := Signature{Suite: f.s, Signer: o.Cardholder.Cert.Thumb, Value: make([]byte, 64)}
			f.preq.PI.DualSignature = &ds
			f.preq.PI.Certificates = o.Cardholder.Chain
			f.preq.PI.Sealed = ForgeSeal(f.rnd, f.p.Gateway.KE.Cert, LabelSealPIDual, []byte("x"), nil)
			f.trustBothSuites()
			return f.checkPReq()
		}},
		{"a dual signature whose certificate is not sent", CodeCertMissing, func(f *flow) error {
			f.must(f.pinit, f.purchase)
			f.preq.PI.Certificates = f.preq.PI.Certificates[1:]
			return f.checkPReq()
		}},
	}
}()

func TestCertificateChecks(t *testing.T) { runChecks(t, certificateChecksCases) }

func TestKeyUsageSeparatesSigningFromKeyExchange(t *testing.T) {
	p := pkiFor(SuitePQ)
	pub, _ := testpki.KEMKey(SuitePQ, "ku", "gateway")
	for _, tc := range []struct {
		name string
		ku   x509.KeyUsage
		want Code
	}{
		{"key encipherment only is a key-exchange certificate", x509.KeyUsageKeyEncipherment, 0},
		{"data encipherment is not key exchange", x509.KeyUsageDataEncipherment, CodeCertRole},
		{"a key-exchange key that may also sign", x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature, CodeCertRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der := p.PCA.Issue(testpki.Options{Type: CertGatewayKeyExchange, Name: "ku", Public: pub, KeyUsage: tc.ku})
			_, err := p.Trust.Verify(append([][]byte{der}, p.PCA.Chain...), ThumbprintOf(der), CertGatewayKeyExchange, SuitePQ)
			if CodeOf(err) != tc.want {
				t.Fatalf("got %v, want code %d", err, tc.want)
			}
		})
	}
}

func TestVerifyIgnoresCertificatesOffThePath(t *testing.T) {
	// PInitRes carries the merchant's and the gateway's chains; an expired
	// certificate of one must not fail the check of the other.
	p := pkiFor(SuitePQ)
	pub, _ := testpki.KEMKey(SuitePQ, "off path", "gateway")
	expired := p.PCA.Issue(testpki.Options{Type: CertGatewayKeyExchange, Name: "old", Public: pub, NotAfter: testpki.Epoch.Add(-time.Hour)})
	certs := append(append([][]byte{}, p.Merchant.Sig.Chain...), expired)
	if _, err := p.Trust.Verify(certs, p.Merchant.Sig.Cert.Thumb, CertMerchantSignature, SuitePQ); err != nil {
		t.Fatal(err)
	}
}

func TestDeclinedAuthResHasNoAmount(t *testing.T) {
	f := newFlow(t, SuitePQ)
	f.must(f.pinit, f.purchase, f.authorize)
	d := AuthResData{TransIDs: f.auth.Request.TransIDs, MerchantID: "M-0001", Result: AuthDeclined,
		Reason: DeclineExpiredCard, AuthAmt: Amount{Currency: 978, Value: 1}}
	s := AuthResSigned{Data: d, Signature: ForgeSign(f.p.Gateway.Sig, LabelSigAuthRes, Encode(&d))}
	if _, err := Decode[AuthResSigned](Encode(&s)); CodeOf(err) != CodeMalformed {
		t.Fatalf("got %v, want CodeMalformed", err)
	}
}

// rawSign signs Labelled(label, s, tbs) with key, as docs/PROTOCOL.md
// section 4 says, without package protocol's keys.
func rawSign(s Suite, key crypto.Signer, label string, tbs []byte) []byte {
	return testpki.Sign(key, Labelled(label, s, tbs))
}

// checkError delivers an Error to the cardholder, which expects it from a
// signer of type from.
func (f *flow) checkError(e *Error, from CertType) error {
	e = receive(f, "cardholder", "Error", e, vectors.Context{From: int(from)})
	_, err := VerifyError(f.trust(), e, from, f.s)
	return err
}

var errorChecksCases = []checkCase{
	{"a changed signed Error", CodeSignature, func(f *flow) error {
		f.must(f.pinit)
		e, err := NewError(f.checkPInitResBroken(), Challenge{5}, f.s, nil, f.p.Merchant.Sig)
		if err != nil {
			f.t.Fatal(err)
		}
		e.Data.Code = CodeDecrypt
		return f.checkError(e, CertMerchantSignature)
	}},
	{"an unsigned Error cannot be authenticated", CodeSignature, func(f *flow) error {
		f.must(f.pinit)
		e, err := NewError(f.checkPInitResBroken(), Challenge{5}, f.s, nil, nil)
		if err != nil {
			f.t.Fatal(err)
		}
		return f.checkError(e, CertMerchantSignature)
	}},
	{"an Error signed by the gateway where the merchant was expected", CodeCertRole, func(f *flow) error {
		f.must(f.pinit)
		e, err := NewError(f.checkPInitResBroken(), Challenge{5}, f.s, nil, f.p.Gateway.Sig)
		if err != nil {
			f.t.Fatal(err)
		}
		return f.checkError(e, CertMerchantSignature)
	}},
}

func TestErrorChecks(t *testing.T) { runChecks(t, errorChecksCases) }

func TestCertificateProfile(t *testing.T) {
	p := pkiFor(SuiteNIST)
	key := testpki.SigningKey(SuiteNIST, "profile", "cardholder")
	issue := func(edit func(*x509.Certificate)) []byte {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "profile"},
			NotBefore: testpki.Epoch.Add(-time.Hour), NotAfter: testpki.Epoch.Add(time.Hour),
			KeyUsage:        x509.KeyUsageDigitalSignature,
			ExtraExtensions: []pkix.Extension{CertTypeExtension(CertCardholderSignature)},
		}
		edit(tmpl)
		der, err := x509.CreateCertificate(nil, tmpl, p.CCA.X509, key.Public(), p.CCA.Key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if _, err := ParseCertificate(issue(func(*x509.Certificate) {})); err != nil {
		t.Fatalf("the baseline certificate: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*x509.Certificate)
	}{
		{"signed with ECDSA and SHA-384", func(c *x509.Certificate) { c.SignatureAlgorithm = x509.ECDSAWithSHA384 }},
		{"a 21-octet serial number", func(c *x509.Certificate) { c.SerialNumber = new(big.Int).Lsh(big.NewInt(1), 165) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCertificate(issue(tc.edit)); CodeOf(err) != CodeCertChain {
				t.Fatalf("got %v, want CodeCertChain", err)
			}
		})
	}
}

// TestVerifyTerminatesOnIssuerLoops: two certificates that name each other
// as issuer must not send the walk up the chain round in circles (an
// attacker controls the certificates of a PReq).
func TestVerifyTerminatesOnIssuerLoops(t *testing.T) {
	p := pkiFor(SuitePQ)
	keyA, keyB := testpki.SigningKey(SuitePQ, "loop", "A"), testpki.SigningKey(SuitePQ, "loop", "B")
	tmpl := func(cn string, typ CertType) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: cn},
			NotBefore: testpki.Epoch.Add(-time.Hour), NotAfter: testpki.Epoch.Add(time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: typ.IsCA(),
			ExtraExtensions: []pkix.Extension{CertTypeExtension(typ)}}
	}
	create := func(c, parent *x509.Certificate, pub any, key crypto.Signer) []byte {
		der, err := x509.CreateCertificate(nil, c, parent, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	a, b := tmpl("A", CertCardholderCA), tmpl("B", CertBrandCA)
	certA := create(a, b, keyA.Public(), keyB) // A issued by B
	certB := create(b, a, keyB.Public(), keyA) // B issued by A
	leafT := tmpl("leaf", CertCardholderSignature)
	leafT.KeyUsage = x509.KeyUsageDigitalSignature
	leaf := create(leafT, a, p.Cardholder.Cert.X509.PublicKey, keyA)

	done := make(chan error, 1)
	go func() {
		_, err := p.Trust.Verify([][]byte{leaf, certA, certB}, ThumbprintOf(leaf), CertCardholderSignature, SuitePQ)
		done <- err
	}()
	select {
	case err := <-done:
		if CodeOf(err) != CodeCertChain {
			t.Fatalf("got %v, want CodeCertChain", err)
		}
	case <-time.After(30 * time.Second): // a liveness bound, not a speed target
		t.Fatal("Trust.Verify does not terminate on an issuer loop")
	}
}

func TestAmountPolicyIsExactForLargeAmounts(t *testing.T) {
	big := Amount{Currency: 978, Value: 1 << 62}
	f := newFlow(t, SuitePQ)
	f.order.PurchAmt = big
	f.policy = AmountPolicy{MaxOverPercent: 100}
	f.authAmt = Amount{Currency: 978, Value: 1 << 62} // the bound is 2^63, past int64
	f.must(f.pinit, f.purchase, f.authorize)
}

func TestECDSAKeysMustBeP256(t *testing.T) {
	p := pkiFor(SuiteNIST)
	k384, err := ecdsa.GenerateKey(elliptic.P384(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A merchant CA on P-384: its ecdsa-with-SHA256 signatures would not be
	// P-256 ones.
	der := p.Brand.Issue(testpki.Options{Type: CertMerchantCA, Name: "p384 CA", Public: k384})
	if _, err := ParseCertificate(der); CodeOf(err) != CodeCertKeyType {
		t.Fatalf("got %v, want CodeCertKeyType", err)
	}
}
