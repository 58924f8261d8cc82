package lesson

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/testpki"
	"github.com/setpay/setpay/protocol"
)

// Defaults of Options.
const (
	DefaultPAN    = testpki.TestPAN
	DefaultOrder  = "1 x The Illustrated SET, paperback"
	DefaultAmount = 4200
	currency      = 978
	orderID       = "O-lesson-1"
)

// Options choose a run. The zero value is the honest run of suite pq with
// seed 0.
type Options struct {
	Suite  protocol.Suite // 0: pq
	Seed   uint64
	Attack string // "": honest
	PAN    string // "": DefaultPAN
	Order  string // "": DefaultOrder
	Amount int64  // 0: DefaultAmount (minor units)
}

// run is one walkthrough in progress.
type run struct {
	o   Options
	tr  *Trace
	s   protocol.Suite
	now time.Time
	atk *Attack

	pki   *testpki.PKI // the suite's hierarchy
	other *testpki.PKI // the other suite's (downgrade only)
	card  protocol.Card
	chKey *protocol.SigningKey

	rnd map[Party]io.Reader

	trustC, trustM, trustG *protocol.Trust
	bank                   *bank.Bank
	// lastPIData is the PIData of the last PReq built, for the
	// cardholder's view (PReqResult does not carry it).
	lastPIData protocol.PIData
}

// Run runs the walkthrough of o. It returns the trace even when an attack
// was missed (Outcome.Result "missed"); an error means the walkthrough
// itself could not run.
func Run(o Options) (*Trace, error) {
	if o.Suite == 0 {
		o.Suite = protocol.SuitePQ
	}
	if !o.Suite.Valid() {
		return nil, fmt.Errorf("lesson: unknown suite %d", o.Suite)
	}
	if o.PAN == "" {
		o.PAN = DefaultPAN
	}
	if o.Order == "" {
		o.Order = DefaultOrder
	}
	if o.Amount == 0 {
		o.Amount = DefaultAmount
	}
	r := &run{o: o, s: o.Suite, now: testpki.Epoch}
	if o.Attack != "" {
		a, ok := attackByName(o.Attack)
		if !ok {
			return nil, fmt.Errorf("lesson: no attack %q (setpay demo --attack list)", o.Attack)
		}
		r.atk = a
		if a.Name == "downgrade" {
			r.s = protocol.SuitePQ // the attacker removes pq from the offer
		}
	}
	pan, err := protocol.NewPAN(o.PAN)
	if err != nil {
		return nil, err
	}
	r.tr = &Trace{Version: TraceVersion, Seed: o.Seed, Suite: r.s.String(), Attack: o.Attack, PAN: pan.Digits(),
		Order: o.Order, Currency: currency, Amount: o.Amount}
	seed := strconv.FormatUint(o.Seed, 10)
	r.pki = testpki.New(r.s, "lesson "+seed)
	r.rnd = map[Party]io.Reader{}
	for _, p := range []Party{Cardholder, Merchant, Gateway, Issuer, "attacker"} {
		r.rnd[p] = rand.NewChaCha8(sha256.Sum256([]byte("setpay lesson/" + seed + "/" + string(p))))
	}
	r.card = r.pki.Card
	r.chKey = r.pki.Cardholder
	if pan.Digits() != testpki.TestPAN {
		r.card.PAN = pan
		r.chKey = r.pki.NewCardholder("cardholder", r.card, testpki.Options{})
	}
	roots := [][]byte{r.pki.Root.Cert}
	if r.atk != nil && r.atk.Name == "downgrade" {
		r.other = testpki.New(protocol.SuiteNIST, "lesson "+seed)
		roots = append(roots, r.other.Root.Cert)
	}
	for _, t := range []**protocol.Trust{&r.trustC, &r.trustM, &r.trustG} {
		if *t, err = protocol.NewTrust(roots...); err != nil {
			return nil, err
		}
		(*t).Now = func() time.Time { return r.now }
	}
	dir, err := os.MkdirTemp("", "setpay-lesson-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if r.bank, err = bank.Open(filepath.Join(dir, "bank.db"), bank.Options{Now: func() time.Time { return r.now }, Rand: r.rnd[Issuer]}); err != nil {
		return nil, err
	}
	defer r.bank.Close()
	if err := r.bank.PutAccounts(context.Background(), bank.Account{PAN: pan.Digits(), Expiry: r.card.CardExpiry, Currency: currency, CreditLimit: 5000_00}); err != nil {
		return nil, err
	}
	if err := r.purchase(); err != nil {
		return nil, err
	}
	return r.tr, nil
}

