package merchant_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/setpay/setpay/cardholder"
	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// The merchant's own checks, each broken by a test here; the checks inside
// protocol.VerifyPReq and protocol.VerifyAuthRes are the protocol package's
// tests'. The merchant runs in an agenttest rig, with real cardholders
// over mutual TLS and the real gateway behind a Tap.

var tea = merchant.OrderRequest{SKU: "tea"} // 12.50

func newRig(t *testing.T, cfg merchant.Config) *agenttest.Rig {
	t.Helper()
	return agenttest.New(t, agenttest.Options{Merchant: cfg})
}

// buy runs a purchase that must be approved.
func buy(t *testing.T, c *agenttest.Cardholder, m *agenttest.Merchant, o merchant.OrderRequest) *cardholder.Receipt {
	t.Helper()
	rec, err := c.Buy(m, o)
	if err != nil {
		t.Fatalf("purchase: %v", err)
	}
	if rec.Status != protocol.PurchApproved {
		t.Fatalf("purchase status %d (reason %s), want approved", rec.Status, rec.Reason)
	}
	return rec
}

// wantError checks that out is an Error of code signed by merchant m.
func wantError(t *testing.T, r *agenttest.Rig, out []byte, code protocol.Code) {
	t.Helper()
	e := agenttest.Expect[*protocol.Error](t, out)
	if e.Data.Code != code {
		t.Fatalf("got Error %d (%s: %q), want %d (%s)", e.Data.Code, e.Data.Code, e.Data.Detail, code, code)
	}
	if _, err := protocol.VerifyError(r.Trust(), e, protocol.CertMerchantSignature, agenttest.Suite); err != nil {
		t.Errorf("the merchant's Error does not verify as the merchant's: %v", err)
	}
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	if got := agent.Code(err); got != code {
		t.Fatalf("got %v (code %d), want code %d (%s)", err, got, code, code)
	}
}

func status(t *testing.T, c *agenttest.Cardholder, m *agenttest.Merchant, order string) merchant.Status {
	t.Helper()
	st, err := c.Shopper.Status(t.Context(), m.URL, order)
	if err != nil {
		t.Fatalf("status of %s: %v", order, err)
	}
	return *st
}

func holds(t *testing.T, r *agenttest.Rig) int {
	t.Helper()
	hs, err := r.Bank.Holds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(hs)
}

// allEqual reports whether the messages are byte-identical.
func allEqual(ms [][]byte) bool {
	for _, m := range ms[1:] {
		if !bytes.Equal(m, ms[0]) {
			return false
		}
	}
	return true
}

func TestPurchaseApproved(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	cat, err := c.Shopper.Catalogue(t.Context(), r.Merchant.URL)
	if err != nil {
		t.Fatal(err)
	}
	if cat.MerchantID != r.Merchant.ID || cat.Currency != 978 || len(cat.Items) != len(merchant.DefaultCatalogue) || cat.CustomOrders || cat.RequireCert {
		t.Errorf("catalogue %+v", cat)
	}
	rec := buy(t, c, r.Merchant, merchant.OrderRequest{SKU: "set-book", Quantity: 2})
	if want := (merchant.Agreed{Order: rec.Agreed.Order, Description: "2 x The Illustrated SET, paperback", Currency: 978, Amount: 8400}); rec.Agreed != want {
		t.Errorf("agreed %+v, want %+v", rec.Agreed, want)
	}
	if rec.AuthAmt == nil || rec.AuthAmt.Value != 8400 {
		t.Errorf("authorized %v, want 8400", rec.AuthAmt)
	}
	if st := status(t, c, r.Merchant, rec.Agreed.Order); st.State != "authorized" || st.Amount != 8400 {
		t.Errorf("status %+v, want authorized 8400", st)
	}
	if n := len(r.Gateway.Tap.Requests("/auth")); n != 1 {
		t.Errorf("%d AuthReqs, want 1", n)
	}
}

func TestPReqBeforePInitReqIsRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	preq := buy(t, c, r.Merchant, tea).Messages[2]
	o := c.MustAgree(r.Merchant, tea)
	wantError(t, r, c.Send(r.Merchant, o.Order, preq), protocol.CodeUnknownTrans)
	if s := merchant.OrderState(t, r.Merchant.Merchant, o.Order); s != "agreed" {
		t.Errorf("order state %q, want agreed", s)
	}
	if n := len(r.Gateway.Tap.Requests("/auth")); n != 1 {
		t.Errorf("%d AuthReqs, want only the first purchase's", n)
	}
}

