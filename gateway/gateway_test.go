package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/setpay/setpay/gateway"
	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// The gateway's own checks, each broken by a test here; the checks inside
// protocol.VerifyAuthReq and protocol.VerifyCapReq are the protocol
// package's tests'. Requests are genuine: built by the merchant of an
// agenttest rig (its Tap keeps them from the gateway where a test needs a
// request the gateway has not seen) and passed to Authorize and Capture
// directly, with the merchant's TLS certificate as the peer.

var tea = merchant.OrderRequest{SKU: "tea"} // 12.50

// heldAuthReq runs a purchase of o by c at r.Merchant up to the AuthReq,
// which the tap keeps from the gateway, and returns it.
func heldAuthReq(t *testing.T, r *agenttest.Rig, c *agenttest.Cardholder, o merchant.OrderRequest) []byte {
	t.Helper()
	r.Gateway.Tap.Refuse("/auth", protocol.CodeUnknownTrans, 1)
	if _, err := c.Buy(r.Merchant, o); agent.Code(err) != protocol.CodeUnknownTrans {
		t.Fatalf("purchase with the AuthReq held: %v, want the tap's refusal", err)
	}
	return r.Gateway.Tap.Last(t, "/auth")
}

// heldCapReq has r.Merchant capture what it authorized, the tap keeping
// the CapReq from the gateway, and returns it.
func heldCapReq(t *testing.T, r *agenttest.Rig) []byte {
	t.Helper()
	r.Gateway.Tap.Refuse("/capture", protocol.CodeUnknownTrans, 1)
	if _, err := r.Merchant.Capture(t.Context()); agent.Code(err) != protocol.CodeUnknownTrans {
		t.Fatalf("capture with the CapReq held: %v, want the tap's refusal", err)
	}
	return r.Gateway.Tap.Last(t, "/capture")
}

// buy runs an approved purchase of o by c at r.Merchant.
func buy(t *testing.T, r *agenttest.Rig, c *agenttest.Cardholder, o merchant.OrderRequest) {
	t.Helper()
	rec, err := c.Buy(r.Merchant, o)
	if err != nil {
		t.Fatalf("purchase: %v", err)
	}
	if rec.Status != protocol.PurchApproved {
		t.Fatalf("purchase status %d, want approved", rec.Status)
	}
}