// caught ends the run at a failed check.
type caught struct {
	party Party
	check Check
}

func (c *caught) Error() string { return fmt.Sprintf("%s: %s", c.party, c.check.Name) }

// is reports whether the attack under way is name.
func (r *run) is(name string) bool { return r.atk != nil && r.atk.Name == name }

func (r *run) random(p Party, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(r.rnd[p], b)
	return b
}

// add appends a step and returns it.
func (r *run) add(st Step) *Step {
	st.N = len(r.tr.Steps) + 1
	r.tr.Steps = append(r.tr.Steps, st)
	return &r.tr.Steps[len(r.tr.Steps)-1]
}

// receive records the receiver's checks of a step; if one failed, it
// returns *caught.
func (r *run) receive(st *Step, party Party, err error, ranOptional bool) error {
	st.Checks = markChecks(st.Message, party, err, ranOptional)
	if err == nil {
		return nil
	}
	for _, c := range st.Checks {
		if c.Result == Failed {
			return &caught{party: party, check: c}
		}
	}
	return err
}

func wire(m protocol.Message, now time.Time, tids *protocol.TransIDs, rrpid *protocol.RRPID) []byte {
	return protocol.NewWrapper(m, now, tids, rrpid).Marshal()
}

// parse is the receiver's strict parse of what it received.
func parse[T protocol.Message](der []byte) (T, error) {
	var zero T
	w, err := protocol.Parse(der)
	if err != nil {
		return zero, err
	}
	return protocol.Expect[T](w)
}

func views(c, m, g View) []View {
	c.Party, m.Party, g.Party = Cardholder, Merchant, Gateway
	return []View{c, m, g}
}

var absent = View{Role: "absent"}

func sender(fs ...[]Field) View   { return View{Role: "sender", Readable: concat(fs...)} }
func receiver(fs ...[]Field) View { return View{Role: "receiver", Readable: concat(fs...)} }

func concat(fs ...[]Field) []Field {
	var out []Field
	for _, f := range fs {
		out = append(out, f...)
	}
	return out
}

// named wraps fields under one name.
func named(name string, v any) []Field {
	return []Field{{Name: name, Note: notes[name], Fields: fieldsOf(v)}}
}

func text(name, value, note string) []Field { return []Field{{Name: name, Value: value, Note: note}} }

func sealedTo(what string, e *protocol.Envelope, to string) Opaque {
	return Opaque{What: what, Form: "ciphertext", Bytes: len(e.Enc) + len(e.Ciphertext),
		Why: "sealed to " + to + "'s key-exchange key: only " + to + " can open it"}
}

