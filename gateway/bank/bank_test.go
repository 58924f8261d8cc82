package bank_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/protocol"
)

// t0 is the start of every test's clock; the test cards expire after it.
var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// testPAN returns the i-th test card number: 16 digits, valid Luhn.
func testPAN(i int) string {
	body := fmt.Sprintf("4000%011d", i)
	sum := 0
	for j := range len(body) {
		d := int(body[len(body)-1-j] - '0')
		if j%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + fmt.Sprint((10-sum%10)%10)
}

func mustPAN(t testing.TB, digits string) protocol.PAN {
	t.Helper()
	p, err := protocol.NewPAN(digits)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testBank is a bank on a fixed clock, with its database path.
type testBank struct {
	*bank.Bank
	t    testing.TB
	path string
	now  time.Time
	opts bank.Options
	stan int
}

// newBank opens a bank in a temporary directory with a fixed clock and
// random source, and puts accounts.
func newBank(t testing.TB, opts bank.Options, accounts ...bank.Account) *testBank {
	t.Helper()
	tb := &testBank{t: t, path: filepath.Join(t.TempDir(), "bank.db"), now: t0}
	opts.Now = func() time.Time { return tb.now }
	if opts.Rand == nil {
		opts.Rand = rand.NewChaCha8([32]byte{1})
	}
	tb.opts = opts
	tb.open()
	if err := tb.PutAccounts(context.Background(), accounts...); err != nil {
		t.Fatal(err)
	}
	return tb
}

func (tb *testBank) open() {
	tb.t.Helper()
	b, err := bank.Open(tb.path, tb.opts)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.Bank = b
	tb.t.Cleanup(func() { b.Close() })
}

// reopen closes the bank and opens its database again.
func (tb *testBank) reopen() {
	tb.t.Helper()
	if err := tb.Close(); err != nil {
		tb.t.Fatal(err)
	}
	tb.open()
}

// exchange sends a request and returns the raw response.
func (tb *testBank) exchange(req interface{ Marshal() ([]byte, error) }) []byte {
	tb.t.Helper()
	b, err := req.Marshal()
	if err != nil {
		tb.t.Fatalf("Marshal: %v", err)
	}
	resp, err := tb.Exchange(context.Background(), b)
	if err != nil {
		tb.t.Fatalf("Exchange: %v", err)
	}
	return resp
}

// authReq returns an authorization request of merchant-1, expiry 202712,
// EUR, with a fresh STAN.
func (tb *testBank) authReq(pan string, amount int64, rrn string) *bank.AuthRequest {
	tb.stan++
	return &bank.AuthRequest{
		PAN: mustPAN(tb.t, pan), Expiry: "202712", Amount: amount, Currency: 978,
		MerchantID: "merchant-1", RRN: rrn, STAN: tb.stan, When: tb.now,
	}
}

// authorize sends an authorization request and parses the answer.
func (tb *testBank) authorize(req *bank.AuthRequest) *bank.Response {
	tb.t.Helper()
	r, err := req.ParseResponse(tb.exchange(req))
	if err != nil {
		tb.t.Fatalf("ParseResponse: %v", err)
	}
	return r
}

func (tb *testBank) capture(req *bank.CaptureRequest) *bank.Response {
	tb.t.Helper()
	r, err := req.ParseResponse(tb.exchange(req))
	if err != nil {
		tb.t.Fatalf("ParseResponse: %v", err)
	}
	return r
}

func (tb *testBank) reverse(req *bank.ReversalRequest) *bank.Response {
	tb.t.Helper()
	r, err := req.ParseResponse(tb.exchange(req))
	if err != nil {
		tb.t.Fatalf("ParseResponse: %v", err)
	}
	return r
}

func (tb *testBank) balance(pan string) bank.Balance {
	tb.t.Helper()
	b, err := tb.Account(context.Background(), mustPAN(tb.t, pan))
	if err != nil {
		tb.t.Fatal(err)
	}
	return b
}

func account(i int, limit int64) bank.Account {
	return bank.Account{PAN: testPAN(i), Expiry: "202712", Currency: 978, CreditLimit: limit}
}

func rrn(i int) string { return fmt.Sprintf("RRN%09d", i) }

func wantCode(t *testing.T, r *bank.Response, code string, reason protocol.DeclineReason) {
	t.Helper()
	if r.Code != code || r.Reason != reason || r.Approved != (code == bank.CodeApproved) {
		t.Fatalf("response %+v, want code %s reason %v", r, code, reason)
	}
}

func TestApprovalPlacesHold(t *testing.T) {
	tb := newBank(t, bank.Options{}, account(1, 100_00))
	r := tb.authorize(tb.authReq(testPAN(1), 30_00, rrn(1)))
	wantCode(t, r, bank.CodeApproved, 0)
	if len(r.AuthID) != 6 {
		t.Fatalf("authorization id %q, want 6 characters", r.AuthID)
	}
	bal := tb.balance(testPAN(1))
	if bal.Held != 30_00 || bal.Posted != 0 || bal.Available() != 70_00 {
		t.Fatalf("balance %+v, want 30.00 held and 70.00 available", bal)
	}
	holds, err := tb.Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []bank.Hold{{MerchantID: "merchant-1", RRN: rrn(1), AuthID: r.AuthID, Amount: 30_00, Currency: 978, At: t0}}
	if !reflect.DeepEqual(holds, want) {
		t.Fatalf("holds %+v, want %+v", holds, want)
	}
}

func TestDeclines(t *testing.T) {
	ctx := context.Background()
	t.Run("insufficient funds once holds use the credit", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 60_00, rrn(1))), bank.CodeApproved, 0)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 40_01, rrn(2))), bank.CodeInsufficientFunds, protocol.DeclineInsufficientFunds)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 40_00, rrn(3))), bank.CodeApproved, 0)
		if bal := tb.balance(testPAN(1)); bal.Held != 100_00 || bal.Available() != 0 {
			t.Fatalf("balance %+v, want all held", bal)
		}
	})
	t.Run("expired card after the end of its expiry month", func(t *testing.T) {
		a := account(1, 100_00)
		a.Expiry = "202603"
		tb := newBank(t, bank.Options{}, a)
		tb.now = time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
		req := tb.authReq(testPAN(1), 1_00, rrn(1))
		req.Expiry = "202603"
		wantCode(t, tb.authorize(req), bank.CodeApproved, 0)
		tb.now = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		req = tb.authReq(testPAN(1), 1_00, rrn(2))
		req.Expiry = "202603"
		wantCode(t, tb.authorize(req), bank.CodeExpiredCard, protocol.DeclineExpiredCard)
	})
	t.Run("expired card when the expiry sent is not the account's", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := tb.authReq(testPAN(1), 1_00, rrn(1))
		req.Expiry = "202811"
		wantCode(t, tb.authorize(req), bank.CodeExpiredCard, protocol.DeclineExpiredCard)
	})
	t.Run("blocked card", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		if err := tb.SetStatus(ctx, mustPAN(t, testPAN(1)), bank.StatusBlocked); err != nil {
			t.Fatal(err)
		}
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(1))), bank.CodeRestrictedCard, protocol.DeclineBlockedCard)
		if err := tb.SetStatus(ctx, mustPAN(t, testPAN(1)), bank.StatusActive); err != nil {
			t.Fatal(err)
		}
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(2))), bank.CodeApproved, 0)
	})
	t.Run("suspected fraud", func(t *testing.T) {
		a := account(1, 100_00)
		a.Status = bank.StatusFraud
		tb := newBank(t, bank.Options{}, a)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(1))), bank.CodeSuspectedFraud, protocol.DeclineSuspectedFraud)
	})
	t.Run("over the per-transaction limit", func(t *testing.T) {
		a := account(1, 100_00)
		a.PerTransactionLimit = 20_00
		tb := newBank(t, bank.Options{}, a)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 20_01, rrn(1))), bank.CodeExceedsAmountLimit, protocol.DeclineOverLimit)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 20_00, rrn(2))), bank.CodeApproved, 0)
	})
	t.Run("velocity limit within the window, and not after it", func(t *testing.T) {
		tb := newBank(t, bank.Options{VelocityLimit: 3, VelocityWindow: time.Hour}, account(1, 100_00))
		for i := range 3 {
			wantCode(t, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(i))), bank.CodeApproved, 0)
		}
		tb.now = t0.Add(time.Hour - time.Second)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(10))), bank.CodeExceedsFrequencyLimit, protocol.DeclineVelocityLimit)
		tb.now = t0.Add(time.Hour)
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(11))), bank.CodeApproved, 0)
	})
	t.Run("unknown card", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.authorize(tb.authReq(testPAN(2), 1_00, rrn(1))), bank.CodeInvalidCardNumber, protocol.DeclineUnknownAccount)
	})
	t.Run("another currency than the account's", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := tb.authReq(testPAN(1), 1_00, rrn(1))
		req.Currency = 840
		wantCode(t, tb.authorize(req), bank.CodeInvalidTransaction, protocol.DeclineOther)
	})
	t.Run("a zero amount", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 0, rrn(1))), bank.CodeInvalidAmount, protocol.DeclineOther)
	})
	t.Run("no decline leaves a hold", func(t *testing.T) {
		a := account(1, 100_00)
		a.Status = bank.StatusBlocked
		tb := newBank(t, bank.Options{}, a)
		tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(1)))
		if holds, err := tb.Holds(ctx); err != nil || len(holds) != 0 {
			t.Fatalf("holds %+v, %v; want none", holds, err)
		}
	})
}