func holds(t *testing.T, r *agenttest.Rig) []bank.Hold {
	t.Helper()
	hs, err := r.Bank.Holds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func captured(t *testing.T, r *agenttest.Rig, m *agenttest.Merchant) (int64, int) {
	t.Helper()
	total, err := r.Bank.CapturedTotal(t.Context(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := r.Bank.Captures(t.Context(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return total, len(cs)
}

// wantError checks that out is an Error of code signed by the gateway.
func wantError(t *testing.T, r *agenttest.Rig, out []byte, code protocol.Code) {
	t.Helper()
	e := agenttest.Expect[*protocol.Error](t, out)
	if e.Data.Code != code {
		t.Fatalf("got Error %d (%s: %q), want %d (%s)", e.Data.Code, e.Data.Code, e.Data.Detail, code, code)
	}
	if _, err := protocol.VerifyError(r.Trust(), e, protocol.CertGatewaySignature, agenttest.Suite); err != nil {
		t.Errorf("the gateway's Error does not verify as the gateway's: %v", err)
	}
}

func xidOf(t *testing.T, r *agenttest.Rig, authReq []byte) protocol.XID {
	t.Helper()
	return r.OpenAuthReq(t, authReq).Request.TransIDs.XID
}

func TestPurchaseApprovedEndToEnd(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	rec, err := c.Buy(r.Merchant, merchant.OrderRequest{SKU: "set-book", Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Amount{Currency: 978, Value: 8400}
	if rec.Status != protocol.PurchApproved || rec.AuthAmt == nil || *rec.AuthAmt != want {
		t.Fatalf("receipt: status %d, amount %v; want approved, %v", rec.Status, rec.AuthAmt, want)
	}
	hs := holds(t, r)
	if len(hs) != 1 || hs[0].Amount != 8400 || hs[0].MerchantID != r.Merchant.ID {
		t.Fatalf("bank holds %+v, want one of 8400 for %s", hs, r.Merchant.ID)
	}
	authReq := r.Gateway.Tap.Last(t, "/auth")
	if s := gateway.LedgerState(t, r.Gateway.Gateway, xidOf(t, r, authReq)); s != "approved" {
		t.Errorf("ledger state %q, want approved", s)
	}
	if got, want := gateway.LedgerRows(t, r.Gateway.Gateway), map[string]int{"answers": 1, "authorizations": 1, "captures": 0}; !equalRows(got, want) {
		t.Errorf("ledger rows %v, want %v", got, want)
	}
}

func equalRows(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func TestAuthorizeAnswersTheSameRequestFromTheLedger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		send func(t *testing.T, r *agenttest.Rig, peer *protocol.Cert, req []byte) [][]byte
	}{
		{"sent again after the answer", func(t *testing.T, r *agenttest.Rig, peer *protocol.Cert, req []byte) [][]byte {
			return [][]byte{r.Gateway.Authorize(t.Context(), peer, req), r.Gateway.Authorize(t.Context(), peer, req)}
		}},
		{"sent again while the first waits for the bank", func(t *testing.T, r *agenttest.Rig, peer *protocol.Cert, req []byte) [][]byte {
			// The second request passes the checks while the first holds
			// the XID's lock; it gets the lock once the first is answered.
			xid := xidOf(t, r, req)
			var second []byte
			done := make(chan struct{})
			r.Link.OnNextExchange(func() {
				go func() { second = r.Gateway.Authorize(context.Background(), peer, req); close(done) }()
				for i := 0; gateway.XIDLockUsers(r.Gateway.Gateway, xid) < 2; i++ {
					if i == 10000 {
						t.Error("the second request never waited for the lock")
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
			first := r.Gateway.Authorize(t.Context(), peer, req)
			<-done
			return [][]byte{first, second}
		}},
		{"sent 8 times at once", func(t *testing.T, r *agenttest.Rig, peer *protocol.Cert, req []byte) [][]byte {
			outs := make([][]byte, 8)
			var wg sync.WaitGroup
			for i := range outs {
				wg.Go(func() { outs[i] = r.Gateway.Authorize(context.Background(), peer, req) })
			}
			wg.Wait()
			return outs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := agenttest.New(t, agenttest.Options{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			req := heldAuthReq(t, r, c, tea)
			outs := tc.send(t, r, r.Merchant.Peer(t), req)
			if d := r.OpenAuthRes(t, r.Merchant, req, outs[0]); d.Result != protocol.AuthApproved {
				t.Fatalf("AuthRes result %d, want approved", d.Result)
			}
			for i, out := range outs[1:] {
				if !bytes.Equal(out, outs[0]) {
					t.Errorf("answer %d differs from the first", i+2)
				}
			}
			if hs := holds(t, r); len(hs) != 1 {
				t.Errorf("%d holds at the bank, want 1", len(hs))
			}
			if n := r.Link.Exchanges(); n != 1 {
				t.Errorf("the bank was asked %d times, want once", n)
			}
		})
	}
}

// A request answered before gets the recorded answer before any check:
// even on another merchant's TLS connection (the answer is sealed to the
// merchant that signed the request), nothing is verified or changed.
func TestRecordedAnswersComeBeforeAnyCheck(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	other := r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	capReq := heldCapReq(t, r)
	authReq := heldAuthReq(t, r, c, tea)
	for _, tc := range []struct {
		name string
		req  []byte
		call func(context.Context, *protocol.Cert, []byte) []byte
	}{
		{"AuthReq", authReq, r.Gateway.Authorize},
		{"CapReq", capReq, r.Gateway.Capture},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := tc.call(t.Context(), r.Merchant.Peer(t), tc.req)
			if code := errorCodeOf(t, first); code != 0 {
				t.Fatalf("first answer: Error %s", code)
			}
			rows, exchanges := gateway.LedgerRows(t, r.Gateway.Gateway), r.Link.Exchanges()
			if again := tc.call(t.Context(), other.Peer(t), tc.req); !bytes.Equal(again, first) {
				t.Errorf("on another merchant's connection: not the recorded answer (Error %v)", errorCodeOf(t, again))
			}
			if got := gateway.LedgerRows(t, r.Gateway.Gateway); !equalRows(got, rows) || r.Link.Exchanges() != exchanges {
				t.Error("the repeated request changed something")
			}
		})
	}
}

// errorCodeOf returns the code of an Error message, 0 for another message.
func errorCodeOf(t *testing.T, der []byte) protocol.Code {
	t.Helper()
	if e, ok := agenttest.Parse(t, der).Message.(*protocol.Error); ok {
		return e.Data.Code
	}
	return 0
}

func TestAuthorizeRefusesAnotherRequestForAnXIDItHandled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		state string // of the first request when the other comes
	}{
		{"after the approval", "approved"},
		{"after the decline", "declined"},
		{"while the first waits for the bank", "pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := agenttest.New(t, agenttest.Options{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			if tc.state == "declined" {
				if err := r.Bank.PutAccounts(t.Context(), bank.Account{PAN: c.PAN, Expiry: agenttest.Expiry, CreditLimit: 100}); err != nil {
					t.Fatal(err)
				}
			}
			req := heldAuthReq(t, r, c, tea)
			peer := r.Merchant.Peer(t)
			if tc.state == "pending" {
				r.Link.Unreachable(1)
				wantError(t, r, r.Gateway.Authorize(t.Context(), peer, req), protocol.CodeUnavailable)
			} else {
				agenttest.Expect[*protocol.AuthRes](t, r.Gateway.Authorize(t.Context(), peer, req))
			}
			xid := xidOf(t, r, req)
			if s := gateway.LedgerState(t, r.Gateway.Gateway, xid); s != tc.state {
				t.Fatalf("ledger state %q, want %q", s, tc.state)
			}
			rowsBefore, exchanges := gateway.LedgerRows(t, r.Gateway.Gateway), r.Link.Exchanges()

			// The same AuthReq in other bytes: a replay the ledger has no
			// answer for.
			other := agenttest.Rewrap(t, req, func(w *protocol.Wrapper) { w.Header.SWIdent = "replayer/1" })
			wantError(t, r, r.Gateway.Authorize(t.Context(), peer, other), protocol.CodeReplay)

			if got := gateway.LedgerRows(t, r.Gateway.Gateway); !equalRows(got, rowsBefore) {
				t.Errorf("ledger rows %v after the replay, want %v", got, rowsBefore)
			}
			if s := gateway.LedgerState(t, r.Gateway.Gateway, xid); s != tc.state {
				t.Errorf("ledger state %q after the replay, want %q", s, tc.state)
			}
			if n := r.Link.Exchanges(); n != exchanges {
				t.Errorf("the replay reached the bank (%d exchanges, want %d)", n, exchanges)
			}
			if tc.state == "pending" { // the first request still completes
				agenttest.Expect[*protocol.AuthRes](t, r.Gateway.Authorize(t.Context(), peer, req))
				if hs := holds(t, r); len(hs) != 1 {
					t.Errorf("%d holds, want 1", len(hs))
				}
			}
		})
	}
}

func TestRequestsFromAnotherMerchantsTLSClientAreRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	other := r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})

	t.Run("AuthReq", func(t *testing.T) {
		req := heldAuthReq(t, r, c, tea)
		wantError(t, r, r.Gateway.Authorize(t.Context(), other.Peer(t), req), protocol.CodeMerchantMismatch)
		if got := gateway.LedgerRows(t, r.Gateway.Gateway); got["answers"]+got["authorizations"] != 0 {
			t.Errorf("ledger rows %v after the refusal, want none", got)
		}
		if n := r.Link.Exchanges(); n != 0 {
			t.Errorf("the bank was asked %d times, want never", n)
		}
		// Nothing was recorded: the merchant that signed still gets through.
		agenttest.Expect[*protocol.AuthRes](t, r.Gateway.Authorize(t.Context(), r.Merchant.Peer(t), req))
	})
	t.Run("CapReq", func(t *testing.T) {
		buy(t, r, c, tea)
		req := heldCapReq(t, r)
		rows := gateway.LedgerRows(t, r.Gateway.Gateway)
		wantError(t, r, r.Gateway.Capture(t.Context(), other.Peer(t), req), protocol.CodeMerchantMismatch)
		if got := gateway.LedgerRows(t, r.Gateway.Gateway); !equalRows(got, rows) {
			t.Errorf("ledger rows %v after the refusal, want %v", got, rows)
		}
		if total, _ := captured(t, r, r.Merchant); total != 0 {
			t.Errorf("captured %d, want nothing", total)
		}
		agenttest.Expect[*protocol.CapRes](t, r.Gateway.Capture(t.Context(), r.Merchant.Peer(t), req))
	})
}

func TestRequestsSealedUnderASuiteTheGatewayLacksAreRefused(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	capReq := heldCapReq(t, r)
	authReq := heldAuthReq(t, r, c, tea)
	peer := r.Merchant.Peer(t)
	rows := gateway.LedgerRows(t, r.Gateway.Gateway)
	for _, tc := range []struct {
		name  string
		req   []byte
		suite protocol.Suite
		call  func(context.Context, *protocol.Cert, []byte) []byte
	}{
		{"AuthReq under an unknown suite", authReq, 7, r.Gateway.Authorize},
		{"AuthReq under a suite the gateway did not register for", authReq, protocol.SuiteNIST, r.Gateway.Authorize},
		{"CapReq under an unknown suite", capReq, 7, r.Gateway.Capture},
		{"CapReq under a suite the gateway did not register for", capReq, protocol.SuiteNIST, r.Gateway.Capture},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := agenttest.Rewrap(t, tc.req, func(w *protocol.Wrapper) {
				switch m := w.Message.(type) {
				case *protocol.AuthReq:
					m.Sealed.Suite = tc.suite
				case *protocol.CapReq:
					m.Sealed.Suite = tc.suite
				}
			})
			wantError(t, r, tc.call(t.Context(), peer, in), protocol.CodeUnknownSuite)
			if got := gateway.LedgerRows(t, r.Gateway.Gateway); !equalRows(got, rows) {
				t.Errorf("ledger rows %v, want %v", got, rows)
			}
		})
	}
}

func TestAuthorizeWhenTheBankDoesNotAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fail    func(*agenttest.BankLink)
		holding int // holds at the bank after the failure
	}{
		{"bank unreachable", func(l *agenttest.BankLink) { l.Unreachable(1) }, 0},
		{"bank's answer lost", func(l *agenttest.BankLink) { l.LoseAnswers(1) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := agenttest.New(t, agenttest.Options{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			req := heldAuthReq(t, r, c, tea)
			peer := r.Merchant.Peer(t)
			xid := xidOf(t, r, req)

			tc.fail(r.Link)
			wantError(t, r, r.Gateway.Authorize(t.Context(), peer, req), protocol.CodeUnavailable)
			if s := gateway.LedgerState(t, r.Gateway.Gateway, xid); s != "pending" {
				t.Errorf("ledger state %q, want pending", s)
			}
			if got := gateway.LedgerRows(t, r.Gateway.Gateway); got["answers"] != 0 {
				t.Errorf("an answer was recorded: %v", got)
			}
			if hs := holds(t, r); len(hs) != tc.holding {
				t.Errorf("%d holds after the failure, want %d", len(hs), tc.holding)
			}

			// The bank is back: the same AuthReq is approved, with one hold.
			out := r.Gateway.Authorize(t.Context(), peer, req)
			d := r.OpenAuthRes(t, r.Merchant, req, out)
			if d.Result != protocol.AuthApproved {
				t.Fatalf("retry: result %d, want approved", d.Result)
			}
			hs := holds(t, r)
			if len(hs) != 1 {
				t.Fatalf("%d holds after the retry, want 1", len(hs))
			}
			if hs[0].AuthID != d.AuthCode {
				t.Errorf("AuthRes code %q, the bank's hold %q", d.AuthCode, hs[0].AuthID)
			}
			if s := gateway.LedgerState(t, r.Gateway.Gateway, xid); s != "approved" {
				t.Errorf("ledger state %q after the retry, want approved", s)
			}
		})
	}
}

func TestCaptureAnswersTheSameRequestFromTheLedger(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	buy(t, r, c, merchant.OrderRequest{SKU: "mug"})
	req := heldCapReq(t, r)
	peer := r.Merchant.Peer(t)
	first := r.Gateway.Capture(t.Context(), peer, req)
	again := r.Gateway.Capture(t.Context(), peer, req)
	if !bytes.Equal(first, again) {
		t.Error("the same CapReq got another answer")
	}
	d := r.OpenCapRes(t, r.Merchant, &r.OpenCapReq(t, req).Request, first)
	for i, it := range d.Items {
		if it.Code != 0 {
			t.Errorf("item %d refused with %s", i, it.Code)
		}
	}
	if total, n := captured(t, r, r.Merchant); total != 1250+990 || n != 2 {
		t.Errorf("acquirer captured %d in %d captures, want 2240 in 2", total, n)
	}
	if got := gateway.LedgerRows(t, r.Gateway.Gateway); got["captures"] != 2 {
		t.Errorf("ledger rows %v, want 2 captures", got)
	}
}

// capItem returns the item of a genuine CapReq of r.Merchant for its one
// authorized order.
func capItem(t *testing.T, r *agenttest.Rig) ([]byte, protocol.CapItem) {
	t.Helper()
	req := heldCapReq(t, r)
	b := r.OpenCapReq(t, req)
	if len(b.Items) != 1 {
		t.Fatalf("%d items, want 1", len(b.Items))
	}
	return req, *b.Items[0].Item
}

func TestCaptureRefusesAnItemCapturedByAnEarlierBatch(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	req, item := capItem(t, r)
	peer := r.Merchant.Peer(t)
	agenttest.Expect[*protocol.CapRes](t, r.Gateway.Capture(t.Context(), peer, req))

	later, sent := r.NewCapReq(t, r.Merchant, 99, item)
	d := r.OpenCapRes(t, r.Merchant, sent, r.Gateway.Capture(t.Context(), peer, later))
	if it := d.Items[0]; it.Code != protocol.CodeAlreadyCaptured || it.CapAmt.Value != 0 {
		t.Errorf("item: code %s, captured %d; want %s, 0", it.Code, it.CapAmt.Value, protocol.CodeAlreadyCaptured)
	}
	if total, n := captured(t, r, r.Merchant); total != 1250 || n != 1 {
		t.Errorf("acquirer captured %d in %d captures, want 1250 in 1", total, n)
	}
}

func TestCaptureRefusesTheSecondItemOfAnXIDInOneBatch(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	_, item := capItem(t, r)
	req, sent := r.NewCapReq(t, r.Merchant, 7, item, item)
	d := r.OpenCapRes(t, r.Merchant, sent, r.Gateway.Capture(t.Context(), r.Merchant.Peer(t), req))
	if it := d.Items[0]; it.Code != 0 || it.CapAmt.Value != 1250 {
		t.Errorf("first item: code %s, captured %d; want captured 1250", it.Code, it.CapAmt.Value)
	}
	if it := d.Items[1]; it.Code != protocol.CodeAlreadyCaptured || it.CapAmt.Value != 0 {
		t.Errorf("second item: code %s, captured %d; want %s", it.Code, it.CapAmt.Value, protocol.CodeAlreadyCaptured)
	}
	if total, n := captured(t, r, r.Merchant); total != 1250 || n != 1 {
		t.Errorf("acquirer captured %d in %d captures, want 1250 in 1", total, n)
	}
}

// A CapToken exists only for an approval the ledger recorded, so an item
// for an XID the ledger does not hold as this merchant's approval is made
// here by changing the ledger under a genuine CapReq.
func TestCaptureRefusesAnItemTheLedgerHasNoApprovalFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		state, merchant string
	}{
		{"no authorization of the XID", "", ""},
		{"the XID was declined", "declined", agenttest.MerchantIDs[0]},
		{"the XID waits for the bank", "pending", agenttest.MerchantIDs[0]},
		{"the XID is another merchant's", "approved", agenttest.MerchantIDs[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := agenttest.New(t, agenttest.Options{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			buy(t, r, c, tea)
			req, item := capItem(t, r)
			gateway.SetLedger(t, r.Gateway.Gateway, item.TransIDs.XID, tc.state, tc.merchant)
			exchanges := r.Link.Exchanges()
			out := r.Gateway.Capture(t.Context(), r.Merchant.Peer(t), req)
			d := r.OpenCapRes(t, r.Merchant, &r.OpenCapReq(t, req).Request, out)
			if it := d.Items[0]; it.Code != protocol.CodeUnknownTrans || it.CapAmt.Value != 0 {
				t.Errorf("item: code %s, captured %d; want %s", it.Code, it.CapAmt.Value, protocol.CodeUnknownTrans)
			}
			if total, _ := captured(t, r, r.Merchant); total != 0 {
				t.Errorf("acquirer captured %d, want nothing", total)
			}
			if n := r.Link.Exchanges(); n != exchanges {
				t.Error("the acquirer was asked")
			}
			if got := gateway.LedgerRows(t, r.Gateway.Gateway); got["captures"] != 0 {
				t.Errorf("ledger rows %v, want no capture", got)
			}
		})
	}
}

func TestMalformedRequestsAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	capReq := heldCapReq(t, r)
	authReq := heldAuthReq(t, r, c, tea)
	peer := r.Merchant.Peer(t)
	rows, exchanges := gateway.LedgerRows(t, r.Gateway.Gateway), r.Link.Exchanges()
	for _, tc := range []struct {
		name string
		call func(context.Context, *protocol.Cert, []byte) []byte
		in   []byte
		code protocol.Code
	}{
		{"empty AuthReq", r.Gateway.Authorize, nil, protocol.CodeMalformed},
		{"AuthReq not DER", r.Gateway.Authorize, []byte("POST /auth"), protocol.CodeMalformed},
		{"AuthReq truncated", r.Gateway.Authorize, authReq[:len(authReq)-1], protocol.CodeMalformed},
		{"AuthReq with a trailing byte", r.Gateway.Authorize, append(slices.Clip(authReq), 0), protocol.CodeMalformed},
		{"AuthReq with its envelope corrupted", r.Gateway.Authorize, flipByte(authReq, len(authReq)/4), 0},
		{"CapReq where an AuthReq goes", r.Gateway.Authorize, capReq, protocol.CodeUnexpectedMessage},
		{"empty CapReq", r.Gateway.Capture, nil, protocol.CodeMalformed},
		{"CapReq not DER", r.Gateway.Capture, []byte{0x30, 0x80, 0, 0}, protocol.CodeMalformed},
		{"CapReq truncated", r.Gateway.Capture, capReq[:len(capReq)-1], protocol.CodeMalformed},
		{"CapReq with a trailing byte", r.Gateway.Capture, append(slices.Clip(capReq), 0), protocol.CodeMalformed},
		{"AuthReq where a CapReq goes", r.Gateway.Capture, authReq, protocol.CodeUnexpectedMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.call(t.Context(), peer, tc.in)
			if tc.code == 0 { // any refusal: which check fails depends on the byte
				agenttest.Expect[*protocol.Error](t, out)
			} else {
				wantError(t, r, out, tc.code)
			}
			if got := gateway.LedgerRows(t, r.Gateway.Gateway); !equalRows(got, rows) {
				t.Errorf("ledger rows %v, want %v", got, rows)
			}
			if n := r.Link.Exchanges(); n != exchanges {
				t.Errorf("the bank was asked (%d exchanges, want %d)", n, exchanges)
			}
		})
	}
}