// purchase runs the steps; an attack caught ends it early.
func (r *run) purchase() error {
	err := r.steps()
	var c *caught
	switch {
	case err == nil && r.atk == nil:
		return nil // Outcome set by the last step
	case errors.As(err, &c):
		r.tr.Outcome = Outcome{Party: c.party, Check: c.check.Name, Code: c.check.Code, CodeName: c.check.CodeName}
		if r.atk != nil && c.party == r.atk.Party && protocol.Code(c.check.Code) == r.atk.Code && c.check.Name == r.atk.Check {
			r.tr.Outcome.Result = "caught"
			r.tr.Outcome.Text = fmt.Sprintf("attack %s caught by the %s: %q failed with code %d (%s)", r.atk.Name, c.party, c.check.Name, c.check.Code, c.check.CodeName)
		} else {
			r.tr.Outcome.Result = "missed"
			r.tr.Outcome.Text = fmt.Sprintf("the run stopped at the %s's check %q (code %d, %s), not the one the attack expects", c.party, c.check.Name, c.check.Code, c.check.CodeName)
		}
		return nil
	case err == nil:
		r.tr.Outcome.Result = "missed"
		r.tr.Outcome.Text = fmt.Sprintf("attack %s was not caught: the purchase went through", r.atk.Name)
		return nil
	}
	return err
}