func TestDuplicateAuthorization(t *testing.T) {
	t.Run("a retry gets the same bytes and places one hold", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := tb.authReq(testPAN(1), 30_00, rrn(1))
		first := tb.exchange(req)
		retry := *req
		retry.STAN++
		retry.When = t0.Add(time.Minute)
		tb.now = t0.Add(time.Minute)
		if again := tb.exchange(&retry); !bytes.Equal(again, first) {
			t.Fatalf("retry answered %q, first answer %q", again, first)
		}
		if bal := tb.balance(testPAN(1)); bal.Held != 30_00 {
			t.Fatalf("held %d, want one hold of 30.00", bal.Held)
		}
		r, err := retry.ParseResponse(first)
		if err != nil || r.STAN != req.STAN {
			t.Fatalf("retry.ParseResponse = %+v, %v; want the first STAN %d", r, err, req.STAN)
		}
	})
	t.Run("a retry of a decline is declined the same even after the account changed", func(t *testing.T) {
		a := account(1, 100_00)
		a.Status = bank.StatusBlocked
		tb := newBank(t, bank.Options{}, a)
		req := tb.authReq(testPAN(1), 1_00, rrn(1))
		first := tb.exchange(req)
		if err := tb.SetStatus(context.Background(), mustPAN(t, testPAN(1)), bank.StatusActive); err != nil {
			t.Fatal(err)
		}
		if again := tb.exchange(req); !bytes.Equal(again, first) {
			t.Fatalf("retry answered %q, first answer %q", again, first)
		}
		wantCode(t, tb.authorize(req), bank.CodeRestrictedCard, protocol.DeclineBlockedCard)
	})
	t.Run("a request reusing an answered RRN for another amount is refused", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		tb.authorize(tb.authReq(testPAN(1), 30_00, rrn(1)))
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 40_00, rrn(1))), bank.CodeInvalidTransaction, protocol.DeclineOther)
		if bal := tb.balance(testPAN(1)); bal.Held != 30_00 {
			t.Fatalf("held %d, want the first hold only", bal.Held)
		}
	})
	t.Run("the same RRN from another merchant is another authorization", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		tb.authorize(tb.authReq(testPAN(1), 30_00, rrn(1)))
		other := tb.authReq(testPAN(1), 30_00, rrn(1))
		other.MerchantID = "merchant-2"
		wantCode(t, tb.authorize(other), bank.CodeApproved, 0)
		if bal := tb.balance(testPAN(1)); bal.Held != 60_00 {
			t.Fatalf("held %d, want two holds", bal.Held)
		}
	})
}

