package adversary_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/internal/adversary"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/internal/testpki"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// The adversarial suite: an attacker (package adversary) against the CA,
// the gateway (with its bank) and merchants of agenttest rigs, over the
// wire. Every attempt must be refused clearly (a protocol Error with the
// expected code, an HTTP status, or a TLS handshake refused for a reason
// the server logs) and change nothing the parties stored: the gateway's
// ledger, the merchants' stores, the bank's holds and captures, the CA's
// issued certificates. The few rows an attacked party records by design
// (a merchant's refusal of an order whose PReq failed its checks, the
// gateway's recorded answer to a capture batch whose items it refused)
// are named in each case.
//
// Each top-level test has a rig of its own and runs in parallel with the
// others; its cases run in order, each comparing the stored state before
// and after.

func TestMain(m *testing.M) {
	adversary.CaptureStdLog() // the CA server logs there
	code := m.Run()
	fmt.Printf("adversarial cases tried: %d (%d requests and connections)\n", adversary.Cases(), adversary.Attempts())
	os.Exit(code)
}

var (
	tea = merchant.OrderRequest{SKU: "tea"} // 12.50
	mug = merchant.OrderRequest{SKU: "mug"} // 9.90
)

const (
	byGateway  = protocol.CertGatewaySignature
	byMerchant = protocol.CertMerchantSignature
)

// buy runs an approved purchase.
func buy(t *testing.T, c *agenttest.Cardholder, m *agenttest.Merchant, o merchant.OrderRequest) [][]byte {
	t.Helper()
	rec, err := c.Buy(m, o)
	if err != nil {
		t.Fatalf("purchase: %v", err)
	}
	if rec.Status != protocol.PurchApproved {
		t.Fatalf("purchase status %d, want approved", rec.Status)
	}
	return rec.Messages
}

// purchase is a purchase the attacker runs as cardholder c up to the PReq,
// which it builds but does not send.
type purchase struct {
	c     *agenttest.Cardholder
	m     *agenttest.Merchant
	order merchant.Agreed
	init  []byte // the PInitReq sent
	req   *protocol.PInitReq
	terms *protocol.PurchaseTerms
}