func flipByte(b []byte, i int) []byte {
	out := slices.Clone(b)
	out[i] ^= 0x01
	return out
}

func TestGatewayServesOnlyMerchantsTLSClients(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	client := func(cert tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: mtls.Client(&cert, func() []*protocol.Trust { return []*protocol.Trust{r.Trust()} }, nil, protocol.CertGatewayTLS)}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	merchantClient := client(r.Merchant.TLSCertificate())

	if _, err := client(c.Wallet.Creds[agenttest.Suite].TLS).Get(r.Gateway.URL + "/certs/pq"); err == nil {
		t.Error("a cardholder's TLS certificate was accepted")
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/certs/pq", http.StatusOK},
		{"/certs/nist", http.StatusNotFound}, // registered for pq only
		{"/certs/rsa", http.StatusNotFound},
	} {
		resp, err := merchantClient.Get(r.Gateway.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
			continue
		}
		if tc.code != http.StatusOK {
			continue
		}
		chain, err := keyfile.DecodeCerts(body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(chain[0], r.Gateway.Keys(t).KE.Cert.X509.Raw) {
			t.Errorf("GET %s: not the gateway's key-exchange certificate", tc.path)
		}
	}
}

// The gateway reads the card number (it must, to ask the issuer) but logs
// and stores none, and never learns the order description.
func TestGatewayLogsAndStoresNoCardNumberNorDescription(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{Merchant: merchant.Config{CustomOrders: true}})
	const desc = "Birthday present for Ada Lovelace"
	approved := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, approved, merchant.OrderRequest{Description: desc, Amount: 4321})
	declined := r.NewCardholder(agenttest.CardholderOptions{Unsigned: true})
	if err := r.Bank.PutAccounts(t.Context(), bank.Account{PAN: declined.PAN, Expiry: agenttest.Expiry, CreditLimit: 1}); err != nil {
		t.Fatal(err)
	}
	r.Link.Unreachable(1) // a logged bank failure, then the merchant's retry
	if rec, err := declined.Buy(r.Merchant, merchant.OrderRequest{Description: desc, Amount: 99}); err != nil || rec.Status != protocol.PurchDeclined {
		t.Fatalf("purchase: %v, want a decline", err)
	}
	if _, err := r.Merchant.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}

	log := r.Gateway.Log.String()
	if !strings.Contains(log, "authorization") || !strings.Contains(log, "bank unavailable") || !strings.Contains(log, "capture batch") {
		t.Fatalf("the gateway's log lacks what was done:\n%s", log)
	}
	for _, secret := range []string{approved.PAN, declined.PAN, desc} {
		if strings.Contains(log, secret) {
			t.Errorf("the gateway's log holds %q", secret)
		}
		if files := agenttest.FilesContaining(t, r.Gateway.Dir, []byte(secret)); len(files) > 0 {
			t.Errorf("the gateway's files %v hold %q", files, secret)
		}
	}
	// The scan does read the stores: the merchant's holds the description.
	if files := agenttest.FilesContaining(t, r.Merchant.Dir, []byte(desc)); len(files) == 0 {
		t.Error("the description is in no file of the merchant: the scan reads nothing")
	}
}

func TestCaptureWhenTheBankDoesNotAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fail     func(*agenttest.BankLink)
		captured int64 // at the acquirer after the failure
	}{
		{"acquirer unreachable", func(l *agenttest.BankLink) { l.Unreachable(1) }, 0},
		{"acquirer's answer lost", func(l *agenttest.BankLink) { l.LoseAnswers(1) }, 1250},
		{"acquirer unreachable for the second item", func(l *agenttest.BankLink) {
			l.OnNextExchange(func() { l.Unreachable(1) })
		}, 1250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := agenttest.New(t, agenttest.Options{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			buy(t, r, c, tea)
			buy(t, r, c, tea)
			req := heldCapReq(t, r)
			peer := r.Merchant.Peer(t)
			rows := gateway.LedgerRows(t, r.Gateway.Gateway)

			tc.fail(r.Link)
			wantError(t, r, r.Gateway.Capture(t.Context(), peer, req), protocol.CodeUnavailable)
			if got := gateway.LedgerRows(t, r.Gateway.Gateway); !equalRows(got, rows) {
				t.Errorf("ledger rows %v after the failure, want %v", got, rows)
			}
			if total, _ := captured(t, r, r.Merchant); total != tc.captured {
				t.Errorf("acquirer captured %d after the failure, want %d", total, tc.captured)
			}

			// The same CapReq once the bank is back: each item captured once.
			d := r.OpenCapRes(t, r.Merchant, &r.OpenCapReq(t, req).Request, r.Gateway.Capture(t.Context(), peer, req))
			for i, it := range d.Items {
				if it.Code != 0 || it.CapAmt.Value != 1250 {
					t.Errorf("item %d: code %s, captured %d; want 1250", i, it.Code, it.CapAmt.Value)
				}
			}
			if total, n := captured(t, r, r.Merchant); total != 2500 || n != 2 {
				t.Errorf("acquirer captured %d in %d captures, want 2500 in 2", total, n)
			}
		})
	}
}