// approve authorizes amount on card 1 under rrn(i) and returns the
// capture request for it.
func approve(t *testing.T, tb *testBank, i int, amount int64) *bank.CaptureRequest {
	t.Helper()
	r := tb.authorize(tb.authReq(testPAN(1), amount, rrn(i)))
	wantCode(t, r, bank.CodeApproved, 0)
	return &bank.CaptureRequest{MerchantID: "merchant-1", RRN: rrn(i), AuthID: r.AuthID, Amount: amount, Currency: 978, STAN: 900 + i, When: tb.now}
}

func TestCapture(t *testing.T) {
	ctx := context.Background()
	t.Run("converts the hold into a posting, once", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := approve(t, tb, 1, 50_00)
		req.Amount = 30_00
		tb.now = t0.Add(24 * time.Hour)
		first := tb.exchange(req)
		r, err := req.ParseResponse(first)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, r, bank.CodeApproved, 0)
		if r.AuthID != req.AuthID {
			t.Fatalf("capture response auth id %q, want %q", r.AuthID, req.AuthID)
		}
		if again := tb.exchange(req); !bytes.Equal(again, first) {
			t.Fatalf("second capture answered %q, first %q", again, first)
		}
		if bal := tb.balance(testPAN(1)); bal.Held != 0 || bal.Posted != 30_00 || bal.Available() != 70_00 {
			t.Fatalf("balance %+v, want 30.00 posted and the rest of the hold released", bal)
		}
		caps, err := tb.Captures(ctx, "merchant-1")
		if err != nil {
			t.Fatal(err)
		}
		want := []bank.Capture{{MerchantID: "merchant-1", RRN: rrn(1), AuthID: req.AuthID, Amount: 30_00, Currency: 978, At: t0.Add(24 * time.Hour)}}
		if !reflect.DeepEqual(caps, want) {
			t.Fatalf("captures %+v, want %+v", caps, want)
		}
		if total, err := tb.CapturedTotal(ctx, "merchant-1"); err != nil || total != 30_00 {
			t.Fatalf("captured total %d, %v; want 30.00", total, err)
		}
		if total, err := tb.CapturedTotal(ctx, "merchant-2"); err != nil || total != 0 {
			t.Fatalf("captured total of another merchant %d, %v; want 0", total, err)
		}
	})
	t.Run("of an unknown authorization is refused with 25", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := approve(t, tb, 1, 50_00)
		req.RRN = rrn(2)
		wantCode(t, tb.capture(req), bank.CodeUnableToLocateOriginal, protocol.DeclineOther)
	})
	t.Run("with another authorization id is refused with 25", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := approve(t, tb, 1, 50_00)
		req.AuthID = "ZZZZZZ"
		wantCode(t, tb.capture(req), bank.CodeUnableToLocateOriginal, protocol.DeclineOther)
	})
	t.Run("by another merchant is refused with 25", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := approve(t, tb, 1, 50_00)
		req.MerchantID = "merchant-2"
		wantCode(t, tb.capture(req), bank.CodeUnableToLocateOriginal, protocol.DeclineOther)
	})
	t.Run("of a declined authorization is refused with 25", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 200_00, rrn(1))), bank.CodeInsufficientFunds, protocol.DeclineInsufficientFunds)
		req := &bank.CaptureRequest{MerchantID: "merchant-1", RRN: rrn(1), AuthID: "AAAAAA", Amount: 1_00, Currency: 978, When: t0}
		wantCode(t, tb.capture(req), bank.CodeUnableToLocateOriginal, protocol.DeclineOther)
	})
	t.Run("above the hold is refused with 13 and changes nothing", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := approve(t, tb, 1, 50_00)
		req.Amount = 50_01
		wantCode(t, tb.capture(req), bank.CodeInvalidAmount, protocol.DeclineOther)
		if bal := tb.balance(testPAN(1)); bal.Held != 50_00 || bal.Posted != 0 {
			t.Fatalf("balance %+v, want the hold untouched", bal)
		}
		req.Amount = 50_00
		wantCode(t, tb.capture(req), bank.CodeApproved, 0)
	})
	t.Run("after a reversal is refused with 12", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		req := approve(t, tb, 1, 50_00)
		wantCode(t, tb.reverse(&bank.ReversalRequest{MerchantID: "merchant-1", RRN: rrn(1), Amount: 50_00, Currency: 978, When: t0}), bank.CodeApproved, 0)
		wantCode(t, tb.capture(req), bank.CodeInvalidTransaction, protocol.DeclineOther)
		if total, _ := tb.CapturedTotal(ctx, "merchant-1"); total != 0 {
			t.Fatalf("captured total %d, want 0", total)
		}
	})
}