// initiate agrees an order of o with m as c and sends its PInitReq.
func initiate(t *testing.T, c *agenttest.Cardholder, m *agenttest.Merchant, o merchant.OrderRequest) *purchase {
	t.Helper()
	p := &purchase{c: c, m: m, order: c.MustAgree(m, o), init: c.PInitReq()}
	p.req = adversary.Message[*protocol.PInitReq](t, p.init)
	res := adversary.Message[*protocol.PInitRes](t, c.Send(m, p.order.Order, p.init))
	var err error
	if p.terms, err = protocol.VerifyPInitRes(c.Wallet.Trust.Get(agenttest.Suite), p.req, res, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *purchase) amount() protocol.Amount {
	return protocol.Amount{Currency: uint16(p.order.Currency), Value: p.order.Amount}
}

// preq builds the cardholder's PReq, dual-signed unless unsigned, and
// returns it with its DER MessageWrapper.
func (p *purchase) preq(t *testing.T, unsigned bool) (*protocol.PReqResult, []byte) {
	t.Helper()
	key := p.c.Wallet.Creds[agenttest.Suite].Sig
	if unsigned {
		key = nil
	}
	return p.preqWith(t, key, cardOf(t, p.c, unsigned))
}

// cardOf returns c's card as its wallet holds it (without the secrets of
// its certificate if unsigned).
func cardOf(t *testing.T, c *agenttest.Cardholder, unsigned bool) protocol.Card {
	t.Helper()
	w := c.Wallet
	pan, err := protocol.NewPAN(w.Card.PAN)
	if err != nil {
		t.Fatal(err)
	}
	card := protocol.Card{PAN: pan, CardExpiry: w.Card.Expiry}
	if unsigned {
		return card
	}
	sec := w.Card.Secrets[agenttest.Suite.String()]
	for _, x := range []struct {
		hex string
		out *protocol.Secret
	}{{sec.CardSecret, &card.CardSecret}, {sec.PANSecret, &card.PANSecret}} {
		b, err := hex.DecodeString(x.hex)
		if err != nil {
			t.Fatal(err)
		}
		copy(x.out[:], b)
	}
	return card
}

// preqWith builds a PReq paying with card, dual-signed with key (nil:
// unsigned).
func (p *purchase) preqWith(t *testing.T, key *protocol.SigningKey, card protocol.Card) (*protocol.PReqResult, []byte) {
	t.Helper()
	w := p.c.Wallet
	params := &protocol.PReqParams{Terms: p.terms, ChallC: p.req.ChallC, BrandID: w.Card.Brand, BIN: w.Card.PAN[:6],
		OD: []byte(p.order.Description), PurchAmt: p.amount(), Card: card, Key: key, Rand: rand.Reader}
	for _, b := range [][]byte{params.RRPID[:], params.ODSalt[:], params.EXNonce[:]} {
		rand.Read(b)
	}
	res, err := protocol.NewPReq(params)
	if err != nil {
		t.Fatal(err)
	}
	return res, protocol.NewWrapper(res.PReq, agenttest.Now, &res.PReq.OIData.TransIDs, &params.RRPID).Marshal()
}

// send posts a purchase message for the purchase's order.
func (p *purchase) send(t *testing.T, der []byte) adversary.Reply {
	t.Helper()
	return adversary.Post(t.Context(), p.c.Client, p.m.URL+"/orders/"+p.order.Order+"/set", der)
}

// row names the purchase's order row, for Unchanged.
func (p *purchase) row() string { return "changed " + adversary.OrderRow(p.m, p.order.Order) }

// authReqData is the AuthReqData merchant m sends for the PReq built as
// pr, naming m's key-exchange certificate.
func (p *purchase) authReqData(t *testing.T, pr *protocol.PReqResult, m *agenttest.Merchant) protocol.AuthReqData {
	return protocol.AuthReqData{TransIDs: p.terms.Data.TransIDs, RRPID: adversary.RRPID(), AuthAmt: p.amount(),
		CheckDigests: protocol.CheckDigests{HOIData: pr.OIMD, HOD: pr.PReq.OIData.HOD}, MerchantKE: m.Keys(t).KE.Cert.Thumb}
}

// merchantSigner is merchant m signing with its own signature key and
// certificates (signature chain, then its key-exchange certificate).
func merchantSigner(t *testing.T, m *agenttest.Merchant) adversary.Signer {
	t.Helper()
	k := m.Keys(t)
	s := adversary.SignerOf(agenttest.SigningKey(t, m.Dir), k.Sig.Chain...)
	s.Certs = append(s.Certs, k.KE.Cert.X509.Raw)
	return s
}

// answerRow names the gateway's recorded answer to request der.
func answerRow(der []byte) string {
	h := sha256.Sum256(der)
	return "added gateway/answers/" + hex.EncodeToString(h[:])
}

func post(t *testing.T, c *http.Client, u string, der []byte) adversary.Reply {
	t.Helper()
	return adversary.Post(t.Context(), c, u, der)
}

// ---- 1. Replay ----

func TestReplayGetsTheRecordedAnswerOrARefusal(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	a := adversary.New(r)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	other := r.NewCardholder(agenttest.CardholderOptions{})
	m := r.Merchant
	msgs := buy(t, c, m, tea)
	order := adversary.Message[*protocol.PRes](t, msgs[3]).Data.TransIDs.LIDM
	if _, err := m.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}
	tap := r.Gateway.Tap
	authReq, authRes := tap.Last(t, "/auth"), tap.Responses("/auth")[0]
	capReq, capRes := tap.Last(t, "/capture"), tap.Responses("/capture")[0]
	gw := a.MerchantClient(t, m)
	set := m.URL + "/orders/" + string(order) + "/set"
	rewrap := func(der []byte) []byte {
		return adversary.Rewrap(t, der, func(w *protocol.Wrapper) { w.Header.SWIdent = "replayer/1" })
	}
	same := func(t *testing.T, rep adversary.Reply, want []byte) {
		t.Helper()
		if rep.Err != nil || rep.Status != http.StatusOK || !bytes.Equal(rep.Body, want) {
			t.Fatalf("got %s; want the recorded answer", rep)
		}
	}
	state := a.State(t)
	if state.Count("bank/holds/") != 0 || state.Count("bank/captures/") != 1 || state.Count("gateway/captures/") != 1 {
		t.Fatalf("the setup did not capture one purchase")
	}

	a.Case(t, "PInitReq again: the recorded PInitRes", func(t *testing.T) {
		before := a.State(t)
		same(t, post(t, c.Client, set, msgs[0]), msgs[1])
		a.Unchanged(t, before)
	})
	a.Case(t, "PInitReq again in another wrapper: CodeReplay", func(t *testing.T) {
		before := a.State(t)
		a.WantError(t, post(t, c.Client, set, rewrap(msgs[0])), protocol.CodeReplay, byMerchant)
		a.Unchanged(t, before)
	})
	a.Case(t, "PReq again: the recorded PRes, no second AuthReq", func(t *testing.T) {
		before, auths := a.State(t), len(tap.Requests("/auth"))
		same(t, post(t, c.Client, set, msgs[2]), msgs[3])
		if n := len(tap.Requests("/auth")); n != auths {
			t.Errorf("the replayed PReq reached the gateway (%d AuthReqs, was %d)", n, auths)
		}
		a.Unchanged(t, before)
	})
	a.Case(t, "PReq again in another wrapper: CodeReplay", func(t *testing.T) {
		before := a.State(t)
		a.WantError(t, post(t, c.Client, set, rewrap(msgs[2])), protocol.CodeReplay, byMerchant)
		a.Unchanged(t, before)
	})
	a.Case(t, "PReq replayed by another cardholder: CodeUnknownTrans", func(t *testing.T) {
		before := a.State(t)
		a.WantError(t, post(t, other.Client, set, msgs[2]), protocol.CodeUnknownTrans, byMerchant)
		a.Unchanged(t, before)
	})
	a.Case(t, "PReq of a paid order for another order of its cardholder: CodeXIDMismatch", func(t *testing.T) {
		p := initiate(t, c, m, tea)
		before := a.State(t)
		a.WantError(t, p.send(t, msgs[2]), protocol.CodeXIDMismatch, byMerchant)
		a.Unchanged(t, before, p.row()) // the merchant records its refusal of the order
	})
	a.Case(t, "AuthReq again: the recorded AuthRes, no second hold", func(t *testing.T) {
		before, exchanges := a.State(t), r.Link.Exchanges()
		same(t, post(t, gw, r.Gateway.URL+"/auth", authReq), authRes)
		if r.Link.Exchanges() != exchanges {
			t.Error("the replay reached the bank")
		}
		a.Unchanged(t, before)
	})
	a.Case(t, "AuthReq again in another wrapper: CodeReplay", func(t *testing.T) {
		before := a.State(t)
		a.WantError(t, post(t, gw, r.Gateway.URL+"/auth", rewrap(authReq)), protocol.CodeReplay, byGateway)
		a.Unchanged(t, before)
	})
	a.Case(t, "AuthReq re-signed with a fresh RRPID for an authorized transaction: CodeReplay", func(t *testing.T) {
		auth := r.OpenAuthReq(t, authReq)
		data := auth.Request
		data.RRPID = adversary.RRPID()
		pi := adversary.Message[*protocol.AuthReq](t, authReq).PI
		again := adversary.AuthReq(t, merchantSigner(t, m), r.Gateway.Keys(t).KE.Cert, data, pi)
		before := a.State(t)
		a.WantError(t, post(t, gw, r.Gateway.URL+"/auth", again), protocol.CodeReplay, byGateway)
		a.Unchanged(t, before)
	})
	a.Case(t, "CapReq again: the recorded CapRes, no second capture", func(t *testing.T) {
		before := a.State(t)
		same(t, post(t, gw, r.Gateway.URL+"/capture", capReq), capRes)
		a.Unchanged(t, before)
	})
	a.Case(t, "CapReq again in another wrapper: every item CodeAlreadyCaptured", func(t *testing.T) {
		before := a.State(t)
		again := rewrap(capReq)
		rep := post(t, gw, r.Gateway.URL+"/capture", again)
		adversary.WantMessage[*protocol.CapRes](t, rep)
		d := r.OpenCapRes(t, m, &r.OpenCapReq(t, capReq).Request, rep.Body)
		for i, it := range d.Items {
			if it.Code != protocol.CodeAlreadyCaptured || it.CapAmt.Value != 0 {
				t.Errorf("item %d: code %s, captured %d; want %s", i, it.Code, it.CapAmt.Value, protocol.CodeAlreadyCaptured)
			}
		}
		a.Unchanged(t, before, answerRow(again)) // the refusal is the recorded answer to those bytes
	})
	a.Case(t, "CapReq re-signed as a new batch for captured authorizations: CodeAlreadyCaptured", func(t *testing.T) {
		items := r.OpenCapReq(t, capReq)
		var its []protocol.CapItem
		for _, it := range items.Items {
			its = append(its, *it.Item)
		}
		again, sent := r.NewCapReq(t, m, 4242, its...)
		before := a.State(t)
		rep := post(t, gw, r.Gateway.URL+"/capture", again)
		adversary.WantMessage[*protocol.CapRes](t, rep)
		for i, it := range r.OpenCapRes(t, m, sent, rep.Body).Items {
			if it.Code != protocol.CodeAlreadyCaptured || it.CapAmt.Value != 0 {
				t.Errorf("item %d: code %s, captured %d; want %s", i, it.Code, it.CapAmt.Value, protocol.CodeAlreadyCaptured)
			}
		}
		a.Unchanged(t, before, answerRow(again))
	})

	// ---- 2. Reflection: an answer sent back as a request ----
	p := initiate(t, c, m, tea)
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		der    []byte
		from   protocol.CertType
	}{
		{"PInitRes to the merchant", c.Client, p.m.URL + "/orders/" + p.order.Order + "/set", msgs[1], byMerchant},
		{"PRes to the merchant", c.Client, p.m.URL + "/orders/" + p.order.Order + "/set", msgs[3], byMerchant},
		{"PInitRes to the merchant for its own order", c.Client, set, msgs[1], byMerchant},
		{"AuthRes to the gateway", gw, r.Gateway.URL + "/auth", authRes, byGateway},
		{"CapRes to the gateway", gw, r.Gateway.URL + "/capture", capRes, byGateway},
		{"AuthRes to the gateway's capture", gw, r.Gateway.URL + "/capture", authRes, byGateway},
		{"CapReq to the gateway's authorization", gw, r.Gateway.URL + "/auth", capReq, byGateway},
		{"AuthReq to the gateway's capture", gw, r.Gateway.URL + "/capture", authReq, byGateway},
		{"PReq to the gateway", gw, r.Gateway.URL + "/auth", msgs[2], byGateway},
		{"the gateway's own Error to the gateway", gw, r.Gateway.URL + "/auth", post(t, gw, r.Gateway.URL+"/auth", rewrap(authReq)).Body, byGateway},
	} {
		a.Case(t, "reflected: "+tc.name+": CodeUnexpectedMessage", func(t *testing.T) {
			before := a.State(t)
			a.WantError(t, post(t, tc.client, tc.url, tc.der), protocol.CodeUnexpectedMessage, tc.from)
			a.Unchanged(t, before)
		})
	}
}

// The CA's registrations: every request of a cardholder's and a
// merchant's registration, recorded and sent again, issues nothing more.
func TestReplayAtTheCAIssuesNothingMore(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	a := adversary.New(r)
	regs := map[string]*adversary.Registered{
		"cardholder": a.Register(t, protocol.RoleCardholder, protocol.Identity{}),
		"merchant":   a.Register(t, protocol.RoleMerchant, protocol.Identity{ID: agenttest.MerchantIDs[3], AcquirerBIN: agenttest.AcquirerBIN}),
	}
	cac := r.CAClient(nil)
	reg := r.CAURL + "/register"
	for _, who := range []string{"cardholder", "merchant"} {
		rg := regs[who]
		for i, req := range rg.Requests {
			typ := adversary.MessageType(req)
			a.Case(t, fmt.Sprintf("%s's %s again", who, typ), func(t *testing.T) {
				before := a.State(t)
				rep := post(t, cac, reg, req)
				switch typ {
				case protocol.TypeCertReq, protocol.TypeCertInqReq:
					a.WantError(t, rep, protocol.CodeReplay, 0)
				default:
					// The first messages open nothing the CA keeps: they are
					// answered again, as a fresh request would be.
					if e := rep.Error(); e != nil || rep.Status != http.StatusOK {
						t.Fatalf("got %s; want the answer of a %s", rep, adversary.MessageType(rg.Responses[i]))
					}
					if got, want := adversary.MessageType(rep.Body), adversary.MessageType(rg.Responses[i]); got != want {
						t.Fatalf("got a %s, want a %s", got, want)
					}
				}
				a.Unchanged(t, before)
			})
			if typ == protocol.TypeCertReq {
				a.Case(t, fmt.Sprintf("%s's CertReq again in another wrapper: CodeReplay", who), func(t *testing.T) {
					before := a.State(t)
					again := adversary.Rewrap(t, req, func(w *protocol.Wrapper) { w.Header.SWIdent = "replayer/1" })
					a.WantError(t, post(t, cac, reg, again), protocol.CodeReplay, 0)
					a.Unchanged(t, before)
				})
			}
		}
		for _, res := range rg.Responses {
			a.Case(t, fmt.Sprintf("reflected: the %s's %s to the CA: CodeUnexpectedMessage", who, adversary.MessageType(res)), func(t *testing.T) {
				before := a.State(t)
				a.WantError(t, post(t, cac, reg, res), protocol.CodeUnexpectedMessage, 0)
				a.Unchanged(t, before)
			})
		}
	}
}