func (r *run) steps() error {
	s := r.s
	od := []byte(r.o.Order)
	amt := protocol.Amount{Currency: currency, Value: r.o.Amount}
	mk, gk := r.pki.Merchant, r.pki.Gateway

	// 1. PInitReq: the cardholder offers suites.
	offered := []protocol.Suite{s}
	merchantSuites := []protocol.Suite{s}
	if r.is("downgrade") {
		offered = []protocol.Suite{protocol.SuitePQ, protocol.SuiteNIST}
		merchantSuites = offered
	}
	bin := r.card.PAN.Digits()[:6]
	pinitReq, err := protocol.NewPInitReq(r.rnd[Cardholder], []byte("C-lesson-1"), "en", testpki.TestBrand, bin, offered, nil)
	if err != nil {
		return err
	}
	received := *pinitReq
	st := r.add(Step{Message: "PInitReq", From: Cardholder, To: Merchant,
		Summary: "the cardholder starts the purchase: its card brand, the suites it offers, a fresh challenge"})
	if r.is("downgrade") {
		received.Suites = []protocol.Suite{protocol.SuiteNIST}
		st.Attack = "a man in the middle removed pq from the suites offered (PInitReq is not signed)"
	}
	st.DER = wire(&received, r.now, nil, &received.RRPID)
	st.Fields = fieldsOf(&received)
	st.Views = views(sender(named("pInitReq", pinitReq)), receiver(named("pInitReq", &received)), absent)
	in, err := parse[*protocol.PInitReq](st.DER)
	var chosen protocol.Suite
	if err == nil {
		chosen, err = protocol.ChooseSuite(in.Suites, merchantSuites)
	}
	if err := r.receive(st, Merchant, err, false); err != nil {
		return err
	}
	if chosen != s {
		mk, gk = r.other.Merchant, r.other.Gateway
	}

	// 2. PInitRes: the merchant chooses the suite and the gateway.
	var xid protocol.XID
	var challM protocol.Challenge
	copy(xid[:], r.random(Merchant, len(xid)))
	copy(challM[:], r.random(Merchant, len(challM)))
	pinitRes, err := protocol.NewPInitRes(&protocol.PInitResParams{Req: in, Suite: chosen, Key: mk.Sig, Gateway: gk.KE.Chain,
		LIDM: []byte(orderID), XID: xid, ChallM: challM, PReqDate: r.now})
	if err != nil {
		return err
	}
	st = r.add(Step{Message: "PInitRes", From: Merchant, To: Cardholder,
		Summary: "the merchant opens the transaction (XID, its challenge), names the gateway to pay through, and signs"})
	st.DER = wire(pinitRes, r.now, &pinitRes.Data.TransIDs, &pinitRes.Data.RRPID)
	st.Fields = fieldsOf(pinitRes)
	all := named("pInitRes", pinitRes)
	st.Views = views(receiver(all), sender(all), absent)
	res, err := parse[*protocol.PInitRes](st.DER)
	var terms *protocol.PurchaseTerms
	if err == nil {
		terms, err = protocol.VerifyPInitRes(r.trustC, pinitReq, res, nil)
	}
	if err := r.receive(st, Cardholder, err, false); err != nil {
		return err
	}

	// 3. PReq: OI for the merchant, PI sealed to the gateway, one dual
	// signature over both.
	if r.is("wrong-gateway") {
		other := r.pki.NewGateway("another gateway")
		t := *terms
		t.Gateway = other.KE.Cert
		terms = &t
	}
	preq, err := r.newPReq(terms, pinitReq.ChallC, od, amt)
	if err != nil {
		return err
	}
	sentPReq := preq.PReq
	st = r.add(Step{Message: "PReq", From: Cardholder, To: Merchant,
		Summary: "the purchase request: the order information for the merchant, the payment instruction sealed to the gateway, linked by the dual signature"})
	switch {
	case r.is("tamper-ds"):
		t := *sentPReq
		ds := *t.PI.DualSignature
		ds.Value = append([]byte(nil), ds.Value...)
		ds.Value[len(ds.Value)/2] ^= 0x01
		t.PI.DualSignature = &ds
		sentPReq = &t
		st.Attack = "one bit of the dual signature was flipped in transit"
	case r.is("replay"):
		old, err := r.earlierPReq(amt, od)
		if err != nil {
			return err
		}
		sentPReq = old
		st.Attack = "an attacker sends a PReq it recorded from an earlier purchase instead of this one's"
	case r.is("wrong-gateway"):
		st.Attack = "the cardholder's software sealed the PI to another gateway than the merchant named"
	case r.is("revoked-card"):
		serial := r.chKey.Cert.X509.SerialNumber
		r.trustM.Revoked = func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(serial) == 0 }
		st.Attack = "the cardholder's certificate was revoked (its CA's CRL lists it)"
	}
	st.DER = wire(sentPReq, r.now, &sentPReq.OIData.TransIDs, &sentPReq.OIData.RRPID)
	st.Fields = fieldsOf(sentPReq)
	st.Views = views(
		sender(text("orderDescription", r.o.Order, "the order the cardholder agreed; it never travels, only its hash HOD does"),
			named("oiData", &preq.PReq.OIData), named("piHead", &r.lastPIData.PIHead), named("panData", &r.lastPIData.PANData),
			named("dualSignature", preq.PReq.PI.DualSignature)),
		View{Role: "receiver", Readable: concat(
			text("orderDescription", r.o.Order, "the merchant agreed it with the cardholder: it checks HOD against it"),
			named("oiData", &sentPReq.OIData), text("pimd", hex.EncodeToString(sentPReq.PIMD[:]), notes["pimd"])),
			Opaque: []Opaque{sealedTo("payment instruction (card number, expiry, PANSecret, amount)", &sentPReq.PI.Sealed, "the gateway")}},
		absent)
	got, err := parse[*protocol.PReq](st.DER)
	var verified *protocol.VerifiedPReq
	if err == nil {
		verified, err = protocol.VerifyPReq(r.trustM, &res.Data, &protocol.Order{OD: od, PurchAmt: amt}, got, false)
	}
	ranOptional := false
	if err == nil && r.is("merchant-opens-pi") {
		st.Attack = "the merchant tries to read the PI with its own key-exchange key"
		ranOptional = true
		_, err = mk.KE.OpenPI(&got.PI, got.OIData.TransIDs.XID)
	}
	if err := r.receive(st, Merchant, err, ranOptional); err != nil {
		return err
	}

	// 4. AuthReq: the merchant asks the gateway, forwarding the sealed PI.
	authAmt := amt
	forLinkage := verified
	p := &protocol.AuthReqParams{Keys: mk, Gateway: terms.Gateway, TransIDs: res.Data.TransIDs, PI: got.PI, Rand: r.rnd[Merchant]}
	copy(p.RRPID[:], r.random(Merchant, len(p.RRPID)))
	st = r.add(Step{Message: "AuthReq", From: Merchant, To: Gateway,
		Summary: "the merchant asks the gateway to authorize the amount: its request signed and sealed to the gateway, with the cardholder's PI as it came"})
	switch {
	case r.is("inflate-amount"):
		authAmt.Value *= 2
		st.Attack = "the merchant asks to authorize twice the amount the cardholder agreed"
	case r.is("swap-oi"):
		old, err := r.earlierPReq(amt, []byte("1 x something else"))
		if err != nil {
			return err
		}
		forLinkage = &protocol.VerifiedPReq{OIMD: protocol.OIMD(s, &old.OIData), HOD: old.OIData.HOD, Cardholder: verified.Cardholder}
		st.Attack = "the merchant links this payment to the order information of another order"
	}
	p.AuthAmt, p.PReq = authAmt, forLinkage
	authReq, err := protocol.NewAuthReq(p)
	if err != nil {
		return err
	}
	sentAuth := p.Data()
	st.DER = wire(authReq, r.now, &p.TransIDs, &p.RRPID)
	st.Fields = fieldsOf(authReq)
	mView := View{Role: "sender", Readable: named("authReqData", &sentAuth),
		Opaque: []Opaque{sealedTo("payment instruction", &authReq.PI.Sealed, "the gateway")}}
	gotAuth, err := parse[*protocol.AuthReq](st.DER)
	var auth *protocol.Authorization
	if err == nil {
		auth, err = protocol.VerifyAuthReq(r.trustG, gk, protocol.AmountPolicy{}, gotAuth)
	}
	gView := View{Role: "receiver", Opaque: []Opaque{{What: "order description", Form: "hash", Bytes: len(sentAuth.CheckDigests.HOD),
		Why: "the gateway gets only HOD, a salted hash: it never learns what was bought"}}}
	if auth != nil {
		gView.Readable = concat(named("authReqData", &auth.Request), named("piHead", &auth.PIHead), named("panData", &auth.PANData))
	}
	st.Views = views(absent, mView, gView)
	if err := r.receive(st, Gateway, err, false); err != nil {
		return err
	}

	// 5-6. The gateway asks the issuer, in the bank's own format.
	rrn := hex.EncodeToString(xid[:6])
	bankReq := &bank.AuthRequest{PAN: auth.PANData.PAN, Expiry: auth.PANData.CardExpiry, Amount: auth.Request.AuthAmt.Value,
		Currency: int(auth.Request.AuthAmt.Currency), MerchantID: auth.Merchant.MerchantID(), RRN: rrn, STAN: 1, When: r.now}
	bres, err := r.bankExchange("0100", "the gateway asks the card's issuer to authorize, in the bank network's own message format (ISO 8583 style): card, amount, merchant; no order",
		bankReq.Marshal, bankReq.ParseResponse, "0110", "the issuer approves (code 00, with an approval code) or declines with a reason code; it places a hold on the account")
	if err != nil {
		return err
	}
	dec := &protocol.AuthDecision{Result: protocol.AuthApproved, AuthAmt: auth.Request.AuthAmt, AuthCode: bres.AuthID, BankRef: []byte(rrn)}
	if !bres.Approved {
		dec = &protocol.AuthDecision{Result: protocol.AuthDeclined, Reason: bres.Reason}
	}

	// 7. AuthRes.
	authRes, err := protocol.NewAuthRes(gk, auth, dec, r.now, r.rnd[Gateway])
	if err != nil {
		return err
	}
	st = r.add(Step{Message: "AuthRes", From: Gateway, To: Merchant,
		Summary: "the gateway answers the merchant: the issuer's decision, signed and sealed to the merchant, with a CapToken to capture later"})
	st.DER = wire(authRes, r.now, &auth.Request.TransIDs, &auth.Request.RRPID)
	st.Fields = fieldsOf(authRes)
	gotRes, err := parse[*protocol.AuthRes](st.DER)
	var authData *protocol.AuthResData
	if err == nil {
		authData, err = protocol.VerifyAuthRes(r.trustM, mk, terms.Gateway, &sentAuth, gotRes)
	}
	if authData != nil {
		mv := View{Role: "receiver", Readable: named("authResData", authData)}
		gv := View{Role: "sender", Readable: named("authResData", authData)}
		if authData.CapToken != nil {
			mv.Opaque = []Opaque{{What: "CapToken", Form: "ciphertext", Bytes: len(authData.CapToken.Ciphertext),
				Why: "sealed by the gateway with a key only it holds: the merchant keeps it to capture"}}
		}
		st.Views = views(absent, mv, gv)
	}
	if err := r.receive(st, Merchant, err, false); err != nil {
		return err
	}

	// 8. PRes.
	status, reason := protocol.PurchApproved, protocol.DeclineReason(0)
	var approved *protocol.Amount
	if authData.Result == protocol.AuthApproved {
		approved = &authData.AuthAmt
	} else {
		status, reason = protocol.PurchDeclined, authData.Reason
	}
	pres, err := protocol.NewPRes(mk.Sig, &got.OIData, status, approved, reason)
	if err != nil {
		return err
	}
	st = r.add(Step{Message: "PRes", From: Merchant, To: Cardholder,
		Summary: "the merchant tells the cardholder the outcome, signed"})
	st.DER = wire(pres, r.now, &got.OIData.TransIDs, &got.OIData.RRPID)
	st.Fields = fieldsOf(pres)
	all = named("pRes", pres)
	st.Views = views(receiver(all), sender(all), absent)
	gotPRes, err := parse[*protocol.PRes](st.DER)
	var presData *protocol.PResData
	if err == nil {
		presData, err = protocol.VerifyPRes(r.trustC, terms, &preq.PReq.OIData, gotPRes, nil)
	}
	if err := r.receive(st, Cardholder, err, false); err != nil {
		return err
	}
	if presData.Status != protocol.PurchApproved {
		r.tr.Outcome = Outcome{Result: "declined", Text: "the issuer declined: " + presData.Reason.String()}
		return nil
	}

	// 9. CapReq.
	var capRRPID protocol.RRPID
	copy(capRRPID[:], r.random(Merchant, len(capRRPID)))
	items := []protocol.CapItem{{TransIDs: authData.TransIDs, AuthRRPID: authData.RRPID, CapAmt: authData.AuthAmt, CapToken: *authData.CapToken}}
	capReq, capSent, err := protocol.NewCapReq(mk, terms.Gateway, capRRPID, 1, items, r.rnd[Merchant])
	if err != nil {
		return err
	}
	st = r.add(Step{Message: "CapReq", From: Merchant, To: Gateway,
		Summary: "later, the merchant captures the authorized amount: a batch of items, each with its CapToken, signed and sealed to the gateway"})
	st.DER = wire(capReq, r.now, nil, &capRRPID)
	st.Fields = fieldsOf(capReq)
	gotCap, err := parse[*protocol.CapReq](st.DER)
	var batch *protocol.CaptureBatch
	if err == nil {
		batch, err = protocol.VerifyCapReq(r.trustG, gk, gotCap)
	}
	if err == nil {
		for _, it := range batch.Items {
			if it.Err != nil {
				err = it.Err
				break
			}
		}
	}
	mv := View{Role: "sender", Readable: named("capReqData", capSent),
		Opaque: []Opaque{{What: "CapToken", Form: "ciphertext", Bytes: len(authData.CapToken.Ciphertext), Why: "the gateway's own sealed token, handed back"}}}
	gv := View{Role: "receiver"}
	if batch != nil {
		gv.Readable = named("capReqData", &batch.Request)
		for _, it := range batch.Items {
			if it.Token != nil {
				gv.Readable = append(gv.Readable, named("capToken", it.Token)...)
			}
		}
	}
	st.Views = views(absent, mv, gv)
	if err := r.receive(st, Gateway, err, false); err != nil {
		return err
	}

	// 10-11. The acquirer records the capture.
	capBank := &bank.CaptureRequest{MerchantID: batch.Merchant.MerchantID(), RRN: rrn, AuthID: bres.AuthID, Amount: authData.AuthAmt.Value,
		Currency: int(authData.AuthAmt.Currency), STAN: 2, When: r.now}
	cres, err := r.bankExchange("0220", "the gateway tells the acquirer to capture: the hold becomes a payment to the merchant",
		capBank.Marshal, capBank.ParseResponse, "0230", "the acquirer confirms (code 00)")
	if err != nil {
		return err
	}
	results := []protocol.CapResItem{{XID: xid, CapAmt: authData.AuthAmt}}
	if !cres.Approved {
		results[0] = protocol.CapResItem{XID: xid, Code: protocol.CodeUnknownTrans, CapAmt: protocol.Amount{Currency: currency}}
	}

	// 12. CapRes.
	capRes, err := protocol.NewCapRes(gk, batch, results, r.rnd[Gateway])
	if err != nil {
		return err
	}
	st = r.add(Step{Message: "CapRes", From: Gateway, To: Merchant,
		Summary: "the gateway reports each item's capture, signed and sealed to the merchant"})
	st.DER = wire(capRes, r.now, nil, &capRRPID)
	st.Fields = fieldsOf(capRes)
	gotCapRes, err := parse[*protocol.CapRes](st.DER)
	var capData *protocol.CapResData
	if err == nil {
		capData, err = protocol.VerifyCapRes(r.trustM, mk, terms.Gateway, capSent, gotCapRes)
	}
	if capData != nil {
		st.Views = views(absent, receiver(named("capResData", capData)), sender(named("capResData", capData)))
	}
	if err := r.receive(st, Merchant, err, false); err != nil {
		return err
	}
	r.tr.Outcome = Outcome{Result: "approved", Text: fmt.Sprintf("paid: %s authorized and captured; the merchant never saw the card number, the gateway and the bank never saw the order",
		formatAmount(currency, capData.Items[0].CapAmt.Value))}
	return nil
}