func TestCaptureRefusesItemsTheirCapTokensDoNotAllow(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	buy(t, r, c, merchant.OrderRequest{SKU: "mug"})
	b := r.OpenCapReq(t, heldCapReq(t, r))
	a, m := *b.Items[0].Item, *b.Items[1].Item
	over := a
	over.CapAmt.Value++
	swappedA, swappedM := a, m
	swappedA.CapToken, swappedM.CapToken = m.CapToken, a.CapToken
	for _, tc := range []struct {
		name  string
		items []protocol.CapItem
		want  protocol.Code
	}{
		{"more than authorized", []protocol.CapItem{over}, protocol.CodeCaptureExceeds},
		{"another transaction's CapToken", []protocol.CapItem{swappedA, swappedM}, protocol.CodeCapTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exchanges := r.Link.Exchanges()
			req, sent := r.NewCapReq(t, r.Merchant, 50, tc.items...)
			d := r.OpenCapRes(t, r.Merchant, sent, r.Gateway.Capture(t.Context(), r.Merchant.Peer(t), req))
			for i, it := range d.Items {
				if it.Code != tc.want || it.CapAmt.Value != 0 {
					t.Errorf("item %d: code %s, captured %d; want %s", i, it.Code, it.CapAmt.Value, tc.want)
				}
			}
			if r.Link.Exchanges() != exchanges {
				t.Error("the acquirer was asked")
			}
		})
	}
	if total, _ := captured(t, r, r.Merchant); total != 0 {
		t.Errorf("acquirer captured %d, want nothing", total)
	}
}