// ---- 1b. Replays at once ----

// sendAtOnce posts each of bodies at the same time and returns the
// replies in order.
func sendAtOnce(t *testing.T, c *http.Client, u string, bodies ...[]byte) []adversary.Reply {
	t.Helper()
	out := make([]adversary.Reply, len(bodies))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, b := range bodies {
		wg.Go(func() {
			<-start
			out[i] = adversary.Post(context.Background(), c, u, b)
		})
	}
	close(start)
	wg.Wait()
	return out
}

func TestReplaysAtOnceHaveOneEffect(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m := r.Merchant
	a := adversary.New(r)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	gw := a.MerchantClient(t, m)
	const n = 8

	a.Case(t, "one PReq 8 times at once: one authorization, the same PRes", func(t *testing.T) {
		p := initiate(t, c, m, tea)
		_, preq := p.preq(t, false)
		before := a.State(t)
		reps := sendAtOnce(t, c.Client, m.URL+"/orders/"+p.order.Order+"/set", slices.Repeat([][]byte{preq}, n)...)
		for i, rep := range reps {
			adversary.WantMessage[*protocol.PRes](t, rep)
			if !bytes.Equal(rep.Body, reps[0].Body) {
				t.Errorf("answer %d differs from the first", i)
			}
		}
		after := a.State(t)
		if d := after.Count("bank/holds/") - before.Count("bank/holds/"); d != 1 {
			t.Errorf("%d holds placed, want 1", d)
		}
		if d := after.Count("gateway/authorizations/") - before.Count("gateway/authorizations/"); d != 1 {
			t.Errorf("%d authorizations recorded, want 1", d)
		}
	})

	// An AuthReq the gateway has not seen, and 8 wrappings of it.
	r.Gateway.Tap.Refuse("/auth", protocol.CodeUnknownTrans, 1)
	if _, err := c.Buy(m, tea); agent.Code(err) != protocol.CodeUnknownTrans {
		t.Fatalf("purchase with the AuthReq held: %v", err)
	}
	held := r.Gateway.Tap.Last(t, "/auth")
	a.Case(t, "one AuthReq in 8 wrappings at once: one authorization, the others CodeReplay", func(t *testing.T) {
		var bodies [][]byte
		for i := range n {
			bodies = append(bodies, adversary.Rewrap(t, held, func(w *protocol.Wrapper) { w.Header.SWIdent = fmt.Sprintf("replayer/%d", i) }))
		}
		before := a.State(t)
		approved := 0
		for _, rep := range sendAtOnce(t, gw, r.Gateway.URL+"/auth", bodies...) {
			if rep.Error() == nil {
				adversary.WantMessage[*protocol.AuthRes](t, rep)
				approved++
				continue
			}
			a.WantError(t, rep, protocol.CodeReplay, byGateway)
		}
		if approved != 1 {
			t.Errorf("%d AuthRes, want 1", approved)
		}
		after := a.State(t)
		if d := after.Count("bank/holds/") - before.Count("bank/holds/"); d != 1 {
			t.Errorf("%d holds placed, want 1", d)
		}
	})
	a.Case(t, "8 capture batches of one authorization at once: one capture", func(t *testing.T) {
		d := r.OpenAuthRes(t, m, r.Gateway.Tap.Requests("/auth")[0], r.Gateway.Tap.Responses("/auth")[0])
		item := protocol.CapItem{TransIDs: d.TransIDs, AuthRRPID: d.RRPID, CapAmt: d.AuthAmt, CapToken: *d.CapToken}
		var bodies [][]byte
		for i := range n {
			b, _ := r.NewCapReq(t, m, int64(900+i), item)
			bodies = append(bodies, b)
		}
		before := a.State(t)
		captured := 0
		for _, rep := range sendAtOnce(t, gw, r.Gateway.URL+"/capture", bodies...) {
			adversary.WantMessage[*protocol.CapRes](t, rep)
		}
		after := a.State(t)
		captured = after.Count("bank/captures/") - before.Count("bank/captures/")
		if captured != 1 {
			t.Errorf("%d captures at the acquirer, want 1", captured)
		}
		if d := after.Count("gateway/captures/") - before.Count("gateway/captures/"); d != 1 {
			t.Errorf("%d captures in the ledger, want 1", d)
		}
	})
	a.Case(t, "one CertReq 8 times at once: issued once, the others CodeReplay", func(t *testing.T) {
		reg := a.RegisterUntil(t, protocol.RoleCardholder, protocol.Identity{}, protocol.TypeCertReq)
		before := a.State(t)
		issued := 0
		for _, rep := range sendAtOnce(t, r.CAClient(nil), r.CAURL+"/register", slices.Repeat([][]byte{reg.Held}, n)...) {
			if rep.Error() == nil {
				adversary.WantMessage[*protocol.CertRes](t, rep)
				issued++
				continue
			}
			a.WantError(t, rep, protocol.CodeReplay, 0)
		}
		if issued != 1 {
			t.Errorf("%d CertRes, want 1", issued)
		}
		if d := a.State(t).Count("ca/certificates/") - before.Count("ca/certificates/"); d != 2 {
			t.Errorf("%d certificates issued, want the cardholder's 2", d)
		}
	})
}

// ---- 3. Cut and paste between transactions ----

func TestCutAndPasteBetweenTransactionsIsRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m, m2 := r.Merchant, r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{})
	a := adversary.New(r)
	a.Watch(m2)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	u := r.NewCardholder(agenttest.CardholderOptions{Unsigned: true})
	tap := r.Gateway.Tap
	gw, gw2 := a.MerchantClient(t, m), a.MerchantClient(t, m2)
	gwKE := r.Gateway.Keys(t).KE.Cert

	a.Case(t, "the OI of one PReq with the PI of another: CodeDualSignature", func(t *testing.T) {
		pa, pb := initiate(t, c, m, tea), initiate(t, c, m, mug)
		_, preqA := pa.preq(t, false)
		_, preqB := pb.preq(t, false)
		before, auths := a.State(t), len(tap.Requests("/auth"))
		a.WantError(t, pa.send(t, adversary.SwapPI(t, preqA, preqB)), protocol.CodeDualSignature, byMerchant)
		if n := len(tap.Requests("/auth")); n != auths {
			t.Error("the merchant asked the gateway")
		}
		a.Unchanged(t, before, pa.row())
		// The PReq whose PI was taken still pays for its own order.
		adversary.WantMessage[*protocol.PRes](t, pb.send(t, preqB))
	})
	a.Case(t, "the OI of one unsigned PReq with the PI of another: CodeDecrypt from the gateway", func(t *testing.T) {
		pa, pb := initiate(t, u, m, tea), initiate(t, u, m, mug)
		_, preqA := pa.preq(t, true)
		_, preqB := pb.preq(t, true)
		before, exchanges := a.State(t), r.Link.Exchanges()
		a.WantError(t, pa.send(t, adversary.SwapPI(t, preqA, preqB)), protocol.CodeDecrypt, byMerchant)
		if r.Link.Exchanges() != exchanges {
			t.Error("the gateway asked the bank")
		}
		a.Unchanged(t, before, pa.row())
	})
	for _, tc := range []struct {
		name    string
		digests string // whose check digests the AuthReq carries
	}{
		{"with the other's check digests", "B"},
		{"with the PI's own check digests", "A"},
	} {
		a.Case(t, "the PI of one transaction in another's AuthReq "+tc.name+", signed by the merchant: CodeDecrypt", func(t *testing.T) {
			pa, pb := initiate(t, c, m, tea), initiate(t, c, m, mug)
			ra, _ := pa.preq(t, false)
			rb, _ := pb.preq(t, false)
			data := pb.authReqData(t, rb, m)
			if tc.digests == "A" {
				data.CheckDigests = pa.authReqData(t, ra, m).CheckDigests
			}
			forged := adversary.AuthReq(t, merchantSigner(t, m), gwKE, data, ra.PReq.PI)
			before, exchanges := a.State(t), r.Link.Exchanges()
			a.WantError(t, post(t, gw, r.Gateway.URL+"/auth", forged), protocol.CodeDecrypt, byGateway)
			if r.Link.Exchanges() != exchanges {
				t.Error("the gateway asked the bank")
			}
			a.Unchanged(t, before)
			// The same construction with B's own PI is approved: the
			// refusal is the paste's.
			data.CheckDigests = pb.authReqData(t, rb, m).CheckDigests
			adversary.WantMessage[*protocol.AuthRes](t, post(t, gw, r.Gateway.URL+"/auth", adversary.AuthReq(t, merchantSigner(t, m), gwKE, data, rb.PReq.PI)))
		})
	}
	a.Case(t, "a cardholder pays with another's card under its own certificate: CodeAccountHash from the gateway", func(t *testing.T) {
		thief := r.NewCardholder(agenttest.CardholderOptions{})
		p := initiate(t, thief, m, tea)
		card := cardOf(t, c, false)
		own := cardOf(t, thief, false)
		card.CardSecret, card.PANSecret = own.CardSecret, own.PANSecret
		_, preq := p.preqWith(t, thief.Wallet.Creds[agenttest.Suite].Sig, card)
		before, exchanges := a.State(t), r.Link.Exchanges()
		a.WantError(t, p.send(t, preq), protocol.CodeAccountHash, byMerchant)
		if r.Link.Exchanges() != exchanges {
			t.Error("the gateway asked the bank")
		}
		a.Unchanged(t, before, p.row())
	})
	a.Case(t, "another merchant's AuthReq with a merchant's PI: CodeMerchantMismatch", func(t *testing.T) {
		p := initiate(t, c, m, tea)
		pr, _ := p.preq(t, false)
		forged := adversary.AuthReq(t, merchantSigner(t, m2), gwKE, p.authReqData(t, pr, m2), pr.PReq.PI)
		before := a.State(t)
		a.WantError(t, post(t, gw2, r.Gateway.URL+"/auth", forged), protocol.CodeMerchantMismatch, byGateway)
		a.Unchanged(t, before)
	})

	// Two authorizations of m, not captured, with their CapTokens.
	buy(t, c, m, tea)
	buy(t, c, m, mug)
	auths, answers := tap.Requests("/auth"), tap.Responses("/auth")
	dA := r.OpenAuthRes(t, m, auths[len(auths)-2], answers[len(answers)-2])
	dB := r.OpenAuthRes(t, m, auths[len(auths)-1], answers[len(answers)-1])
	itemOf := func(d *protocol.AuthResData) protocol.CapItem {
		return protocol.CapItem{TransIDs: d.TransIDs, AuthRRPID: d.RRPID, CapAmt: d.AuthAmt, CapToken: *d.CapToken}
	}
	batch := int64(700)
	capture := func(t *testing.T, by *agenttest.Merchant, client *http.Client, want protocol.Code, items ...protocol.CapItem) {
		t.Helper()
		batch++
		req, sent := r.NewCapReq(t, by, batch, items...)
		before := a.State(t)
		rep := post(t, client, r.Gateway.URL+"/capture", req)
		adversary.WantMessage[*protocol.CapRes](t, rep)
		for i, it := range r.OpenCapRes(t, by, sent, rep.Body).Items {
			if it.Code != want || it.CapAmt.Value != 0 {
				t.Errorf("item %d: code %s, captured %d; want %s", i, it.Code, it.CapAmt.Value, want)
			}
		}
		a.Unchanged(t, before, answerRow(req)) // the refusal is the recorded answer to those bytes
	}
	a.Case(t, "a CapToken of one transaction in a capture item for another: CodeCapTokenInvalid", func(t *testing.T) {
		item := itemOf(dB)
		item.CapToken = *dA.CapToken
		capture(t, m, gw, protocol.CodeCapTokenInvalid, item)
	})
	a.Case(t, "a capture item naming the AuthReq RRPID of another transaction: CodeRRPIDMismatch", func(t *testing.T) {
		item := itemOf(dA)
		item.AuthRRPID = dB.RRPID
		capture(t, m, gw, protocol.CodeRRPIDMismatch, item)
	})
	a.Case(t, "another merchant captures a merchant's authorization with its CapToken: CodeMerchantMismatch", func(t *testing.T) {
		capture(t, m2, gw2, protocol.CodeMerchantMismatch, itemOf(dA))
	})
	a.Case(t, "an AuthRes of one transaction delivered for another: CodeRRPIDMismatch", func(t *testing.T) {
		earlier := answers[len(answers)-1]
		tap.Answer("/auth", func([]byte) []byte { return earlier }, 1)
		before := a.State(t)
		rec, err := c.Buy(m, tea)
		if rec == nil || agent.Code(err) != protocol.CodeRRPIDMismatch {
			t.Fatalf("purchase: %v; want the merchant's refusal %s", err, protocol.CodeRRPIDMismatch)
		}
		st, err := c.Shopper.Status(t.Context(), m.URL, rec.Agreed.Order)
		if err != nil || st.State != "refused" {
			t.Errorf("order status %+v (%v); want refused", st, err)
		}
		a.Unchanged(t, before, "added "+adversary.OrderRow(m, rec.Agreed.Order))
	})
}

// ---- 4. Role confusion ----

func TestRoleConfusionIsRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m, m2 := r.Merchant, r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{})
	a := adversary.New(r)
	a.Watch(m2)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	gw, gwKE := a.MerchantClient(t, m), r.Gateway.Keys(t).KE.Cert
	mk := m.Keys(t)
	mTLS := m.TLSCertificate()
	cTLS := c.Wallet.Creds[agenttest.Suite].TLS
	mSigAsTLS := adversary.TLSCertificate(agenttest.SigningKey(t, m.Dir), mk.Sig.Chain...)
	gwTLS := r.Gateway.TLSCertificate()

	for _, tc := range []struct {
		name   string
		server string
		log    *agenttest.Buffer
		cert   *tls.Certificate
		reason string
	}{
		{"a cardholder's TLS certificate at the gateway", r.Gateway.URL, r.Gateway.Log, &cTLS, "presented a cardholder TLS certificate"},
		{"a merchant's signature certificate as a TLS certificate at the gateway", r.Gateway.URL, r.Gateway.Log, mSigAsTLS, "presented a merchant signature certificate"},
		{"the gateway's own TLS certificate at the gateway", r.Gateway.URL, r.Gateway.Log, &gwTLS, "presented a gateway TLS certificate"},
		{"a merchant's TLS certificate at a merchant", m.URL, m.Log, &mTLS, "presented a merchant TLS certificate"},
		{"the gateway's TLS certificate at a merchant", m.URL, m.Log, &gwTLS, "presented a gateway TLS certificate"},
	} {
		a.Case(t, tc.name+": handshake refused", func(t *testing.T) {
			before := a.State(t)
			wantHandshakeRefused(t, tc.log, tc.reason, func() error { return adversary.Refused(t, tc.server, "/auth", tc.cert) })
			a.Unchanged(t, before)
		})
	}
	a.Case(t, "a merchant's signature certificate as a TLS certificate at the CA: 403", func(t *testing.T) {
		before := a.State(t)
		rep := post(t, a.Client(t, mSigAsTLS, protocol.CertCATLS), r.CAURL+"/register", []byte{0x30, 0})
		adversary.WantStatus(t, rep, http.StatusForbidden)
		if !bytes.Contains(rep.Body, []byte("presented a merchant signature certificate")) {
			t.Errorf("the refusal does not say why: %q", rep.Body)
		}
		a.Unchanged(t, before)
	})

	p := initiate(t, c, m, tea)
	pr, preq := p.preq(t, false)
	data := p.authReqData(t, pr, m)
	mSig := merchantSigner(t, m)
	keAsSig := mSig
	keAsSig.Thumb = mk.KE.Cert.Thumb
	tlsKey := mTLS.PrivateKey.(crypto.Signer)
	tlsSigner := adversary.SignerOf(tlsKey, mTLS.Certificate...)
	tlsSigner.Certs = append(tlsSigner.Certs, mk.KE.Cert.X509.Raw)
	item := protocol.CapItem{TransIDs: p.terms.Data.TransIDs, AuthRRPID: adversary.RRPID(), CapAmt: p.amount(),
		CapToken: protocol.Envelope{Suite: agenttest.Suite, Enc: []byte{1}, Ciphertext: make([]byte, 16)}}
	capData := func() protocol.CapReqData {
		return protocol.CapReqData{RRPID: adversary.RRPID(), BatchID: 1, MerchantKE: mk.KE.Cert.Thumb, Items: []protocol.CapItem{item}}
	}
	for _, tc := range []struct {
		name string
		der  []byte
		path string
		want protocol.Code
	}{
		{"an AuthReq whose signature names the merchant's key-exchange certificate", adversary.AuthReq(t, keAsSig, gwKE, data, pr.PReq.PI), "/auth", protocol.CodeCertRole},
		{"an AuthReq signed with the merchant's TLS key and certificate", adversary.AuthReq(t, tlsSigner, gwKE, data, pr.PReq.PI), "/auth", protocol.CodeCertRole},
		{"a CapReq whose signature names the merchant's key-exchange certificate", adversary.CapReq(t, keAsSig, gwKE, capData()), "/capture", protocol.CodeCertRole},
		{"a CapReq signed with the merchant's TLS key and certificate", adversary.CapReq(t, tlsSigner, gwKE, capData()), "/capture", protocol.CodeCertRole},
		{"an AuthReq signed by another merchant on a merchant's TLS connection", func() []byte {
			p2 := initiate(t, c, m2, tea)
			pr2, _ := p2.preq(t, false)
			return adversary.AuthReq(t, merchantSigner(t, m2), gwKE, p2.authReqData(t, pr2, m2), pr2.PReq.PI)
		}(), "/auth", protocol.CodeMerchantMismatch},
		{"a CapReq signed by another merchant on a merchant's TLS connection", func() []byte {
			d := capData()
			d.MerchantKE = m2.Keys(t).KE.Cert.Thumb
			return adversary.CapReq(t, merchantSigner(t, m2), gwKE, d)
		}(), "/capture", protocol.CodeMerchantMismatch},
	} {
		a.Case(t, tc.name+": "+tc.want.String(), func(t *testing.T) {
			before := a.State(t)
			a.WantError(t, post(t, gw, r.Gateway.URL+tc.path, tc.der), tc.want, byGateway)
			a.Unchanged(t, before)
		})
	}
	a.Case(t, "a PReq whose dual signature is made with the cardholder's TLS key and certificate: CodeCertRole", func(t *testing.T) {
		tlsKey := cTLS.PrivateKey.(crypto.Signer)
		forged := adversary.Rewrap(t, preq, func(w *protocol.Wrapper) {
			req := w.Message.(*protocol.PReq)
			sig := adversary.Sign(t, tlsKey, agenttest.Suite, adversary.LabelDualSignature, protocol.DualSignatureInput(pr.PIMD, pr.OIMD))
			req.PI.DualSignature = &protocol.Signature{Suite: agenttest.Suite, Signer: protocol.ThumbprintOf(cTLS.Certificate[0]), Value: sig}
			req.PI.Certificates = cTLS.Certificate
		})
		before := a.State(t)
		a.WantError(t, p.send(t, forged), protocol.CodeCertRole, byMerchant)
		a.Unchanged(t, before, p.row())
	})
}

