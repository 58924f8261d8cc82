package cardholder_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/setpay/setpay/cardholder"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// The cardholder's own checks (the protocol's are protocol.VerifyPInitRes
// and protocol.VerifyPRes, tested in package protocol), against the real
// merchant of an agenttest rig, or a front of it that changes its answers.

var tea = merchant.OrderRequest{SKU: "tea"}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	if got := agent.Code(err); got != code {
		t.Fatalf("got %v (code %d), want code %d (%s)", err, got, code, code)
	}
}

// types returns the message types of a receipt's messages.
func types(t *testing.T, msgs [][]byte) []protocol.MessageType {
	t.Helper()
	var out []protocol.MessageType
	for _, m := range msgs {
		out = append(out, agenttest.Parse(t, m).Message.Type())
	}
	return out
}

func TestRegisterSavesTheWallet(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	w := c.Wallet
	if w.Card.PAN != c.PAN || w.Card.Expiry != agenttest.Expiry || len(w.Suites()) != 1 || w.Suites()[0] != agenttest.Suite {
		t.Errorf("wallet card %q %q, suites %v", w.Card.PAN, w.Card.Expiry, w.Suites())
	}
	if w.Creds[agenttest.Suite].Sig == nil {
		t.Error("no signature certificate")
	}
	for _, f := range []string{"card.json", "pq/sig.key", "pq/tls.key"} {
		fi, err := os.Stat(filepath.Join(w.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	again, err := cardholder.Open(w.Dir, keyfile.Store{}, func() time.Time { return agenttest.Now })
	if err != nil {
		t.Fatal(err)
	}
	if again.Card.PAN != w.Card.PAN || again.Card.Secrets[agenttest.Suite.String()] != w.Card.Secrets[agenttest.Suite.String()] {
		t.Error("the wallet opened again differs")
	}
	if _, err := cardholder.Open(t.TempDir(), keyfile.Store{}, nil); err == nil || !strings.Contains(err.Error(), "register first") {
		t.Errorf("Open of an empty directory: %v, want a hint to register", err)
	}
}

func TestBuyApproved(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	for _, unsigned := range []bool{false, true} {
		c := r.NewCardholder(agenttest.CardholderOptions{Unsigned: unsigned})
		rec, err := c.Buy(r.Merchant, tea)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Err() != nil || rec.Suite != agenttest.Suite || rec.AuthAmt == nil || rec.AuthAmt.Value != 1250 {
			t.Errorf("unsigned %v: receipt %+v, err %v", unsigned, rec, rec.Err())
		}
		want := []protocol.MessageType{protocol.TypePInitReq, protocol.TypePInitRes, protocol.TypePReq, protocol.TypePRes}
		if got := types(t, rec.Messages); !slicesEqual(got, want) {
			t.Errorf("unsigned %v: messages %v, want %v", unsigned, got, want)
		}
		if preq := agenttest.Expect[*protocol.PReq](t, rec.Messages[2]); preq.PI.DualSigned() == unsigned {
			t.Errorf("unsigned %v: the PI is dual-signed: %v", unsigned, preq.PI.DualSigned())
		}
		if st, err := c.Shopper.Status(t.Context(), r.Merchant.URL, rec.Agreed.Order); err != nil || st.State != "authorized" {
			t.Errorf("unsigned %v: status %+v, %v", unsigned, st, err)
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReceiptErr(t *testing.T) {
	t.Parallel()
	if err := (&cardholder.Receipt{Status: protocol.PurchApproved}).Err(); err != nil {
		t.Errorf("approved: %v", err)
	}
	err := (&cardholder.Receipt{Status: protocol.PurchDeclined, Reason: protocol.DeclineExpiredCard}).Err()
	if !errors.Is(err, cardholder.ErrDeclined) || !strings.Contains(err.Error(), protocol.DeclineExpiredCard.String()) {
		t.Errorf("declined: %v, want ErrDeclined naming the reason", err)
	}
	if err := (&cardholder.Receipt{Status: 9}).Err(); err == nil || errors.Is(err, cardholder.ErrDeclined) {
		t.Errorf("unknown status: %v", err)
	}
}

// front serves r.Merchant on another port, passing the merchant's answer
// to each purchase message through tamper.
func front(t *testing.T, r *agenttest.Rig, tamper func(in *protocol.Wrapper, out []byte) []byte) *agenttest.Merchant {
	t.Helper()
	h := r.Merchant.Handler()
	var mu sync.Mutex
	url := agenttest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasSuffix(req.URL.Path, "/set") {
			h.ServeHTTP(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out := rec.Body.Bytes()
		if in, err := protocol.Parse(body); err == nil && rec.Code == http.StatusOK {
			mu.Lock()
			out = tamper(in, out)
			mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(out)
	}), r.Merchant.TLSConfig(nil), slog.New(slog.DiscardHandler))
	return &agenttest.Merchant{Merchant: r.Merchant.Merchant, ID: r.Merchant.ID, Dir: r.Merchant.Dir, URL: url, Log: r.Merchant.Log}
}

// change re-encodes a wrapper after f changed its message (if it is a T).
func change[T protocol.Message](t *testing.T, der []byte, f func(T)) []byte {
	t.Helper()
	w := agenttest.Parse(t, der)
	m, ok := w.Message.(T)
	if !ok {
		return der
	}
	f(m)
	return w.Marshal()
}

func unavailable(in []byte) []byte {
	return agent.ErrorReply(&protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "front"}, in, agenttest.Suite, nil, protocol.Challenge{}, agenttest.Now)
}

func TestBuyChecksTheMerchantsAnswers(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, in *protocol.Wrapper, out []byte) []byte
		code   protocol.Code
		sent   int // messages sent and received before the refusal
	}{
		{"PInitRes choosing a suite the cardholder did not offer", func(t *testing.T, in *protocol.Wrapper, out []byte) []byte {
			return change(t, out, func(m *protocol.PInitRes) { m.Data.Suite = protocol.SuiteNIST })
		}, protocol.CodeDowngrade, 2},
		{"PInitRes altered after the merchant signed it", func(t *testing.T, in *protocol.Wrapper, out []byte) []byte {
			return change(t, out, func(m *protocol.PInitRes) { m.Data.ChallM[0] ^= 1 })
		}, protocol.CodeSignature, 2},
		{"the PInitReq echoed where the PInitRes goes", func(t *testing.T, in *protocol.Wrapper, out []byte) []byte {
			if _, ok := in.Message.(*protocol.PInitReq); ok {
				return in.Marshal()
			}
			return out
		}, protocol.CodeUnexpectedMessage, 2},
		{"the PReq echoed where the PRes goes", func(t *testing.T, in *protocol.Wrapper, out []byte) []byte {
			if _, ok := in.Message.(*protocol.PReq); ok {
				return in.Marshal()
			}
			return out
		}, protocol.CodeUnexpectedMessage, 4},
		{"PRes altered after the merchant signed it", func(t *testing.T, in *protocol.Wrapper, out []byte) []byte {
			return change(t, out, func(m *protocol.PRes) { m.Data.ChallC[0] ^= 1 })
		}, protocol.CodeSignature, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := front(t, r, func(in *protocol.Wrapper, out []byte) []byte { return tc.tamper(t, in, out) })
			t.Cleanup(c.Shopper.Close) // before the front stops: its shutdown then need not wait
			rec, err := c.Buy(m, tea)
			wantCode(t, err, tc.code)
			if len(rec.Messages) != tc.sent {
				t.Errorf("%d messages exchanged, want %d", len(rec.Messages), tc.sent)
			}
		})
	}
}

func TestBuySendsTheSamePReqWhileTheMerchantIsUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		times int           // the merchant answers CodeUnavailable this many times
		code  protocol.Code // 0: approved in the end
		preqs int
	}{
		{"unavailable twice", 2, 0, 3},
		{"unavailable throughout", 100, protocol.CodeUnavailable, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := agenttest.New(t, agenttest.Options{})
			c := r.NewCardholder(agenttest.CardholderOptions{})
			n := 0
			m := front(t, r, func(in *protocol.Wrapper, out []byte) []byte {
				if _, ok := in.Message.(*protocol.PReq); ok && n < tc.times {
					n++
					return unavailable(in.Marshal())
				}
				return out
			})
			t.Cleanup(c.Shopper.Close)
			rec, err := c.Buy(m, tea)
			if tc.code != 0 {
				wantCode(t, err, tc.code)
			} else if err != nil || rec.Status != protocol.PurchApproved {
				t.Fatalf("purchase: %v, want approved", err)
			}
			var preqs [][]byte
			for _, msg := range rec.Messages {
				if _, ok := agenttest.Parse(t, msg).Message.(*protocol.PReq); ok {
					preqs = append(preqs, msg)
				}
			}
			if len(preqs) != tc.preqs {
				t.Errorf("%d PReqs sent, want %d", len(preqs), tc.preqs)
			}
			for i, p := range preqs {
				if !bytes.Equal(p, preqs[0]) {
					t.Errorf("PReq %d differs from the first", i+1)
				}
			}
		})
	}
}

