package protocol_test

import (
	"crypto/x509"
	"io"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
	"github.com/setpay/setpay/vectors"
)

// pkiSeed seeds the test hierarchies; the vector generator uses its own.
var pkiSeed = "protocol tests"

// pkis caches one test hierarchy per suite: building one costs several
// signatures and an X-Wing key derivation.
var pkis = map[Suite]*testpki.PKI{}

func pkiFor(s Suite) *testpki.PKI {
	if p, ok := pkis[s]; ok {
		return p
	}
	p := testpki.New(s, pkiSeed)
	pkis[s] = p
	return p
}

// wire sends m through the wire: marshal, parse, and check the type.
func wire[T Message](t testing.TB, m T) T {
	t.Helper()
	b := NewWrapper(m, testpki.Epoch, nil, nil).Marshal()
	w, err := Parse(b)
	if err != nil {
		t.Fatalf("%T does not survive the wire: %v", m, err)
	}
	got, err := Expect[T](w)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// flow is one purchase, step by step. Each step method builds the next
// message from the state and verifies it as its receiver would, returning
// the receiver's error. Tests change the state between steps to break
// exactly one check.
type flow struct {
	t     testing.TB
	p     *testpki.PKI
	s     Suite
	rnd   io.Reader
	order Order

	cardholder *SigningKey // nil: unsigned PReq
	card       Card
	policy     AmountPolicy
	reqCert    bool
	held       [][]byte

	// The receiving party's trust: anchors (nil: the PKI's root) and
	// revoked serial numbers.
	roots   [][]byte
	revoked []*big.Int
	// last is the most recent verification, as a test vector records it.
	last *verification

	pinitReq *PInitReq
	pinitRes *PInitRes
	terms    *PurchaseTerms
	preq     *PReq
	preqRes  *PReqResult
	verified *VerifiedPReq
	authAmt  Amount
	authReq  *AuthReq
	auth     *Authorization
	authRes  *AuthRes
	authData *AuthResData
	pres     *PRes
	presData *PResData
	capItems []CapItem
	capReq   *CapReq
	capSent  *CapReqData
	batch    *CaptureBatch
	capRes   *CapRes
	capData  *CapResData
}

func newFlow(t testing.TB, s Suite) *flow {
	p := pkiFor(s)
	f := &flow{
		t: t, p: p, s: s,
		rnd:        rand.NewChaCha8([32]byte{byte(s)}),
		order:      Order{OD: []byte("1 x Illustrated SET, paperback; ship to 1 Example Way"), PurchAmt: Amount{Currency: 978, Value: 4200}},
		cardholder: p.Cardholder,
		card:       p.Card,
	}
	f.authAmt = f.order.PurchAmt
	return f
}

// verification is one party's check of one received message: what the
// negative test vectors publish.
type verification struct {
	party, check string
	input        []byte // the DER MessageWrapper received
	ctx          vectors.Context
	item         *int // CapReq: the failing item, when the batch passed
}

// trust is the receiving party's Trust: the flow's roots and revocations at
// the fixed time.
func (f *flow) trust() *Trust {
	roots := f.roots
	if roots == nil {
		roots = [][]byte{f.p.Root.Cert}
	}
	t, err := NewTrust(roots...)
	if err != nil {
		f.t.Fatal(err)
	}
	t.Now = func() time.Time { return testpki.Epoch }
	if len(f.revoked) > 0 {
		t.Revoked = func(c *x509.Certificate) bool {
			return slices.ContainsFunc(f.revoked, func(n *big.Int) bool { return n.Cmp(c.SerialNumber) == 0 })
		}
	}
	return t
}

// receive delivers m to party over the wire and records the verification
// the caller is about to make, with the receiving party's context.
func receive[T Message](f *flow, party, check string, m T, ctx vectors.Context) T {
	f.t.Helper()
	for _, r := range f.roots {
		ctx.Roots = append(ctx.Roots, r)
	}
	for _, n := range f.revoked {
		ctx.Revoked = append(ctx.Revoked, n.String())
	}
	in := NewWrapper(m, testpki.Epoch, nil, nil).Marshal()
	f.last = &verification{party: party, check: check, input: in, ctx: ctx}
	return wire(f.t, m)
}

func wireBytes(m Message) []byte { return NewWrapper(m, testpki.Epoch, nil, nil).Marshal() }

func hexes(bs [][]byte) []vectors.Hex {
	var out []vectors.Hex
	for _, b := range bs {
		out = append(out, b)
	}
	return out
}

func (f *flow) random(b []byte) {
	if _, err := io.ReadFull(f.rnd, b); err != nil {
		f.t.Fatal(err)
	}
}

// pinit runs PInitReq -> PInitRes and the cardholder's check of it.
func (f *flow) pinit() error {
	var err error
	f.pinitReq, err = NewPInitReq(f.rnd, []byte("C-order-1"), "en", testpki.TestBrand, testpki.TestBIN, []Suite{f.s}, f.held)
	if err != nil {
		f.t.Fatal(err)
	}
	f.pinitReq = wire(f.t, f.pinitReq)
	var xid XID
	var challM Challenge
	f.random(xid[:])
	f.random(challM[:])
	f.pinitRes, err = NewPInitRes(&PInitResParams{
		Req: f.pinitReq, Suite: f.s, Key: f.p.Merchant.Sig, Gateway: f.p.Gateway.KE.Chain,
		LIDM: []byte("M-42"), XID: xid, ChallM: challM, PReqDate: testpki.Epoch,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.checkPInitRes()
}

func (f *flow) checkPInitRes() error {
	f.pinitRes = receive(f, "cardholder", "PInitRes", f.pinitRes, vectors.Context{PInitReq: wireBytes(f.pinitReq), Held: hexes(f.held)})
	var err error
	f.terms, err = VerifyPInitRes(f.trust(), f.pinitReq, f.pinitRes, f.held)
	return err
}

// purchase builds PReq and runs the merchant's check.
func (f *flow) purchase() error {
	var rrpid RRPID
	var salt, exNonce Nonce
	f.random(rrpid[:])
	f.random(salt[:])
	f.random(exNonce[:])
	var err error
	f.preqRes, err = NewPReq(&PReqParams{
		Terms: f.terms, ChallC: f.pinitReq.ChallC, BrandID: testpki.TestBrand, BIN: testpki.TestBIN,
		OD: f.order.OD, PurchAmt: f.order.PurchAmt, RRPID: rrpid, ODSalt: salt, EXNonce: exNonce,
		Card: f.card, Key: f.cardholder, Rand: f.rnd,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.preq = f.preqRes.PReq
	return f.checkPReq()
}

func (f *flow) checkPReq() error {
	f.preq = receive(f, "merchant", "PReq", f.preq, vectors.Context{PInitRes: wireBytes(f.pinitRes),
		Order: &vectors.Order{OD: f.order.OD, Currency: int(f.order.PurchAmt.Currency), Amount: f.order.PurchAmt.Value}, RequireCert: f.reqCert})
	var err error
	f.verified, err = VerifyPReq(f.trust(), &f.pinitRes.Data, &f.order, f.preq, f.reqCert)
	return err
}

// authorize builds AuthReq and runs the gateway's check.
func (f *flow) authorize() error {
	var rrpid RRPID
	f.random(rrpid[:])
	var err error
	f.authReq, err = NewAuthReq(&AuthReqParams{
		Keys: f.p.Merchant, Gateway: f.terms.Gateway, TransIDs: f.pinitRes.Data.TransIDs, RRPID: rrpid,
		AuthAmt: f.authAmt, PReq: f.verified, PI: f.preq.PI, Rand: f.rnd,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.checkAuthReq()
}

func (f *flow) checkAuthReq() error {
	f.authReq = receive(f, "gateway", "AuthReq", f.authReq, vectors.Context{MaxOverPercent: f.policy.MaxOverPercent})
	var err error
	f.auth, err = VerifyAuthReq(f.trust(), f.p.Gateway, f.policy, f.authReq)
	return err
}

// respond builds an approving AuthRes and runs the merchant's check.
func (f *flow) respond() error {
	var err error
	f.authRes, err = NewAuthRes(f.p.Gateway, f.auth, &AuthDecision{
		Result: AuthApproved, AuthAmt: f.auth.Request.AuthAmt, AuthCode: "A1B2C3", BankRef: []byte("hold-1"),
	}, testpki.Epoch, f.rnd)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.checkAuthRes()
}

func (f *flow) checkAuthRes() error {
	sent := f.authReqData()
	f.authRes = receive(f, "merchant", "AuthRes", f.authRes, vectors.Context{Sent: Encode(sent), GatewayKE: f.terms.Gateway.X509.Raw})
	var err error
	f.authData, err = VerifyAuthRes(f.trust(), f.p.Merchant, f.terms.Gateway, sent, f.authRes)
	return err
}

// authReqData is what the merchant remembers of the AuthReq it sent.
func (f *flow) authReqData() *AuthReqData { return &f.auth.Request }

// answer builds PRes and runs the cardholder's check.
func (f *flow) answer() error {
	var err error
	f.pres, err = NewPRes(f.p.Merchant.Sig, &f.preq.OIData, PurchApproved, &f.authData.AuthAmt, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.checkPRes()
}

func (f *flow) checkPRes() error {
	f.pres = receive(f, "cardholder", "PRes", f.pres, vectors.Context{PInitReq: wireBytes(f.pinitReq), PInitRes: wireBytes(f.pinitRes),
		OIData: Encode(&f.preqRes.PReq.OIData), Held: hexes(f.held)})
	var err error
	f.presData, err = VerifyPRes(f.trust(), f.terms, &f.preqRes.PReq.OIData, f.pres, f.held)
	return err
}

// capture builds a one-item CapReq and runs the gateway's check.
func (f *flow) capture() error {
	var rrpid RRPID
	f.random(rrpid[:])
	if f.capItems == nil {
		f.capItems = []CapItem{{TransIDs: f.authData.TransIDs, AuthRRPID: f.authData.RRPID, CapAmt: f.authData.AuthAmt, CapToken: *f.authData.CapToken}}
	}
	var err error
	f.capReq, f.capSent, err = NewCapReq(f.p.Merchant, f.terms.Gateway, rrpid, 7, f.capItems, f.rnd)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.checkCapReq()
}

func (f *flow) checkCapReq() error {
	f.capReq = receive(f, "gateway", "CapReq", f.capReq, vectors.Context{})
	var err error
	f.batch, err = VerifyCapReq(f.trust(), f.p.Gateway, f.capReq)
	return err
}

// itemErr returns the first item error of the verified batch.
func (f *flow) itemErr() error {
	for i, it := range f.batch.Items {
		if it.Err != nil {
			f.last.item = &i
			return it.Err
		}
	}
	return nil
}

// settle builds CapRes (capturing every item that passed) and runs the
// merchant's check.
func (f *flow) settle() error {
	var results []CapResItem
	for _, it := range f.batch.Items {
		r := CapResItem{XID: it.Item.TransIDs.XID, CapAmt: Amount{Currency: it.Item.CapAmt.Currency}}
		if it.Err != nil {
			r.Code = CodeOf(it.Err)
		} else {
			r.CapAmt = it.Item.CapAmt
		}
		results = append(results, r)
	}
	var err error
	f.capRes, err = NewCapRes(f.p.Gateway, f.batch, results, f.rnd)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.checkCapRes()
}

func (f *flow) checkCapRes() error {
	f.capRes = receive(f, "merchant", "CapRes", f.capRes, vectors.Context{Sent: Encode(f.capSent), GatewayKE: f.terms.Gateway.X509.Raw})
	var err error
	f.capData, err = VerifyCapRes(f.trust(), f.p.Merchant, f.terms.Gateway, f.capSent, f.capRes)
	return err
}

// run runs every step and fails the test at the first error.
func (f *flow) run() {
	f.t.Helper()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"PInitRes", f.pinit}, {"PReq", f.purchase}, {"AuthReq", f.authorize}, {"AuthRes", f.respond},
		{"PRes", f.answer}, {"CapReq", f.capture}, {"CapReq item", f.itemErr}, {"CapRes", f.settle},
	}
	for _, st := range steps {
		if err := st.fn(); err != nil {
			f.t.Fatalf("%s: %v", st.name, err)
		}
	}
}

func TestPurchase(t *testing.T) {
	for _, s := range Suites {
		t.Run(s.String()+" dual-signed purchase completes", func(t *testing.T) {
			f := newFlow(t, s)
			f.run()
			if got := f.auth.PANData.PAN.Digits(); got != testpki.TestPAN {
				t.Errorf("gateway read PAN %q", got)
			}
			if f.auth.Cardholder == nil {
				t.Error("gateway did not authenticate the cardholder")
			}
			if f.presData.Status != PurchApproved || *f.presData.AuthAmt != f.order.PurchAmt {
				t.Errorf("PRes = %+v", f.presData)
			}
			if len(f.capData.Items) != 1 || f.capData.Items[0].Code != 0 || f.capData.Items[0].CapAmt != f.order.PurchAmt {
				t.Errorf("CapRes items = %+v", f.capData.Items)
			}
		})
		t.Run(s.String()+" purchase without a cardholder certificate completes", func(t *testing.T) {
			f := newFlow(t, s)
			f.cardholder = nil
			f.run()
			if f.auth.Cardholder != nil || f.preq.PI.DualSigned() {
				t.Error("unsigned purchase carried a cardholder certificate")
			}
		})
	}
}

func TestThumbsLetTheMerchantOmitCertificates(t *testing.T) {
	for _, s := range Suites {
		f := newFlow(t, s)
		f.held = append(append([][]byte{}, f.p.Merchant.Sig.Chain...), f.p.Gateway.KE.Chain...)
		f.run()
		if n := len(f.pinitRes.Certificates); n != 0 {
			t.Errorf("%s: merchant sent %d certificates the cardholder already held", s, n)
		}
		// Without the held certificates the cardholder cannot check PInitRes.
		if _, err := VerifyPInitRes(f.p.Trust, f.pinitReq, f.pinitRes, nil); CodeOf(err) != CodeCertMissing {
			t.Errorf("%s: got %v, want CodeCertMissing", s, err)
		}
	}
}

func TestDeclinedPurchase(t *testing.T) {
	for _, s := range Suites {
		f := newFlow(t, s)
		f.must(f.pinit, f.purchase, f.authorize)
		f.decide(nil, &AuthDecision{Result: AuthDeclined, Reason: DeclineInsufficientFunds})
		f.must(f.checkAuthRes)
		if f.authData.Result != AuthDeclined || f.authData.Reason != DeclineInsufficientFunds || f.authData.CapToken != nil {
			t.Fatalf("%s: AuthRes = %+v", s, f.authData)
		}
		var err error
		f.pres, err = NewPRes(f.p.Merchant.Sig, &f.preq.OIData, PurchDeclined, nil, f.authData.Reason)
		if err != nil {
			t.Fatal(err)
		}
		f.must(f.checkPRes)
		if f.presData.Status != PurchDeclined || f.presData.Reason != DeclineInsufficientFunds || f.presData.AuthAmt != nil {
			t.Fatalf("%s: PRes = %+v", s, f.presData)
		}
	}
}