// wantHandshakeRefused fails t unless attempt fails in the TLS handshake
// and the server's log names the reason (once more than before).
func wantHandshakeRefused(t *testing.T, log *agenttest.Buffer, reason string, attempt func() error) {
	t.Helper()
	n := strings.Count(log.String(), reason)
	err := attempt()
	if err == nil {
		t.Fatal("the server answered")
	}
	if !strings.Contains(err.Error(), "tls: ") {
		t.Errorf("refused with %v; want a TLS alert", err)
	}
	// The server logs the handshake failure after sending its alert.
	for i := 0; strings.Count(log.String(), reason) <= n; i++ {
		if i == 200 {
			t.Fatalf("the server's log does not say %q:\n%s", reason, lastLines(log.String(), 5))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- 5. Suite downgrade ----

func TestSuiteDowngradeIsRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m := r.Merchant
	a := adversary.New(r)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	gw, gwKE := a.MerchantClient(t, m), r.Gateway.Keys(t).KE.Cert
	nist := testpki.New(protocol.SuiteNIST, "adversary") // a gateway key-exchange certificate of the nist suite

	offer := func(suites ...protocol.Suite) func(*protocol.Wrapper) {
		return func(w *protocol.Wrapper) { w.Message.(*protocol.PInitReq).Suites = suites }
	}
	for _, tc := range []struct {
		name   string
		suites []protocol.Suite
		want   protocol.Code
	}{
		{"a PInitReq offering only nist to a pq-only merchant", []protocol.Suite{protocol.SuiteNIST}, protocol.CodeUnknownSuite},
		{"a PInitReq offering only an unknown suite", []protocol.Suite{7}, protocol.CodeUnknownSuite},
	} {
		a.Case(t, tc.name+": "+tc.want.String(), func(t *testing.T) {
			o := c.MustAgree(m, tea)
			before := a.State(t)
			a.WantError(t, post(t, c.Client, m.URL+"/orders/"+o.Order+"/set", adversary.Rewrap(t, c.PInitReq(), offer(tc.suites...))), tc.want, byMerchant)
			a.Unchanged(t, before)
		})
	}
	a.Case(t, "a PInitReq whose offer was changed on the way: the cardholder's CodeDowngrade", func(t *testing.T) {
		o := c.MustAgree(m, tea)
		sent := c.PInitReq()
		req := adversary.Message[*protocol.PInitReq](t, sent)
		before := a.State(t)
		rep := post(t, c.Client, m.URL+"/orders/"+o.Order+"/set", adversary.Rewrap(t, sent, offer(protocol.SuiteNIST, protocol.SuitePQ)))
		res := adversary.WantMessage[*protocol.PInitRes](t, rep)
		_, err := protocol.VerifyPInitRes(c.Wallet.Trust.Get(agenttest.Suite), req, res, nil)
		if protocol.CodeOf(err) != protocol.CodeDowngrade {
			t.Fatalf("the cardholder's check: %v; want %s", err, protocol.CodeDowngrade)
		}
		a.Unchanged(t, before, "changed "+adversary.OrderRow(m, o.Order)) // initiated, by the attacker's PInitReq
	})
	p := initiate(t, c, m, tea)
	pr, _ := p.preq(t, false)
	a.Case(t, "a PReq whose PI envelope claims the nist suite: CodeSuiteMismatch", func(t *testing.T) {
		p := initiate(t, c, m, tea)
		_, preq := p.preq(t, false)
		forged := adversary.Rewrap(t, preq, func(w *protocol.Wrapper) { w.Message.(*protocol.PReq).PI.Sealed.Suite = protocol.SuiteNIST })
		before := a.State(t)
		a.WantError(t, p.send(t, forged), protocol.CodeSuiteMismatch, byMerchant)
		a.Unchanged(t, before, p.row())
	})
	nistPI := pr.PReq.PI
	nistPI.Sealed.Suite = protocol.SuiteNIST
	capData := protocol.CapReqData{RRPID: adversary.RRPID(), BatchID: 1, MerchantKE: m.Keys(t).KE.Cert.Thumb, Items: []protocol.CapItem{{
		TransIDs: p.terms.Data.TransIDs, AuthRRPID: adversary.RRPID(), CapAmt: p.amount(),
		CapToken: protocol.Envelope{Suite: agenttest.Suite, Enc: []byte{1}, Ciphertext: make([]byte, 16)}}}}
	for _, tc := range []struct {
		name string
		path string
		der  []byte
		want protocol.Code
	}{
		{"an AuthReq sealed under nist to the pq-only gateway", "/auth",
			adversary.AuthReq(t, merchantSigner(t, m), nist.Gateway.KE.Cert, p.authReqData(t, pr, m), pr.PReq.PI), protocol.CodeUnknownSuite},
		{"a CapReq sealed under nist to the pq-only gateway", "/capture",
			adversary.CapReq(t, merchantSigner(t, m), nist.Gateway.KE.Cert, capData), protocol.CodeUnknownSuite},
		{"an AuthReq whose PI envelope claims the nist suite", "/auth",
			adversary.AuthReq(t, merchantSigner(t, m), gwKE, p.authReqData(t, pr, m), nistPI), protocol.CodeSuiteMismatch},
		{"an AuthReq signed under the nist suite", "/auth", func() []byte {
			s := merchantSigner(t, m)
			s.Suite = protocol.SuiteNIST
			return adversary.AuthReq(t, s, gwKE, p.authReqData(t, pr, m), pr.PReq.PI)
		}(), protocol.CodeSuiteMismatch},
	} {
		a.Case(t, tc.name+": "+tc.want.String(), func(t *testing.T) {
			before := a.State(t)
			a.WantError(t, post(t, gw, r.Gateway.URL+tc.path, tc.der), tc.want, byGateway)
			a.Unchanged(t, before)
		})
	}
}

// ---- 6. and 7. Certificates expired, not yet valid, revoked, foreign; none ----

// badCerts are the ways a certificate is wrong that the suite tries, in
// TLS and inside messages, each with the code a check gives it.
var badCerts = []struct {
	name string
	code protocol.Code
}{
	{"expired", protocol.CodeCertExpired},
	{"not yet valid", protocol.CodeCertExpired},
	{"revoked", protocol.CodeCertRevoked},
	{"of a foreign CA that copies the brand's names", protocol.CodeCertChain},
	{"issued by the CA of another role", protocol.CodeCertChain},
}

// forge returns, for each of badCerts, a chain for the key of the genuine
// chain (leaf first, issued by the rig's CA of type roleCA): the expired
// and not yet valid ones signed with the role CA's key, the revoked one
// issued by the CA and revoked, the foreign one a copy by another CA, the
// last signed by another role CA's key.
func forge(t *testing.T, r *agenttest.Rig, genuine [][]byte, roleCA protocol.CertType) map[string][][]byte {
	t.Helper()
	caCert, caKey := r.CAKey(t, roleCA)
	leaf, pub := genuine[0], adversary.PublicKey(t, genuine[0])
	reissue := func(edit func(*x509.Certificate)) [][]byte {
		return append([][]byte{adversary.Reissue(t, leaf, caCert, caKey, pub, edit)}, genuine[1:]...)
	}
	other := protocol.CertMerchantCA
	if roleCA == protocol.CertMerchantCA {
		other = protocol.CertCardholderCA
	}
	oCert, oKey := r.CAKey(t, other)
	return map[string][][]byte{
		"expired": reissue(func(x *x509.Certificate) {
			x.NotBefore, x.NotAfter = agenttest.Now.AddDate(-1, 0, 0), agenttest.Now.Add(-time.Hour)
		}),
		"not yet valid": reissue(func(x *x509.Certificate) {
			x.NotBefore, x.NotAfter = agenttest.Now.Add(time.Hour), agenttest.Now.AddDate(0, 6, 0)
		}),
		"revoked": append([][]byte{revokedCopy(t, r, leaf, roleCA)}, genuine[1:]...),
		"of a foreign CA that copies the brand's names": adversary.Mirror(t, genuine, r.Roots[0], pub),
		"issued by the CA of another role":              {adversary.Reissue(t, leaf, oCert, oKey, pub, nil), oCert.Raw, genuine[len(genuine)-1]},
	}
}

// revokedCopy has the rig's CA issue a copy of certificate leaf (the same
// key, subject and extensions) and revoke it.
func revokedCopy(t *testing.T, r *agenttest.Rig, leaf []byte, roleCA protocol.CertType) []byte {
	t.Helper()
	c, err := protocol.ParseCertificate(leaf)
	if err != nil {
		t.Fatal(err)
	}
	var exts []pkix.Extension
	for _, e := range c.X509.Extensions {
		if e.Id.Equal(protocol.OIDAccountHash) || e.Id.Equal(protocol.OIDMerchantData) {
			exts = append(exts, e)
		}
	}
	h := r.CA.Hierarchy(agenttest.Suite)
	auth := map[protocol.CertType]*ca.Authority{protocol.CertMerchantCA: h.Merchant, protocol.CertCardholderCA: h.Cardholder}[roleCA]
	der, err := auth.Issue(t.Context(), ca.IssueRequest{Type: c.Type, Subject: c.X509.Subject, Public: c.X509.PublicKey, Extensions: exts,
		DNSNames: c.X509.DNSNames, IPAddresses: c.X509.IPAddresses})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CA.RevokeCertificate(t.Context(), protocol.ThumbprintOf(der), ca.ReasonKeyCompromise, "stolen (adversary suite)"); err != nil {
		t.Fatal(err)
	}
	return der
}

func TestBadCertificatesAreRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m := r.Merchant
	a := adversary.New(r)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	mk, cc := m.Keys(t), c.Wallet.Creds[agenttest.Suite]
	mTLS := m.TLSCertificate()
	mTLSKey, cTLSKey := mTLS.PrivateKey.(crypto.Signer), cc.TLS.PrivateKey.(crypto.Signer)
	mSigKey := agenttest.SigningKey(t, m.Dir)
	forged := map[string]map[string][][]byte{
		"merchant TLS":         forge(t, r, mTLS.Certificate, protocol.CertMerchantCA),
		"cardholder TLS":       forge(t, r, cc.TLS.Certificate, protocol.CertCardholderCA),
		"merchant signature":   forge(t, r, mk.Sig.Chain, protocol.CertMerchantCA),
		"cardholder signature": forge(t, r, cc.Sig.Chain, protocol.CertCardholderCA),
	}
	// The revocations reach the gateway and the merchant as they do in
	// production: with a refresh of their trust from the CA server.
	r.RefreshTrust(r.Gateway.Trust(), r.Gateway.TLSCertificate())
	r.RefreshTrust(m.Trust(), m.TLSCertificate())

	gw, gwKE := a.MerchantClient(t, m), r.Gateway.Keys(t).KE.Cert
	p := initiate(t, c, m, tea)
	pr, _ := p.preq(t, false)
	junkItem := protocol.CapItem{TransIDs: p.terms.Data.TransIDs, AuthRRPID: adversary.RRPID(), CapAmt: p.amount(),
		CapToken: protocol.Envelope{Suite: agenttest.Suite, Enc: []byte{1}, Ciphertext: make([]byte, 16)}}
	merchantSigner := func(chain [][]byte) adversary.Signer {
		s := adversary.SignerOf(mSigKey, chain...)
		s.Certs = append(s.Certs, mk.KE.Cert.X509.Raw)
		return s
	}

	for _, bc := range badCerts {
		reason := bc.code.String()
		a.Case(t, "a merchant TLS certificate "+bc.name+" at the gateway: handshake refused", func(t *testing.T) {
			before := a.State(t)
			cert := adversary.TLSCertificate(mTLSKey, forged["merchant TLS"][bc.name]...)
			wantHandshakeRefused(t, r.Gateway.Log, reason, func() error { return adversary.Refused(t, r.Gateway.URL, "/auth", cert) })
			a.Unchanged(t, before)
		})
		a.Case(t, "a cardholder TLS certificate "+bc.name+" at a merchant: handshake refused", func(t *testing.T) {
			before := a.State(t)
			cert := adversary.TLSCertificate(cTLSKey, forged["cardholder TLS"][bc.name]...)
			wantHandshakeRefused(t, m.Log, reason, func() error { return adversary.Refused(t, m.URL, "/orders/"+p.order.Order+"/set", cert) })
			a.Unchanged(t, before)
		})
		a.Case(t, "a merchant TLS certificate "+bc.name+" at the CA: 403", func(t *testing.T) {
			before := a.State(t)
			cert := adversary.TLSCertificate(mTLSKey, forged["merchant TLS"][bc.name]...)
			rep := post(t, a.Client(t, cert, protocol.CertCATLS), r.CAURL+"/register", []byte{0x30, 0})
			adversary.WantStatus(t, rep, http.StatusForbidden)
			if !bytes.Contains(rep.Body, []byte(reason)) {
				t.Errorf("the refusal does not say %q: %q", reason, rep.Body)
			}
			a.Unchanged(t, before)
		})
		a.Case(t, "an AuthReq signed under a merchant certificate "+bc.name+": "+reason, func(t *testing.T) {
			forged := adversary.AuthReq(t, merchantSigner(forged["merchant signature"][bc.name]), gwKE, p.authReqData(t, pr, m), pr.PReq.PI)
			before := a.State(t)
			a.WantError(t, post(t, gw, r.Gateway.URL+"/auth", forged), bc.code, byGateway)
			a.Unchanged(t, before)
		})
		a.Case(t, "a CapReq signed under a merchant certificate "+bc.name+": "+reason, func(t *testing.T) {
			d := protocol.CapReqData{RRPID: adversary.RRPID(), BatchID: 1, MerchantKE: mk.KE.Cert.Thumb, Items: []protocol.CapItem{junkItem}}
			forged := adversary.CapReq(t, merchantSigner(forged["merchant signature"][bc.name]), gwKE, d)
			before := a.State(t)
			a.WantError(t, post(t, gw, r.Gateway.URL+"/capture", forged), bc.code, byGateway)
			a.Unchanged(t, before)
		})
		a.Case(t, "a PReq dual-signed under a cardholder certificate "+bc.name+": "+reason, func(t *testing.T) {
			p := initiate(t, c, m, tea)
			_, preq := p.preq(t, false)
			chain := forged["cardholder signature"][bc.name]
			// The same key signed: only the certificate named changes.
			preq = adversary.Rewrap(t, preq, func(w *protocol.Wrapper) {
				pi := &w.Message.(*protocol.PReq).PI
				pi.DualSignature.Signer, pi.Certificates = protocol.ThumbprintOf(chain[0]), chain
			})
			before := a.State(t)
			a.WantError(t, p.send(t, preq), bc.code, byMerchant)
			a.Unchanged(t, before, p.row())
		})
	}
	for _, tc := range []struct {
		name, server string
		log          *agenttest.Buffer
	}{
		{"the gateway", r.Gateway.URL, r.Gateway.Log},
		{"a merchant", m.URL, m.Log},
	} {
		a.Case(t, "no client certificate at "+tc.name+": handshake refused", func(t *testing.T) {
			before := a.State(t)
			wantHandshakeRefused(t, tc.log, "client didn't provide a certificate", func() error { return adversary.Refused(t, tc.server, "/auth", nil) })
			a.Unchanged(t, before)
		})
	}
	a.Case(t, "no client certificate at the CA: allowed, a bad request gets CodeMalformed", func(t *testing.T) {
		before := a.State(t)
		a.WantError(t, post(t, a.Client(t, nil, protocol.CertCATLS), r.CAURL+"/register", []byte{0x30, 0}), protocol.CodeMalformed, 0)
		a.Unchanged(t, before)
	})

	// The constructions are sound: with the genuine certificates they pass.
	adversary.WantMessage[*protocol.AuthRes](t, post(t, gw, r.Gateway.URL+"/auth",
		adversary.AuthReq(t, merchantSigner(mk.Sig.Chain), gwKE, p.authReqData(t, pr, m), pr.PReq.PI)))
}

// ---- 6b. Revocation and the connections open before it ----

// A party whose certificates are all revoked is refused in the handshake,
// and whatever it signs is refused with CodeCertRevoked. A connection it
// opened before the revocation must not serve it either: the revocation
// ends its access now, not when it reconnects.
func TestRevokedPartiesAreRefusedOnConnectionsOpenedBefore(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m, m2 := r.Merchant, r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{})
	a := adversary.New(r)
	a.Watch(m2)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	revoked := r.NewCardholder(agenttest.CardholderOptions{})

	// Each opens a connection and uses it, and prepares its next
	// requests; then all its certificates are revoked and the servers
	// learn it.
	gw2 := a.MerchantClient(t, m2)
	if rep := adversary.Send(t.Context(), gw2, http.MethodGet, r.Gateway.URL+"/certs/pq", "", nil); rep.Status != http.StatusOK {
		t.Fatalf("GET /certs/pq: %s", rep)
	}
	p2 := initiate(t, c, m2, tea)
	pr2, _ := p2.preq(t, false)
	authReq := adversary.AuthReq(t, merchantSigner(t, m2), r.Gateway.Keys(t).KE.Cert, p2.authReqData(t, pr2, m2), pr2.PReq.PI)
	signed, unsigned := initiate(t, revoked, m, tea), initiate(t, revoked, m, mug) // on revoked.Client's connection
	_, signedPReq := signed.preq(t, false)
	_, unsignedPReq := unsigned.preq(t, true)
	cc := revoked.Wallet.Creds[agenttest.Suite]
	for _, cert := range [][]byte{m2.TLSCertificate().Certificate[0], m2.Keys(t).Sig.Cert.X509.Raw, m2.Keys(t).KE.Cert.X509.Raw,
		cc.TLS.Certificate[0], cc.Sig.Cert.X509.Raw} {
		if err := r.CA.RevokeCertificate(t.Context(), protocol.ThumbprintOf(cert), ca.ReasonKeyCompromise, "adversary suite"); err != nil {
			t.Fatal(err)
		}
	}
	r.RefreshTrust(r.Gateway.Trust(), r.Gateway.TLSCertificate())
	r.RefreshTrust(m.Trust(), m.TLSCertificate())

	a.Case(t, "a revoked merchant on a new connection: handshake refused", func(t *testing.T) {
		before := a.State(t)
		cert := m2.TLSCertificate()
		wantHandshakeRefused(t, r.Gateway.Log, protocol.CodeCertRevoked.String(), func() error { return adversary.Refused(t, r.Gateway.URL, "/auth", &cert) })
		a.Unchanged(t, before)
	})
	a.Case(t, "a revoked merchant's AuthReq on the connection it opened before: 403, certificate revoked", func(t *testing.T) {
		before := a.State(t)
		wantRevokedPeer(t, post(t, gw2, r.Gateway.URL+"/auth", authReq))
		a.Unchanged(t, before)
	})
	a.Case(t, "a revoked cardholder on a new connection: handshake refused", func(t *testing.T) {
		before := a.State(t)
		wantHandshakeRefused(t, m.Log, protocol.CodeCertRevoked.String(), func() error { return adversary.Refused(t, m.URL, "/catalogue", &cc.TLS) })
		a.Unchanged(t, before)
	})
	a.Case(t, "a revoked cardholder's dual-signed PReq on the connection it opened before: 403, certificate revoked", func(t *testing.T) {
		before := a.State(t)
		wantRevokedPeer(t, signed.send(t, signedPReq))
		a.Unchanged(t, before, signed.row())
	})
	a.Case(t, "a revoked cardholder's unsigned PReq on the connection it opened before: refused", func(t *testing.T) {
		before := a.State(t)
		rep := unsigned.send(t, unsignedPReq)
		if rep.Err == nil && rep.Status == http.StatusOK && rep.Error() == nil {
			t.Errorf("the merchant answered with a %s: the revoked cardholder's purchase went through", adversary.MessageType(rep.Body))
		}
		a.Unchanged(t, before, unsigned.row())
	})
	a.Case(t, "a revoked cardholder agreeing an order on the connection it opened before: refused", func(t *testing.T) {
		before := a.State(t)
		rep := adversary.Send(t.Context(), revoked.Client, http.MethodPost, m.URL+"/orders", "application/json", []byte(`{"sku":"tea"}`))
		if rep.Status == http.StatusCreated {
			t.Errorf("the merchant agreed an order with the revoked cardholder: %s", rep.Body)
		}
		a.Unchanged(t, before)
	})
}