func TestOrdersAreTheirBuyersOnly(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	owner := r.NewCardholder(agenttest.CardholderOptions{})
	other := r.NewCardholder(agenttest.CardholderOptions{})
	rec := buy(t, owner, r.Merchant, tea)
	initiated := owner.MustAgree(r.Merchant, tea)
	pinitReq := owner.PInitReq()
	agenttest.Expect[*protocol.PInitRes](t, owner.Send(r.Merchant, initiated.Order, pinitReq))

	for _, tc := range []struct {
		name, order string
		msg         []byte
	}{
		{"PInitReq for another buyer's agreed order", owner.MustAgree(r.Merchant, tea).Order, other.PInitReq()},
		{"PInitReq for another buyer's paid order", rec.Agreed.Order, other.PInitReq()},
		{"the buyer's own PReq replayed by another buyer", rec.Agreed.Order, rec.Messages[2]},
		{"the buyer's own PInitReq replayed by another buyer", initiated.Order, pinitReq},
		{"PInitReq for no order", "O-000000000000", other.PInitReq()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := merchant.OrderState(t, r.Merchant.Merchant, tc.order)
			wantError(t, r, other.Send(r.Merchant, tc.order, tc.msg), protocol.CodeUnknownTrans)
			if code, _ := other.Get(r.Merchant, "/orders/"+tc.order); code != http.StatusNotFound {
				t.Errorf("GET /orders/%s by another buyer: %d, want 404", tc.order, code)
			}
			if s := merchant.OrderState(t, r.Merchant.Merchant, tc.order); s != before {
				t.Errorf("order state %q, was %q", s, before)
			}
		})
	}
	// The owner still sees its order, and the merchant's Purchase refuses a
	// buyer thumbprint that is not the owner's even when called directly.
	if st := status(t, owner, r.Merchant, rec.Agreed.Order); st.State != "authorized" {
		t.Errorf("owner's status %+v, want authorized", st)
	}
	wantError(t, r, r.Merchant.Purchase(t.Context(), initiated.Order, make([]byte, 32), owner.PInitReq()), protocol.CodeUnknownTrans)
}

func TestPInitReqIsAnsweredOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	paid := buy(t, c, r.Merchant, tea)
	initiated := c.MustAgree(r.Merchant, tea)
	first := c.PInitReq()
	res := c.Send(r.Merchant, initiated.Order, first)
	agenttest.Expect[*protocol.PInitRes](t, res)

	for _, tc := range []struct {
		name, order string
		pinitReq    []byte
		want        []byte // the recorded PInitRes; nil: CodeReplay
	}{
		{"the same PInitReq for an initiated order", initiated.Order, first, res},
		{"another PInitReq for an initiated order", initiated.Order, c.PInitReq(), nil},
		{"the same PInitReq for a paid order", paid.Agreed.Order, paid.Messages[0], paid.Messages[1]},
		{"another PInitReq for a paid order", paid.Agreed.Order, c.PInitReq(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := merchant.OrderState(t, r.Merchant.Merchant, tc.order)
			out := c.Send(r.Merchant, tc.order, tc.pinitReq)
			if tc.want == nil {
				wantError(t, r, out, protocol.CodeReplay)
			} else if !bytes.Equal(out, tc.want) {
				t.Error("answer differs from the recorded PInitRes")
			}
			if s := merchant.OrderState(t, r.Merchant.Merchant, tc.order); s != before {
				t.Errorf("order state %q, was %q", s, before)
			}
		})
	}
}

func TestPReqIsAnsweredOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	rec := buy(t, c, r.Merchant, tea)
	order, preq, pres := rec.Agreed.Order, rec.Messages[2], rec.Messages[3]

	if out := c.Send(r.Merchant, order, preq); !bytes.Equal(out, pres) {
		t.Error("the same PReq got another answer than the recorded PRes")
	}
	other := agenttest.Rewrap(t, preq, func(w *protocol.Wrapper) { w.Header.SWIdent = "replayer/1" })
	wantError(t, r, c.Send(r.Merchant, order, other), protocol.CodeReplay)
	if n := len(r.Gateway.Tap.Requests("/auth")); n != 1 {
		t.Errorf("%d AuthReqs, want 1", n)
	}
	if n := holds(t, r); n != 1 {
		t.Errorf("%d holds, want 1", n)
	}
	if s := merchant.OrderState(t, r.Merchant.Merchant, order); s != "authorized" {
		t.Errorf("order state %q, want authorized", s)
	}
}

func TestUnexpectedPurchaseMessagesAreRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	rec := buy(t, c, r.Merchant, tea)
	o := c.MustAgree(r.Merchant, tea)
	for _, tc := range []struct {
		name string
		msg  []byte
		code protocol.Code
	}{
		{"not DER", []byte("PReq"), protocol.CodeMalformed},
		{"a truncated PInitReq", rec.Messages[0][:len(rec.Messages[0])-1], protocol.CodeMalformed},
		{"a PInitRes", rec.Messages[1], protocol.CodeUnexpectedMessage},
		{"a PRes", rec.Messages[3], protocol.CodeUnexpectedMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, r, c.Send(r.Merchant, o.Order, tc.msg), tc.code)
			if s := merchant.OrderState(t, r.Merchant.Merchant, o.Order); s != "agreed" {
				t.Errorf("order state %q, want agreed", s)
			}
		})
	}
}

func TestRequireCertRefusesUnsignedPurchases(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	strict := r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{RequireCert: true})
	signed := r.NewCardholder(agenttest.CardholderOptions{})
	unsigned := r.NewCardholder(agenttest.CardholderOptions{Unsigned: true})
	if cat, err := unsigned.Shopper.Catalogue(t.Context(), strict.URL); err != nil || !cat.RequireCert {
		t.Errorf("catalogue of the strict merchant: %+v, %v; want requireCert", cat, err)
	}
	for _, tc := range []struct {
		name string
		c    *agenttest.Cardholder
		m    *agenttest.Merchant
		want protocol.Code // 0: approved
	}{
		{"unsigned wallet at a merchant requiring certificates", unsigned, strict, protocol.CodeCertRequired},
		{"signed wallet at a merchant requiring certificates", signed, strict, 0},
		{"unsigned wallet at a merchant not requiring them", unsigned, r.Merchant, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auths := len(r.Gateway.Tap.Requests("/auth"))
			rec, err := tc.c.Buy(tc.m, tea)
			if tc.want == 0 {
				if err != nil || rec.Status != protocol.PurchApproved {
					t.Fatalf("purchase: %v, want approved", err)
				}
				return
			}
			wantCode(t, err, tc.want)
			if s := merchant.OrderState(t, tc.m.Merchant, rec.Agreed.Order); s != "refused" {
				t.Errorf("order state %q, want refused", s)
			}
			if n := len(r.Gateway.Tap.Requests("/auth")); n != auths {
				t.Error("the refused purchase reached the gateway")
			}
		})
	}
}

func TestCustomOrdersOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	custom := r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{CustomOrders: true})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	o := merchant.OrderRequest{Description: "  A custom order  ", Amount: 777}
	if _, code, body := c.Agree(r.Merchant, o); code != http.StatusUnprocessableEntity || !strings.Contains(body, "catalogue only") {
		t.Errorf("custom order at a catalogue-only merchant: %d %q, want 422", code, body)
	}
	a, code, body := c.Agree(custom, o)
	if code != http.StatusCreated || a.Description != "A custom order" || a.Amount != 777 {
		t.Errorf("custom order where allowed: %d %q %+v, want 201, the trimmed description", code, body, a)
	}
}