func TestReversal(t *testing.T) {
	rev := func(i int, amount int64) *bank.ReversalRequest {
		return &bank.ReversalRequest{MerchantID: "merchant-1", RRN: rrn(i), Amount: amount, Currency: 978, STAN: 500 + i, When: t0}
	}
	t.Run("releases the hold, once", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		capReq := approve(t, tb, 1, 50_00)
		req := rev(1, 50_00)
		req.AuthID = capReq.AuthID
		first := tb.exchange(req)
		r, err := req.ParseResponse(first)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, r, bank.CodeApproved, 0)
		if bal := tb.balance(testPAN(1)); bal.Held != 0 || bal.Available() != 100_00 {
			t.Fatalf("balance %+v, want the hold released", bal)
		}
		if again := tb.exchange(req); !bytes.Equal(again, first) {
			t.Fatalf("second reversal answered %q, first %q", again, first)
		}
	})
	t.Run("of an unknown authorization is refused with 25", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.reverse(rev(1, 50_00)), bank.CodeUnableToLocateOriginal, protocol.DeclineOther)
	})
	t.Run("of a declined authorization is refused with 25", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.authorize(tb.authReq(testPAN(1), 200_00, rrn(1))), bank.CodeInsufficientFunds, protocol.DeclineInsufficientFunds)
		wantCode(t, tb.reverse(rev(1, 200_00)), bank.CodeUnableToLocateOriginal, protocol.DeclineOther)
	})
	t.Run("of another amount is refused with 13", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		approve(t, tb, 1, 50_00)
		wantCode(t, tb.reverse(rev(1, 40_00)), bank.CodeInvalidAmount, protocol.DeclineOther)
		if bal := tb.balance(testPAN(1)); bal.Held != 50_00 {
			t.Fatalf("held %d, want the hold untouched", bal.Held)
		}
	})
	t.Run("of a captured authorization is refused with 12", func(t *testing.T) {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		wantCode(t, tb.capture(approve(t, tb, 1, 50_00)), bank.CodeApproved, 0)
		wantCode(t, tb.reverse(rev(1, 50_00)), bank.CodeInvalidTransaction, protocol.DeclineOther)
		if bal := tb.balance(testPAN(1)); bal.Posted != 50_00 {
			t.Fatalf("posted %d, want the capture kept", bal.Posted)
		}
	})
}