// ---- 8. Oversized, truncated, trailing, deeply nested ----

// target is an endpoint the malformed inputs are sent to, with a genuine
// message it takes.
type target struct {
	name   string
	client *http.Client
	url    string
	msg    []byte
	from   protocol.CertType // who signs its Errors (0: not checked)
}

// targets sets up r's agents with a genuine message for each endpoint
// that takes one.
func targets(t *testing.T, r *agenttest.Rig, a *adversary.Attacker) []target {
	t.Helper()
	m := r.Merchant
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, c, m, tea)
	if _, err := m.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}
	agreed := c.MustAgree(m, tea)
	p := initiate(t, c, m, mug)
	_, preq := p.preq(t, false)
	reg := a.Register(t, protocol.RoleCardholder, protocol.Identity{})
	gw := a.MerchantClient(t, m)
	return []target{
		{"the gateway's /auth", gw, r.Gateway.URL + "/auth", r.Gateway.Tap.Last(t, "/auth"), byGateway},
		{"the gateway's /capture", gw, r.Gateway.URL + "/capture", r.Gateway.Tap.Last(t, "/capture"), byGateway},
		{"a merchant's PInitReq", c.Client, m.URL + "/orders/" + agreed.Order + "/set", c.PInitReq(), byMerchant},
		{"a merchant's PReq", c.Client, p.m.URL + "/orders/" + p.order.Order + "/set", preq, byMerchant},
		{"the CA's CertReq", r.CAClient(nil), r.CAURL + "/register", reg.Requests[len(reg.Requests)-1], 0},
	}
}

func TestMalformedMessagesAreRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	a := adversary.New(r)
	nested := adversary.Nested(100_000)
	for _, tg := range targets(t, r, a) {
		malformed := func(t *testing.T, body []byte) {
			t.Helper()
			a.WantError(t, post(t, tg.client, tg.url, body), protocol.CodeMalformed, tg.from)
		}
		for _, tc := range []struct {
			name string
			try  func(t *testing.T)
		}{
			{"over MaxMessageSize: 413", func(t *testing.T) {
				adversary.WantStatus(t, post(t, tg.client, tg.url, adversary.Oversized(tg.msg, protocol.MaxMessageSize+1)), http.StatusRequestEntityTooLarge)
			}},
			{"padded to MaxMessageSize: CodeMalformed", func(t *testing.T) { malformed(t, adversary.Oversized(tg.msg, protocol.MaxMessageSize)) }},
			{"every prefix, sampled: CodeMalformed", func(t *testing.T) {
				for _, b := range adversary.Prefixes(tg.msg, 24) {
					malformed(t, b)
				}
			}},
			{"a trailing byte: CodeMalformed", func(t *testing.T) { malformed(t, adversary.Trailing(tg.msg, 0)) }},
			{"a trailing copy of itself: CodeMalformed", func(t *testing.T) { malformed(t, adversary.Trailing(tg.msg, tg.msg...)) }},
			{"100000 nested SEQUENCEs: CodeMalformed", func(t *testing.T) { malformed(t, nested) }},
			{"inside 100000 nested SEQUENCEs: CodeMalformed", func(t *testing.T) {
				malformed(t, adversary.NestIn(tg.msg, 100_000))
			}},
			{"another content type: 415", func(t *testing.T) {
				adversary.WantStatus(t, adversary.Send(t.Context(), tg.client, http.MethodPost, tg.url, "application/octet-stream", tg.msg), http.StatusUnsupportedMediaType)
			}},
			{"GET: 405", func(t *testing.T) {
				adversary.WantStatus(t, adversary.Send(t.Context(), tg.client, http.MethodGet, tg.url, agent.ContentType, nil), http.StatusMethodNotAllowed)
			}},
		} {
			a.Case(t, tg.name+" "+tc.name, func(t *testing.T) {
				before := a.State(t)
				tc.try(t)
				a.Unchanged(t, before)
			})
		}
	}
}