// newPReq builds the cardholder's PReq and remembers its PIData for the
// cardholder's view.
func (r *run) newPReq(terms *protocol.PurchaseTerms, challC protocol.Challenge, od []byte, amt protocol.Amount) (*protocol.PReqResult, error) {
	p := &protocol.PReqParams{Terms: terms, ChallC: challC, BrandID: testpki.TestBrand, BIN: r.card.PAN.Digits()[:6], OD: od,
		PurchAmt: amt, Card: r.card, Key: r.chKey, Rand: r.rnd[Cardholder]}
	copy(p.RRPID[:], r.random(Cardholder, len(p.RRPID)))
	copy(p.ODSalt[:], r.random(Cardholder, len(p.ODSalt)))
	copy(p.EXNonce[:], r.random(Cardholder, len(p.EXNonce)))
	res, err := protocol.NewPReq(p)
	if err != nil {
		return nil, err
	}
	r.lastPIData = protocol.PIData{
		PIHead: protocol.PIHead{TransIDs: terms.Data.TransIDs, HOD: res.PReq.OIData.HOD, PurchAmt: amt, MerchantID: terms.Merchant.MerchantID(),
			TransStain: protocol.TransStain(terms.Data.Suite, terms.Data.TransIDs.XID, r.card.CardSecret), PEThumb: terms.Gateway.Thumb},
		PANData: protocol.PANData{PAN: r.card.PAN, CardExpiry: r.card.CardExpiry, PANSecret: r.card.PANSecret, EXNonce: p.EXNonce},
	}
	return res, nil
}