func TestStateSurvivesReopen(t *testing.T) {
	tb := newBank(t, bank.Options{}, account(1, 100_00))
	auth := tb.authReq(testPAN(1), 10_00, rrn(1))
	first := tb.exchange(auth)
	wantCode(t, tb.capture(approve(t, tb, 2, 20_00)), bank.CodeApproved, 0)
	before := tb.balance(testPAN(1))
	tb.reopen()
	if after := tb.balance(testPAN(1)); after != before {
		t.Fatalf("balance after reopening %+v, before %+v", after, before)
	}
	if before.Held != 10_00 || before.Posted != 20_00 {
		t.Fatalf("balance %+v, want 10.00 held and 20.00 posted", before)
	}
	if again := tb.exchange(auth); !bytes.Equal(again, first) {
		t.Fatalf("retry after reopening answered %q, first %q", again, first)
	}
	if total, err := tb.CapturedTotal(context.Background(), "merchant-1"); err != nil || total != 20_00 {
		t.Fatalf("captured total %d, %v; want 20.00", total, err)
	}
}

// snapshot is everything the reports show.
type snapshot struct {
	balance  bank.Balance
	holds    []bank.Hold
	captures []bank.Capture
}

func (tb *testBank) snapshot() snapshot {
	tb.t.Helper()
	ctx := context.Background()
	holds, err := tb.Holds(ctx)
	if err != nil {
		tb.t.Fatal(err)
	}
	caps, err := tb.Captures(ctx, "merchant-1")
	if err != nil {
		tb.t.Fatal(err)
	}
	return snapshot{tb.balance(testPAN(1)), holds, caps}
}