// Malformed inputs and refused handshakes leave no goroutine behind. Not
// parallel: it counts the process's goroutines, so it runs alone, before
// the parallel tests start.
func TestMalformedInputsLeakNoGoroutines(t *testing.T) {
	r := agenttest.New(t, agenttest.Options{})
	a := adversary.New(r)
	tgs := targets(t, r, a)
	c := r.NewCardholder(agenttest.CardholderOptions{})
	cTLS := c.Wallet.Creds[agenttest.Suite].TLS
	nested := adversary.Nested(100_000)
	round := func() {
		for _, tg := range tgs {
			// A client of its own, closed after the round: every
			// connection the attacker opened is gone.
			tr := tg.client.Transport.(*http.Transport).Clone()
			cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for _, body := range append(adversary.Prefixes(tg.msg, 4), nested, adversary.Trailing(tg.msg, 0),
				adversary.Oversized(tg.msg, protocol.MaxMessageSize+1)) {
				if rep := post(t, cl, tg.url, body); rep.Err != nil {
					t.Errorf("%s: %v", tg.name, rep.Err)
				}
			}
			tr.CloseIdleConnections()
		}
		for _, u := range []string{r.Gateway.URL, r.Merchant.URL} {
			adversary.Refused(t, u, "/auth", nil)
			adversary.Refused(t, u, "/auth", &cTLS)
		}
	}
	a.Case(t, "malformed inputs and refused handshakes, three rounds: no goroutine left", func(t *testing.T) {
		before := a.State(t)
		round() // the servers' lazily started goroutines start here
		base := settled()
		for range 3 {
			round()
		}
		for i := 0; ; i++ {
			n := settled()
			if n <= base+2 {
				break
			}
			if i == 50 {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines after the attacks, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(100 * time.Millisecond)
		}
		a.Unchanged(t, before)
	})
}

// settled returns the number of goroutines once it stops changing (within
// a bound).
func settled() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// ---- 9. Slow and stalled clients ----

// The servers' timeouts (ReadHeaderTimeout 10 s, ReadTimeout 30 s) would
// end these connections; the test does not wait for them: it checks that
// others are served while they are open, then closes them.
func TestSlowClientsDoNotStopOthersBeingServed(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	m := r.Merchant
	a := adversary.New(r)
	attacker := r.NewCardholder(agenttest.CardholderOptions{})
	aTLS, mTLS := attacker.Wallet.Creds[agenttest.Suite].TLS, m.TLSCertificate()
	pX := initiate(t, attacker, m, tea)
	_, preqX := pX.preq(t, false)
	pZ := initiate(t, attacker, m, mug)
	prZ, _ := pZ.preq(t, false)
	authReq := adversary.AuthReq(t, merchantSigner(t, m), r.Gateway.Keys(t).KE.Cert, pZ.authReqData(t, prZ, m), prZ.PReq.PI)
	reg := a.Register(t, protocol.RoleCardholder, protocol.Identity{})

	type server struct {
		name, url, path string
		cert            *tls.Certificate
		body            []byte
	}
	servers := []server{
		{"a merchant", m.URL, "/orders/" + pX.order.Order + "/set", &aTLS, preqX},
		{"the gateway", r.Gateway.URL, "/auth", &mTLS, authReq},
		{"the CA", r.CAURL, "/register", nil, reg.Requests[0]},
	}
	// open opens n slow connections of each kind at s: half a request and
	// then silence, the headers cut short, a request trickled one byte
	// every 100 ms, and a TCP connection that never starts TLS. The
	// function it returns closes them and reports whether a trickled
	// request was sent whole.
	open := func(t *testing.T, s server, n int) (closeAll func() bool) {
		req := adversary.RawRequest(s.url, s.path, s.body)
		var conns []net.Conn
		var stops []func() int
		for range n {
			conns = append(conns, adversary.Stall(t, s.url, s.cert, req, len(req)/2), adversary.Stall(t, s.url, s.cert, req, 20),
				adversary.Silent(t, s.url))
			stops = append(stops, adversary.Trickle(t, s.url, s.cert, req, 100*time.Millisecond))
		}
		return func() bool {
			whole := false
			for _, c := range conns {
				c.Close()
			}
			for _, stop := range stops {
				whole = whole || stop() == len(req)
			}
			return whole
		}
	}
	// serve is the others' business: a new cardholder registers (the CA)
	// and buys (a merchant, the gateway), and the merchant captures (the
	// gateway).
	serve := func(t *testing.T) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		other := r.NewCardholder(agenttest.CardholderOptions{})
		rec, err := other.Shopper.Buy(ctx, m.URL, tea)
		if err != nil || rec.Status != protocol.PurchApproved {
			t.Fatalf("another cardholder's purchase: %v", err)
		}
		if res, err := m.Capture(ctx); err != nil || res.Captured != 1 {
			t.Fatalf("the merchant's capture: %+v, %v", res, err)
		}
	}
	untouched := []string{adversary.OrderRow(m, pX.order.Order), adversary.OrderRow(m, pZ.order.Order)}
	check := func(t *testing.T, before adversary.State, closeAll func() bool) {
		t.Helper()
		if closeAll() {
			t.Error("a trickled request was sent whole: the test waited too long")
		}
		after := a.State(t)
		for _, row := range untouched {
			if after[row] != before[row] {
				t.Errorf("%s changed: a stalled request was handled", row)
			}
		}
		if n := after.Count("ca/certificates/") - before.Count("ca/certificates/"); n != 2 {
			t.Errorf("the CA issued %d certificates, want the other cardholder's 2 (signature, TLS)", n)
		}
		a.NoPanics(t)
	}
	for _, s := range servers {
		a.Case(t, "slow clients at "+s.name+": others are served meanwhile", func(t *testing.T) {
			before := a.State(t)
			closeAll := open(t, s, 1)
			serve(t)
			check(t, before, closeAll)
		})
	}
	a.Case(t, "10 slow clients of each kind at every server at once: others are served meanwhile", func(t *testing.T) {
		before := a.State(t)
		var closers []func() bool
		for _, s := range servers {
			closers = append(closers, open(t, s, 10))
		}
		serve(t)
		check(t, before, func() bool {
			whole := false
			for _, c := range closers {
				whole = c() || whole
			}
			return whole
		})
	})
}

// wantRevokedPeer: the server checked the client certificate of an open
// connection again for this request and refused it as revoked.
func wantRevokedPeer(t *testing.T, rep adversary.Reply) {
	t.Helper()
	if rep.Err != nil || rep.Status != http.StatusForbidden || !strings.Contains(string(rep.Body), "revoked") {
		t.Errorf("got %v, HTTP %d %q; want 403 naming the revoked certificate", rep.Err, rep.Status, rep.Body)
	}
}