// earlierPReq is a PReq of another, earlier purchase by the same
// cardholder from the same merchant, which an attacker recorded.
func (r *run) earlierPReq(amt protocol.Amount, od []byte) (*protocol.PReq, error) {
	rnd := r.rnd["attacker"]
	req, err := protocol.NewPInitReq(rnd, []byte("C-earlier"), "en", testpki.TestBrand, r.card.PAN.Digits()[:6], []protocol.Suite{r.s}, nil)
	if err != nil {
		return nil, err
	}
	var xid protocol.XID
	var challM protocol.Challenge
	io.ReadFull(rnd, xid[:])
	io.ReadFull(rnd, challM[:])
	res, err := protocol.NewPInitRes(&protocol.PInitResParams{Req: req, Suite: r.s, Key: r.pki.Merchant.Sig, Gateway: r.pki.Gateway.KE.Chain,
		LIDM: []byte("O-earlier"), XID: xid, ChallM: challM, PReqDate: r.now.Add(-time.Hour)})
	if err != nil {
		return nil, err
	}
	terms, err := protocol.VerifyPInitRes(r.trustC, req, res, nil)
	if err != nil {
		return nil, err
	}
	p := &protocol.PReqParams{Terms: terms, ChallC: req.ChallC, BrandID: testpki.TestBrand, BIN: r.card.PAN.Digits()[:6], OD: od,
		PurchAmt: amt, Card: r.card, Key: r.chKey, Rand: rnd}
	io.ReadFull(rnd, p.RRPID[:])
	io.ReadFull(rnd, p.ODSalt[:])
	io.ReadFull(rnd, p.EXNonce[:])
	out, err := protocol.NewPReq(p)
	if err != nil {
		return nil, err
	}
	return out.PReq, nil
}