func TestOrderLimits(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{CustomOrders: true})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	for _, tc := range []struct {
		name   string
		o      merchant.OrderRequest
		amount int64 // 0: refused
	}{
		{"one article", merchant.OrderRequest{SKU: "tea", Quantity: 1}, 1250},
		{"quantity 0 is one article", merchant.OrderRequest{SKU: "tea", Quantity: 0}, 1250},
		{"quantity 100", merchant.OrderRequest{SKU: "tea", Quantity: 100}, 125000},
		{"quantity 101", merchant.OrderRequest{SKU: "tea", Quantity: 101}, 0},
		{"negative quantity", merchant.OrderRequest{SKU: "tea", Quantity: -1}, 0},
		{"unknown sku", merchant.OrderRequest{SKU: "caviar"}, 0},
		{"sku and description", merchant.OrderRequest{SKU: "tea", Description: "tea"}, 0},
		{"sku and amount", merchant.OrderRequest{SKU: "tea", Amount: 1}, 0},
		{"no description", merchant.OrderRequest{Amount: 100}, 0},
		{"blank description", merchant.OrderRequest{Description: " \t\n ", Amount: 100}, 0},
		{"description of 500 bytes", merchant.OrderRequest{Description: strings.Repeat("é", 250), Amount: 100}, 100},
		{"description of 501 bytes", merchant.OrderRequest{Description: strings.Repeat("é", 250) + "x", Amount: 100}, 0},
		{"amount 0", merchant.OrderRequest{Description: "x"}, 0},
		{"negative amount", merchant.OrderRequest{Description: "x", Amount: -1}, 0},
		{"largest amount", merchant.OrderRequest{Description: "x", Amount: 1_000_000_00}, 1_000_000_00},
		{"amount over the largest", merchant.OrderRequest{Description: "x", Amount: 1_000_000_01}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, code, body := c.Agree(r.Merchant, tc.o)
			switch {
			case tc.amount == 0 && code != http.StatusUnprocessableEntity:
				t.Errorf("%d %q %+v, want 422", code, body, a)
			case tc.amount != 0 && (code != http.StatusCreated || a.Amount != tc.amount):
				t.Errorf("%d %q %+v, want 201 with amount %d", code, body, a, tc.amount)
			}
		})
	}
	for _, tc := range []struct{ name, body string }{
		{"unknown field", `{"sku":"tea","price":1}`},
		{"not JSON", `sku=tea`},
		{"over 4096 bytes", `{"description":"` + strings.Repeat("x", 5000) + `","amount":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Client.Post(r.Merchant.URL+"/orders", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestDeclinedPurchase(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	if err := r.Bank.PutAccounts(t.Context(), bank.Account{PAN: c.PAN, Expiry: agenttest.Expiry, CreditLimit: 1000}); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Buy(r.Merchant, tea)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != protocol.PurchDeclined || rec.Reason != protocol.DeclineInsufficientFunds || rec.AuthAmt != nil {
		t.Errorf("receipt: status %d, reason %s, amount %v; want declined for insufficient funds", rec.Status, rec.Reason, rec.AuthAmt)
	}
	if !errors.Is(rec.Err(), cardholder.ErrDeclined) {
		t.Errorf("Receipt.Err() = %v, want ErrDeclined", rec.Err())
	}
	if st := status(t, c, r.Merchant, rec.Agreed.Order); st.State != "declined" {
		t.Errorf("status %+v, want declined", st)
	}
	if n := holds(t, r); n != 0 {
		t.Errorf("%d holds, want none", n)
	}
	if res, err := r.Merchant.Capture(t.Context()); err != nil || res != (merchant.CaptureResult{}) {
		t.Errorf("Capture: %+v, %v; want nothing to capture", res, err)
	}
}

func TestGatewayRefusalIsRecorded(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	r.Gateway.Tap.Refuse("/auth", protocol.CodeAmountMismatch, 1)
	rec, err := c.Buy(r.Merchant, tea)
	wantCode(t, err, protocol.CodeAmountMismatch)
	if len(rec.Messages) != 4 {
		t.Fatalf("%d messages, want PInitReq, PInitRes, PReq, Error", len(rec.Messages))
	}
	if s := merchant.OrderState(t, r.Merchant.Merchant, rec.Agreed.Order); s != "refused" {
		t.Errorf("order state %q, want refused", s)
	}
	// The same PReq gets the recorded Error; the gateway is not asked again.
	if out := c.Send(r.Merchant, rec.Agreed.Order, rec.Messages[2]); !bytes.Equal(out, rec.Messages[3]) {
		t.Error("the same PReq got another answer than the recorded Error")
	}
	if n := len(r.Gateway.Tap.Requests("/auth")); n != 1 {
		t.Errorf("%d AuthReqs, want 1", n)
	}
}

func TestAuthorizationRetriedWithTheSameBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		fail      func(*agenttest.Rig)
		authReqs  int // AuthReqs sent, all the same bytes
		preqsSent int // by the cardholder, the same bytes
	}{
		{"gateway down twice: the merchant retries", func(r *agenttest.Rig) { r.Gateway.Tap.Unreachable("/auth", 2) }, 3, 1},
		{"gateway's answers lost twice: the merchant retries", func(r *agenttest.Rig) { r.Gateway.Tap.LoseAnswers("/auth", 2) }, 3, 1},
		{"gateway down for all the merchant's attempts: the cardholder retries", func(r *agenttest.Rig) { r.Gateway.Tap.Unreachable("/auth", 4) }, 5, 2},
		{"bank down for all the merchant's attempts: the cardholder retries", func(r *agenttest.Rig) { r.Link.Unreachable(4) }, 5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, merchant.Config{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			tc.fail(r)
			rec := buy(t, c, r.Merchant, tea)
			auths := r.Gateway.Tap.Requests("/auth")
			if len(auths) != tc.authReqs || !allEqual(auths) {
				t.Errorf("%d AuthReqs (identical: %v), want %d identical", len(auths), allEqual(auths), tc.authReqs)
			}
			var preqs [][]byte
			for i := 2; i < len(rec.Messages); i += 2 {
				preqs = append(preqs, rec.Messages[i])
			}
			if len(preqs) != tc.preqsSent || !allEqual(preqs) {
				t.Errorf("the cardholder sent %d PReqs (identical: %v), want %d identical", len(preqs), allEqual(preqs), tc.preqsSent)
			}
			if n := holds(t, r); n != 1 {
				t.Errorf("%d holds, want 1", n)
			}
		})
	}
}

func TestGatewayCertificateUnavailable(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	r.Gateway.Tap.Unreachable("/certs/pq", 1)
	rec, err := c.Buy(r.Merchant, tea)
	wantCode(t, err, protocol.CodeUnavailable)
	if s := merchant.OrderState(t, r.Merchant.Merchant, rec.Agreed.Order); s != "agreed" {
		t.Errorf("order state %q, want agreed", s)
	}
	buy(t, c, r.Merchant, tea)
}

func TestCapture(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	poor := r.NewCardholder(agenttest.CardholderOptions{})
	if err := r.Bank.PutAccounts(t.Context(), bank.Account{PAN: poor.PAN, Expiry: agenttest.Expiry, CreditLimit: 1}); err != nil {
		t.Fatal(err)
	}
	var orders []string
	for _, o := range []merchant.OrderRequest{tea, {SKU: "mug"}, {SKU: "set-book", Quantity: 3}} {
		orders = append(orders, buy(t, c, r.Merchant, o).Agreed.Order)
	}
	declined, err := poor.Buy(r.Merchant, tea)
	if err != nil || declined.Status != protocol.PurchDeclined {
		t.Fatalf("purchase: %v, want declined", err)
	}

	res, err := r.Merchant.Capture(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (merchant.CaptureResult{Batches: 1, Captured: 3}); res != want {
		t.Errorf("Capture = %+v, want %+v", res, want)
	}
	for _, id := range orders {
		if st := status(t, c, r.Merchant, id); st.State != "captured" || st.Captured != st.Amount {
			t.Errorf("order %s: %+v, want captured in full", id, st)
		}
	}
	if st := status(t, poor, r.Merchant, declined.Agreed.Order); st.State != "declined" {
		t.Errorf("declined order: %+v", st)
	}
	if total, err := r.Bank.CapturedTotal(t.Context(), r.Merchant.ID); err != nil || total != 1250+990+12600 {
		t.Errorf("acquirer captured %d (%v), want 14840", total, err)
	}
	if res, err := r.Merchant.Capture(t.Context()); err != nil || res != (merchant.CaptureResult{}) {
		t.Errorf("second Capture = %+v, %v; want nothing", res, err)
	}
}

func TestCaptureResendsAnUnansweredBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		fail     func(*agenttest.Tap)
		captured int64 // at the acquirer after the failure
	}{
		{"gateway down", func(tap *agenttest.Tap) { tap.Unreachable("/capture", 1) }, 0},
		{"gateway's answer lost", func(tap *agenttest.Tap) { tap.LoseAnswers("/capture", 1) }, 2240},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, merchant.Config{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			first := buy(t, c, r.Merchant, tea).Agreed.Order
			buy(t, c, r.Merchant, merchant.OrderRequest{SKU: "mug"})
			tc.fail(r.Gateway.Tap)
			if _, err := r.Merchant.Capture(t.Context()); err == nil {
				t.Fatal("Capture succeeded without an answer")
			}
			if got := merchant.BatchStates(t, r.Merchant.Merchant); got["sent"] != 1 || len(got) != 1 {
				t.Errorf("batches %v, want one sent", got)
			}
			if s := merchant.OrderState(t, r.Merchant.Merchant, first); s != "capturing" {
				t.Errorf("order state %q, want capturing", s)
			}
			total, _ := r.Bank.CapturedTotal(t.Context(), r.Merchant.ID)
			if total != tc.captured {
				t.Errorf("acquirer captured %d after the failure, want %d", total, tc.captured)
			}

			// A purchase meanwhile goes into a batch of its own, after the
			// unanswered one is sent again.
			buy(t, c, r.Merchant, merchant.OrderRequest{SKU: "set-book"})
			res, err := r.Merchant.Capture(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if want := (merchant.CaptureResult{Batches: 2, Captured: 3}); res != want {
				t.Errorf("Capture = %+v, want %+v", res, want)
			}
			reqs := r.Gateway.Tap.Requests("/capture")
			if len(reqs) != 3 || !bytes.Equal(reqs[0], reqs[1]) || bytes.Equal(reqs[1], reqs[2]) {
				t.Errorf("%d CapReqs, want the first sent twice byte for byte, then another", len(reqs))
			}
			if got := merchant.BatchStates(t, r.Merchant.Merchant); got["done"] != 2 || len(got) != 1 {
				t.Errorf("batches %v, want two done", got)
			}
			caps, err := r.Bank.Captures(t.Context(), r.Merchant.ID)
			if err != nil {
				t.Fatal(err)
			}
			total, _ = r.Bank.CapturedTotal(t.Context(), r.Merchant.ID)
			if len(caps) != 3 || total != 1250+990+4200 {
				t.Errorf("acquirer: %d captures of %d in all, want 3 of 6440", len(caps), total)
			}
			if s := merchant.OrderState(t, r.Merchant.Merchant, first); s != "captured" {
				t.Errorf("order state %q, want captured", s)
			}
		})
	}
}

// The merchant never receives card data: the PI reaches it sealed to the
// gateway. Its store, its log and its record of the wire hold no PAN.
func TestNoCardNumberInTheMerchantsStoreOrLog(t *testing.T) {
	t.Parallel()
	wireDir := t.TempDir()
	wire, err := agent.NewWireLog(wireDir)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, merchant.Config{CustomOrders: true, Wire: wire})
	signed := r.NewCardholder(agenttest.CardholderOptions{})
	unsigned := r.NewCardholder(agenttest.CardholderOptions{Unsigned: true})
	poor := r.NewCardholder(agenttest.CardholderOptions{})
	if err := r.Bank.PutAccounts(t.Context(), bank.Account{PAN: poor.PAN, Expiry: agenttest.Expiry, CreditLimit: 1}); err != nil {
		t.Fatal(err)
	}
	const desc = "Secret gift: a telescope"
	order := buy(t, signed, r.Merchant, merchant.OrderRequest{Description: desc, Amount: 25000}).Agreed.Order
	r.Gateway.Tap.Unreachable("/auth", 1) // a logged retry
	buy(t, unsigned, r.Merchant, tea)
	if rec, err := poor.Buy(r.Merchant, tea); err != nil || rec.Status != protocol.PurchDeclined {
		t.Fatalf("purchase: %v, want declined", err)
	}
	if _, err := r.Merchant.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}

	log := r.Merchant.Log.String()
	if !strings.Contains(log, order) || !strings.Contains(log, "retrying") {
		t.Fatalf("the merchant's log lacks what was done:\n%s", log)
	}
	for _, c := range []*agenttest.Cardholder{signed, unsigned, poor} {
		if strings.Contains(log, c.PAN) {
			t.Errorf("the merchant's log holds card %d's PAN", c.Card)
		}
		for _, dir := range []string{r.Merchant.Dir, wireDir} {
			if files := agenttest.FilesContaining(t, dir, []byte(c.PAN)); len(files) > 0 {
				t.Errorf("files %v hold card %d's PAN", files, c.Card)
			}
		}
	}
	// The scan does read the store: it finds the description there.
	if files := agenttest.FilesContaining(t, r.Merchant.Dir, []byte(desc)); len(files) == 0 {
		t.Error("the description is in no file of the merchant: the scan reads nothing")
	}
}

func TestConcurrentPurchases(t *testing.T) {
	t.Parallel()
	const n = 20
	r := newRig(t, merchant.Config{})
	var cs []*agenttest.Cardholder
	for range 5 {
		cs = append(cs, r.NewCardholder(agenttest.CardholderOptions{}))
	}
	skus := []merchant.OrderRequest{tea, {SKU: "mug"}, {SKU: "set-book"}}
	errs := make([]error, n)
	var wg sync.WaitGroup
	var want int64
	for i := range n {
		c, o := cs[i%len(cs)], skus[i%len(skus)]
		want += []int64{1250, 990, 4200}[i%len(skus)]
		sh := c.NewShopper()
		wg.Go(func() {
			rec, err := sh.Buy(context.Background(), r.Merchant.URL, o)
			if err == nil && rec.Status != protocol.PurchApproved {
				err = fmt.Errorf("status %d", rec.Status)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("purchase %d: %v", i, err)
		}
	}
	if got := holds(t, r); got != n {
		t.Errorf("%d holds, want %d", got, n)
	}
	res, err := r.Merchant.Capture(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Captured != n {
		t.Errorf("captured %d orders, want %d", res.Captured, n)
	}
	if total, _ := r.Bank.CapturedTotal(t.Context(), r.Merchant.ID); total != want {
		t.Errorf("acquirer captured %d, want %d", total, want)
	}
}

// Config.Wire records the merchant's exchanges with the gateway.
func TestWireLogRecordsTheGatewayExchanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wire, err := agent.NewWireLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, merchant.Config{Wire: wire})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	buy(t, c, r.Merchant, tea)
	if _, err := r.Merchant.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-out-certs_pq.bin", "-in-certs_pq.bin", "-out-auth.bin", "-in-auth.bin", "-out-capture.bin", "-in-capture.bin"} {
		if files := wireFiles(t, dir, suffix); len(files) != 1 {
			t.Errorf("%d files *%s, want 1", len(files), suffix)
		}
	}
	if files := wireFiles(t, dir, "-out-auth.bin"); len(files) == 1 && !bytes.Equal(files[0], r.Gateway.Tap.Last(t, "/auth")) {
		t.Error("the recorded AuthReq is not the one the gateway received")
	}
}

func wireFiles(t *testing.T, dir, suffix string) [][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// The merchant checks what its gateway answers: an answer that is not the
// expected message, or does not verify, refuses the purchase (or leaves the
// capture batch to be sent again) and is not taken for an approval.
func TestGatewayAnswersThatDoNotVerify(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	echo := func(body []byte) []byte { return body }
	buy(t, c, r.Merchant, tea)
	earlierAuthRes := r.Gateway.Tap.Responses("/auth")[0]
	if _, err := r.Merchant.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}
	earlierCapRes := r.Gateway.Tap.Responses("/capture")[0]

	for _, tc := range []struct {
		name   string
		answer func([]byte) []byte
		code   protocol.Code
	}{
		{"the AuthReq echoed", echo, protocol.CodeUnexpectedMessage},
		{"another transaction's AuthRes", func([]byte) []byte { return earlierAuthRes }, protocol.CodeRRPIDMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.Gateway.Tap.Answer("/auth", tc.answer, 1)
			before := holds(t, r)
			rec, err := c.Buy(r.Merchant, tea)
			wantCode(t, err, tc.code)
			if s := merchant.OrderState(t, r.Merchant.Merchant, rec.Agreed.Order); s != "refused" {
				t.Errorf("order state %q, want refused", s)
			}
			if out := c.Send(r.Merchant, rec.Agreed.Order, rec.Messages[2]); !bytes.Equal(out, rec.Messages[3]) {
				t.Error("the same PReq got another answer than the recorded refusal")
			}
			if holds(t, r) != before {
				t.Error("a hold was placed")
			}
		})
	}
	for _, tc := range []struct {
		name   string
		answer func([]byte) []byte
	}{
		{"the CapReq echoed", echo},
		{"another batch's CapRes", func([]byte) []byte { return earlierCapRes }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order := buy(t, c, r.Merchant, tea).Agreed.Order
			r.Gateway.Tap.Answer("/capture", tc.answer, 1)
			if _, err := r.Merchant.Capture(t.Context()); err == nil {
				t.Fatal("Capture took the answer")
			}
			if s := merchant.OrderState(t, r.Merchant.Merchant, order); s != "capturing" {
				t.Errorf("order state %q, want capturing", s)
			}
			if res, err := r.Merchant.Capture(t.Context()); err != nil || res.Captured != 1 {
				t.Errorf("Capture again: %+v, %v; want the batch captured", res, err)
			}
		})
	}
	t.Run("a certificate that is not the gateway's", func(t *testing.T) {
		m := r.AddMerchant(agenttest.MerchantIDs[1], merchant.Config{})
		r.Gateway.Tap.Answer("/certs/pq", func([]byte) []byte { return keyfile.EncodeCerts(m.Keys(t).KE.Chain...) }, 1)
		rec, err := c.Buy(m, tea)
		wantCode(t, err, protocol.CodeUnavailable)
		if s := merchant.OrderState(t, m.Merchant, rec.Agreed.Order); s != "agreed" {
			t.Errorf("order state %q, want agreed", s)
		}
		if !strings.Contains(m.Log.String(), "gateway certificate") {
			t.Error("the merchant's log does not say what failed")
		}
	})
}

// TestResumeSettlesAnAuthorizationNoOneRetries: the gateway approves but
// every answer is lost, so the order stays authorizing and the cardholder
// gives up; Resume sends the recorded AuthReq again (the same bytes: one
// hold), records the approval and the PRes, and the order is then
// captured. The cardholder's later retry of the same PReq gets that PRes.
func TestResumeSettlesAnAuthorizationNoOneRetries(t *testing.T) {
	t.Parallel()
	r := newRig(t, merchant.Config{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	r.Gateway.Tap.LoseAnswers("/auth", 4*4) // every attempt of every PReq the cardholder sends
	rec, err := c.Buy(r.Merchant, tea)
	wantCode(t, err, protocol.CodeUnavailable)
	order := rec.Agreed.Order
	if s := merchant.OrderState(t, r.Merchant.Merchant, order); s != "authorizing" {
		t.Fatalf("order state %q, want authorizing", s)
	}
	if n := len(r.Gateway.Tap.Requests("/auth")); n != 16 {
		t.Fatalf("%d AuthReqs sent, want 16 (4 PReqs, 4 attempts each)", n)
	}
	settled, err := r.Merchant.Resume(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if settled != 1 {
		t.Fatalf("Resume settled %d orders, want 1", settled)
	}
	if s := merchant.OrderState(t, r.Merchant.Merchant, order); s != "authorized" {
		t.Fatalf("order state %q after Resume, want authorized", s)
	}
	if auths := r.Gateway.Tap.Requests("/auth"); !allEqual(auths) {
		t.Error("Resume sent another AuthReq than the recorded one")
	}
	if n := holds(t, r); n != 1 {
		t.Errorf("%d holds, want 1", n)
	}
	// The cardholder's retry of its PReq gets the PRes Resume recorded.
	preq := rec.Messages[len(rec.Messages)-2]
	before := len(r.Gateway.Tap.Requests("/auth"))
	w, _, err := agent.PostDER(t.Context(), c.Client, r.Merchant.URL+"/orders/"+order+"/set", preq)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Message.(*protocol.PRes); !ok {
		t.Fatalf("the retried PReq got a %s, want PRes", w.Message.Type())
	}
	if after := len(r.Gateway.Tap.Requests("/auth")); after != before {
		t.Errorf("the retried PReq reached the gateway again (%d AuthReqs, was %d)", after, before)
	}
	if _, err := r.Merchant.Capture(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := merchant.OrderState(t, r.Merchant.Merchant, order); s != "captured" {
		t.Errorf("order state %q after Capture, want captured", s)
	}
}