func TestMalformedRequestChangesNothing(t *testing.T) {
	tb := newBank(t, bank.Options{}, account(1, 100_00))
	capReq := approve(t, tb, 1, 50_00)
	response := tb.exchange(tb.authReq(testPAN(1), 1_00, rrn(1))) // a retry: a valid 0110
	before := tb.snapshot()

	auth := tb.authReq(testPAN(1), 10_00, rrn(2))
	good, err := auth.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	capBytes, err := capReq.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"nothing":                               nil,
		"garbage":                               []byte("hello, bank"),
		"a truncated authorization":             good[:len(good)-1],
		"an authorization with a trailing byte": append(bytes.Clone(good), '9'),
		"a truncated capture":                   capBytes[:len(capBytes)-3],
		"a response":                            response,
	}
	for name, req := range bad {
		if resp, err := tb.Exchange(context.Background(), req); err == nil {
			t.Errorf("%s: answered %q, want an error", name, resp)
		}
	}
	if after := tb.snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatalf("state after malformed requests %+v, before %+v", after, before)
	}
	// The truncated authorization was not recorded: the real one is new.
	wantCode(t, tb.authorize(auth), bank.CodeApproved, 0)
	if bal := tb.balance(testPAN(1)); bal.Held != 60_00 {
		t.Fatalf("held %d, want 60.00", bal.Held)
	}
}

// failingReader fails while fail is set.
type failingReader struct {
	fail bool
	r    io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.fail {
		return 0, errors.New("entropy source failed")
	}
	return f.r.Read(p)
}

func TestFailedRequestChangesNothing(t *testing.T) {
	src := &failingReader{fail: true, r: rand.NewChaCha8([32]byte{})}
	tb := newBank(t, bank.Options{Rand: src}, account(1, 100_00))
	req := tb.authReq(testPAN(1), 10_00, rrn(1))
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := tb.Exchange(context.Background(), raw); err == nil {
		t.Fatalf("answered %q without an authorization id", resp)
	}
	if bal := tb.balance(testPAN(1)); bal.Held != 0 {
		t.Fatalf("held %d after a failed request, want 0", bal.Held)
	}
	src.fail = false
	wantCode(t, tb.authorize(req), bank.CodeApproved, 0)
	if bal := tb.balance(testPAN(1)); bal.Held != 10_00 {
		t.Fatalf("held %d after the retry, want 10.00", bal.Held)
	}
}

