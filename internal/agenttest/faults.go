package agenttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

// A fault is what a Tap or BankLink does to one request instead of passing
// it on.
type fault struct {
	kind   int
	code   protocol.Code            // refuse
	answer func(body []byte) []byte // answer
}

const (
	unreachable = iota + 1 // not passed on; no answer
	lost                   // passed on; the answer is lost
	refuse                 // not passed on; answered with an Error
	answer                 // not passed on; answered with what a function returns
)

// Tap is the gateway's HTTP handler as the merchants reach it: it records
// every request body by path, and applies the faults queued for that path,
// one per request, in order; requests without a fault pass, and their
// answers are recorded too.
type Tap struct {
	next   http.Handler
	mu     sync.Mutex
	faults map[string][]fault
	reqs   map[string][][]byte
	resps  map[string][][]byte
}

func (t *Tap) queue(path string, f fault, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.faults == nil {
		t.faults = map[string][]fault{}
	}
	for range n {
		t.faults[path] = append(t.faults[path], f)
	}
}

// Unreachable makes the next n requests to path fail as if the gateway
// were down: they do not reach it and are answered 503.
func (t *Tap) Unreachable(path string, n int) { t.queue(path, fault{kind: unreachable}, n) }

// LoseAnswers lets the next n requests to path reach the gateway and then
// loses the gateway's answers: the connection is reset instead.
func (t *Tap) LoseAnswers(path string, n int) { t.queue(path, fault{kind: lost}, n) }

// Refuse answers the next n requests to path with an unsigned Error of
// code, without passing them on: the test keeps a genuine request the
// gateway has not seen (Requests).
func (t *Tap) Refuse(path string, code protocol.Code, n int) {
	t.queue(path, fault{kind: refuse, code: code}, n)
}

// Answer answers the next n requests to path with f(request body) (a 200
// of type agent.ContentType), without passing them on.
func (t *Tap) Answer(path string, f func(body []byte) []byte, n int) {
	t.queue(path, fault{kind: answer, answer: f}, n)
}

// Responses returns the bodies of the gateway's answers to path that
// reached the merchants so far, in order.
func (t *Tap) Responses(path string) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.resps[path]...)
}

// Requests returns the bodies of the requests to path so far, in order.
func (t *Tap) Requests(path string) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.reqs[path]...)
}

// Last returns the body of the last request to path, failing tb if there
// was none.
func (t *Tap) Last(tb testing.TB, path string) []byte {
	tb.Helper()
	r := t.Requests(path)
	if len(r) == 0 {
		tb.Fatalf("no request to %s", path)
	}
	return r[len(r)-1]
}

func (t *Tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, protocol.MaxMessageSize+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	if t.reqs == nil {
		t.reqs = map[string][][]byte{}
	}
	t.reqs[r.URL.Path] = append(t.reqs[r.URL.Path], body)
	var f fault
	if q := t.faults[r.URL.Path]; len(q) > 0 {
		f, t.faults[r.URL.Path] = q[0], q[1:]
	}
	t.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch f.kind {
	case unreachable:
		http.Error(w, "gateway down (agenttest)", http.StatusServiceUnavailable)
	case refuse:
		agent.WriteMessage(w, agent.ErrorReply(&protocol.CheckError{Code: f.code, Detail: "refused by the agenttest tap"}, body, Suite, nil, protocol.Challenge{}, Now))
	case answer:
		agent.WriteMessage(w, f.answer(body))
	case lost:
		t.next.ServeHTTP(httptest.NewRecorder(), r)
		panic(http.ErrAbortHandler) // resets the stream: no answer
	default:
		rec := httptest.NewRecorder()
		t.next.ServeHTTP(rec, r)
		t.mu.Lock()
		if t.resps == nil {
			t.resps = map[string][][]byte{}
		}
		t.resps[r.URL.Path] = append(t.resps[r.URL.Path], rec.Body.Bytes())
		t.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}
}

// ErrBankDown is what a failing BankLink returns.
var ErrBankDown = errors.New("agenttest: the bank does not answer")

// BankLink is the gateway's bank.Network: it passes exchanges to Bank and
// applies the faults queued, one per exchange, in order.
type BankLink struct {
	Bank   *bank.Bank
	mu     sync.Mutex
	faults []fault
	n      int
	hook   func()
}

// OnNextExchange has the next exchange call f before it reaches the bank
// (while the gateway waits for the answer).
func (l *BankLink) OnNextExchange(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hook = f
}

var _ bank.Network = (*BankLink)(nil)

// Unreachable makes the next n exchanges fail without reaching the bank.
func (l *BankLink) Unreachable(n int) { l.queue(fault{kind: unreachable}, n) }

// LoseAnswers lets the next n exchanges reach the bank and loses the
// answers.
func (l *BankLink) LoseAnswers(n int) { l.queue(fault{kind: lost}, n) }

func (l *BankLink) queue(f fault, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		l.faults = append(l.faults, f)
	}
}

// Exchanges returns how many exchanges reached the bank.
func (l *BankLink) Exchanges() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Exchange implements bank.Network.
func (l *BankLink) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	l.mu.Lock()
	var f fault
	if len(l.faults) > 0 {
		f, l.faults = l.faults[0], l.faults[1:]
	}
	if f.kind != unreachable {
		l.n++
	}
	hook := l.hook
	l.hook = nil
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	if f.kind == unreachable {
		return nil, ErrBankDown
	}
	out, err := l.Bank.Exchange(ctx, req)
	if f.kind == lost && err == nil {
		return nil, ErrBankDown
	}
	return out, err
}

// Buffer is a bytes.Buffer safe for concurrent use: a party's log.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FilesContaining returns the files under dir (relative names) whose
// content contains needle.
func FilesContaining(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