// bankExchange runs one request and its answer between the gateway and
// the bank as two steps.
func (r *run) bankExchange(mti, summary string, marshal func() ([]byte, error), parseRes func([]byte) (*bank.Response, error), resMTI, resSummary string) (*bank.Response, error) {
	req, err := marshal()
	if err != nil {
		return nil, err
	}
	to := Issuer
	st := r.add(Step{Message: mti, From: Gateway, To: to, Summary: summary, DER: req})
	st.Fields = bankFields(req)
	st.Views = views(absent, absent, sender(st.Fields))
	out, err := r.bank.Exchange(context.Background(), req)
	if err != nil {
		return nil, err
	}
	res, err := parseRes(out)
	if err != nil {
		return nil, err
	}
	st = r.add(Step{Message: resMTI, From: to, To: Gateway, Summary: resSummary, DER: out})
	st.Fields = bankFields(out)
	st.Views = views(absent, absent, receiver(st.Fields))
	result := Check{Party: Gateway, Name: "the bank's answer is to this request (merchant, RRN, amount, currency)", Result: Passed}
	decision := Check{Party: Gateway, Name: "the issuer's decision", Result: Passed, Detail: "response code " + res.Code}
	if !res.Approved {
		decision.Result, decision.Detail = Failed, fmt.Sprintf("response code %s: %s", res.Code, res.Reason)
	}
	st.Checks = []Check{result, decision}
	return res, nil
}

// bankFields decodes a bank message.
func bankFields(b []byte) []Field {
	m, err := bank.Parse(b)
	if err != nil {
		return []Field{{Name: "unparsed", Value: err.Error()}}
	}
	out := []Field{{Name: "mti", Value: m.MTI, Note: "message type indicator"}}
	for _, n := range []int{2, 3, 4, 7, 11, 14, 37, 38, 39, 41, 42, 49} {
		if v, ok := m.Fields[n]; ok {
			out = append(out, Field{Name: fmt.Sprintf("field %d", n), Value: v, Note: bankFieldNames[n]})
		}
	}
	return out
}

var bankFieldNames = map[int]string{
	2: "primary account number (the card number)", 3: "processing code (purchase)", 4: "amount, minor units",
	7: "transmission date and time", 11: "systems trace audit number", 14: "card expiry, YYMM",
	37: "retrieval reference number (derived from the XID)", 38: "authorization id (the issuer's approval code)",
	39: "response code: 00 approved, else the decline reason", 41: "terminal id", 42: "merchant id", 49: "currency (978: euro)",
}