func TestNoPANInErrorsOrResponses(t *testing.T) {
	ctx := context.Background()
	pan := testPAN(1)
	tb := newBank(t, bank.Options{}, account(1, 100_00))
	check := func(what string, s string) {
		t.Helper()
		if strings.Contains(s, pan) || strings.Contains(s, pan[:12]) {
			t.Errorf("%s shows the PAN: %q", what, s)
		}
	}
	for i, amount := range []int64{0, 1_00} { // declined and approved
		check("a response", string(tb.exchange(tb.authReq(pan, amount, rrn(i)))))
	}
	good, err := tb.authReq(pan, 1_00, rrn(9)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range [][]byte{
		bytes.Replace(good, []byte("16"+pan), []byte("17"+pan+"X"), 1),
		bytes.Replace(good, []byte("16"+pan), []byte("20"+pan+"1111"), 1),
		bytes.Replace(good, []byte("16"+pan), []byte("16"+pan[:15]+"Z"), 1),
		good[:30],
	} {
		if _, err := tb.Exchange(ctx, req); err == nil {
			t.Errorf("malformed request %d accepted", len(req))
		} else {
			check("an Exchange error", err.Error())
		}
	}
	badLuhn := pan[:15] + fmt.Sprint((pan[15]-'0'+1)%10)
	err = tb.PutAccounts(ctx, bank.Account{PAN: badLuhn, Expiry: "202712", CreditLimit: 1})
	if err == nil {
		t.Fatal("PutAccounts accepted a PAN failing the Luhn check")
	}
	check("a PutAccounts error", err.Error())
	err = tb.PutAccounts(ctx, bank.Account{PAN: pan, Expiry: "2027-12", CreditLimit: 1})
	if err == nil {
		t.Fatal("PutAccounts accepted a bad expiry")
	}
	check("a PutAccounts error", err.Error())
	unknown := testPAN(2)
	if _, err := tb.Account(ctx, mustPAN(t, unknown)); !errors.Is(err, bank.ErrUnknownAccount) {
		t.Errorf("Account of an unknown card: %v, want ErrUnknownAccount", err)
	}
	if err := tb.SetStatus(ctx, mustPAN(t, unknown), bank.StatusBlocked); !errors.Is(err, bank.ErrUnknownAccount) {
		t.Errorf("SetStatus of an unknown card: %v, want ErrUnknownAccount", err)
	}
	req := tb.authReq(pan, 1_00, rrn(8))
	req.Expiry = "2712"
	if _, err := req.Marshal(); err == nil {
		t.Error("AuthRequest.Marshal accepted a YYMM expiry")
	} else {
		check("a Marshal error", err.Error())
	}
	if s := fmt.Sprintf("%v %+v", req, *req); strings.Contains(s, pan) {
		t.Errorf("a printed request shows the PAN: %s", s)
	}
}

func TestLoadAccounts(t *testing.T) {
	ctx := context.Background()
	tb := newBank(t, bank.Options{})
	file := filepath.Join(t.TempDir(), "accounts.json")
	write := func(limit int) {
		t.Helper()
		// The CA's registration file, with the bank's fields added.
		js := fmt.Sprintf(`[
			{"pan": %q, "expiry": "202712", "activationCode": "s3cret", "status": "review", "creditLimit": %d},
			{"pan": %q, "expiry": "202712", "activationCode": "other", "creditLimit": 500, "currency": 840, "perTransactionLimit": 100}
		]`, testPAN(1), limit, testPAN(2))
		if err := os.WriteFile(file, []byte(js), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := tb.LoadAccounts(ctx, file); err != nil {
			t.Fatal(err)
		}
	}
	write(100_00)
	wantCode(t, tb.authorize(tb.authReq(testPAN(1), 30_00, rrn(1))), bank.CodeApproved, 0)
	write(200_00)
	bal := tb.balance(testPAN(1))
	if bal.CreditLimit != 200_00 || bal.Held != 30_00 || bal.Status != bank.StatusReview || bal.Currency != 978 {
		t.Fatalf("balance after reloading %+v, want the new limit and the hold kept", bal)
	}
	if bal := tb.balance(testPAN(2)); bal.Currency != 840 || bal.PerTransactionLimit != 100 || bal.Status != bank.StatusActive {
		t.Fatalf("second account %+v", bal)
	}
}

func TestAuthorizationIDsReproduce(t *testing.T) {
	ids := func() []string {
		tb := newBank(t, bank.Options{}, account(1, 100_00))
		var ids []string
		for i := range 3 {
			ids = append(ids, tb.authorize(tb.authReq(testPAN(1), 1_00, rrn(i))).AuthID)
		}
		return ids
	}
	a, b := ids(), ids()
	if !reflect.DeepEqual(a, b) || a[0] == a[1] {
		t.Fatalf("authorization ids %v then %v, want the same distinct ids", a, b)
	}
}

func TestResponseMustAnswerTheRequest(t *testing.T) {
	tb := newBank(t, bank.Options{}, account(1, 100_00))
	req := tb.authReq(testPAN(1), 1_00, rrn(1))
	resp := tb.exchange(req)
	other := *req
	other.RRN = rrn(2)
	if _, err := other.ParseResponse(resp); err == nil {
		t.Error("a response to another RRN parsed")
	}
	capReq := &bank.CaptureRequest{MerchantID: "merchant-1", RRN: rrn(1), AuthID: "AAAAAA", Amount: 1_00, Currency: 978}
	if _, err := capReq.ParseResponse(resp); err == nil {
		t.Error("an authorization response parsed as a capture response")
	}
}

func BenchmarkAuthorization(b *testing.B) {
	tb := newBank(b, bank.Options{VelocityLimit: 1 << 30}, account(1, 1<<50))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		req := tb.authReq(testPAN(1), 1, rrn(i))
		raw, err := req.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tb.Exchange(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func Example() {
	dir, err := os.MkdirTemp("", "bank")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	b, err := bank.Open(filepath.Join(dir, "bank.db"), bank.Options{
		Now:  func() time.Time { return now },
		Rand: rand.NewChaCha8([32]byte{}),
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if err := b.PutAccounts(ctx, bank.Account{PAN: "4111111111111111", Expiry: "202712", CreditLimit: 100_00}); err != nil {
		panic(err)
	}
	pan, _ := protocol.NewPAN("4111111111111111")

	auth := &bank.AuthRequest{PAN: pan, Expiry: "202712", Amount: 25_00, Currency: 978,
		MerchantID: "shop-42", RRN: "000000000001", STAN: 1, When: now}
	req, _ := auth.Marshal()
	resp, err := b.Exchange(ctx, req)
	if err != nil {
		panic(err)
	}
	r, err := auth.ParseResponse(resp)
	if err != nil {
		panic(err)
	}
	fmt.Println("authorization:", r.Code, r.Approved)

	capture := &bank.CaptureRequest{MerchantID: "shop-42", RRN: "000000000001", AuthID: r.AuthID,
		Amount: 20_00, Currency: 978, STAN: 2, When: now}
	req, _ = capture.Marshal()
	resp, _ = b.Exchange(ctx, req)
	c, _ := capture.ParseResponse(resp)
	fmt.Println("capture:", c.Code)

	bal, _ := b.Account(ctx, pan)
	total, _ := b.CapturedTotal(ctx, "shop-42")
	fmt.Println("held:", bal.Held, "posted:", bal.Posted, "available:", bal.Available(), "merchant paid:", total)
	// Output:
	// authorization: 00 true
	// capture: 00
	// held: 0 posted: 2000 available: 8000 merchant paid: 2000
}