func TestCaptureWhenTheBankHasNoOpenHold(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, r, c, tea)
	h := holds(t, r)[0]
	rev := &bank.ReversalRequest{MerchantID: h.MerchantID, RRN: h.RRN, AuthID: h.AuthID, Amount: h.Amount, Currency: h.Currency, When: agenttest.Now}
	msg, err := rev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Bank.Exchange(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := rev.ParseResponse(out); err != nil || !res.Approved {
		t.Fatalf("reversal: %+v, %v", res, err)
	}
	req := heldCapReq(t, r)
	d := r.OpenCapRes(t, r.Merchant, &r.OpenCapReq(t, req).Request, r.Gateway.Capture(t.Context(), r.Merchant.Peer(t), req))
	if it := d.Items[0]; it.Code != protocol.CodeUnknownTrans || it.CapAmt.Value != 0 {
		t.Errorf("item: code %s, captured %d; want %s", it.Code, it.CapAmt.Value, protocol.CodeUnknownTrans)
	}
	if got := gateway.LedgerRows(t, r.Gateway.Gateway); got["captures"] != 0 {
		t.Errorf("ledger rows %v, want no capture", got)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	badKey := t.TempDir()
	if err := os.WriteFile(filepath.Join(badKey, "token.key"), []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  gateway.Config
		want string
	}{
		{"no bank", gateway.Config{Dir: r.Gateway.Dir}, "no bank"},
		{"no credentials", gateway.Config{Dir: t.TempDir(), Bank: r.Link}, "register the gateway first"},
		{"a corrupt token key", gateway.Config{Dir: badKey, Bank: r.Link}, "token.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := gateway.Open(tc.cfg)
			if err == nil {
				g.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
		})
	}

	// Opened again, the gateway has the same token key and ledger: it
	// captures what the first one authorized, and the first answers the
	// same CapReq from the ledger they share.
	t.Run("again on the same directory", func(t *testing.T) {
		c := r.NewCardholder(agenttest.CardholderOptions{})
		buy(t, r, c, tea)
		req := heldCapReq(t, r)
		g, err := gateway.Open(gateway.Config{Dir: r.Gateway.Dir, Bank: r.Link, Now: func() time.Time { return agenttest.Now }})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		out := g.Capture(t.Context(), r.Merchant.Peer(t), req)
		if d := r.OpenCapRes(t, r.Merchant, &r.OpenCapReq(t, req).Request, out); d.Items[0].Code != 0 {
			t.Errorf("item refused with %s", d.Items[0].Code)
		}
		if again := r.Gateway.Capture(t.Context(), r.Merchant.Peer(t), req); !bytes.Equal(again, out) {
			t.Error("the first gateway answered the CapReq anew")
		}
	})
}