func TestBuyReportsARefusedOrder(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	rec, err := c.Buy(r.Merchant, merchant.OrderRequest{SKU: "caviar"})
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "caviar") {
		t.Errorf("Buy: %v, want the merchant's 422 and its reason", err)
	}
	if rec != nil {
		t.Errorf("a receipt for an order not agreed: %+v", rec)
	}
}

func TestBuyWithAWalletLackingWhatItNeeds(t *testing.T) {
	t.Parallel()
	r := agenttest.New(t, agenttest.Options{})

	t.Run("a suite the wallet has no credentials of", func(t *testing.T) {
		c := r.NewCardholder(agenttest.CardholderOptions{})
		sh := &cardholder.Shopper{Wallet: c.Wallet, Suite: protocol.SuiteNIST}
		if _, err := sh.Buy(t.Context(), r.Merchant.URL, tea); err == nil || !strings.Contains(err.Error(), "no nist credentials") {
			t.Errorf("Buy: %v, want no nist credentials", err)
		}
	})
	t.Run("corrupt card secrets", func(t *testing.T) {
		c := r.NewCardholder(agenttest.CardholderOptions{})
		c.Wallet.Card.Secrets[agenttest.Suite.String()] = cardholder.SuiteSecrets{CardSecret: "00", PANSecret: "zz"}
		rec, err := c.Buy(r.Merchant, tea)
		if err == nil || !strings.Contains(err.Error(), "card.json") {
			t.Fatalf("Buy: %v, want card.json named", err)
		}
		if strings.Contains(err.Error(), c.PAN) {
			t.Error("the error shows the PAN")
		}
		if len(rec.Messages) != 2 {
			t.Errorf("%d messages exchanged, want no PReq sent", len(rec.Messages))
		}
	})
}
