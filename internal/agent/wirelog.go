package agent

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// WireLog records what a party sends and receives over HTTP, after TLS:
// one file per message body, DIR/NNNNNN-<direction>-<path>.bin, where
// direction is "in" (received) or "out" (sent). It shows a class (and the
// end-to-end tests) exactly what each party could read on the wire. Its
// files are the party's own: the merchant's never hold card data, the
// gateway's never the order description. A nil WireLog records nothing.
type WireLog struct {
	dir string
	mu  sync.Mutex
	n   int
}

// NewWireLog records into dir (created 0700); "" gives nil.
func NewWireLog(dir string) (*WireLog, error) {
	if dir == "" {
		return nil, nil
	}
	if err := keyfile.MkdirAll(dir); err != nil {
		return nil, err
	}
	return &WireLog{dir: dir}, nil
}

func (l *WireLog) record(direction, path string, body []byte) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.n++
	n := l.n
	l.mu.Unlock()
	name := strings.Trim(strings.NewReplacer("/", "_", ".", "_").Replace(path), "_")
	_ = os.WriteFile(filepath.Join(l.dir, fmt.Sprintf("%06d-%s-%s.bin", n, direction, name)), body, 0o600)
}

// Handler wraps a server's handler: it records each request body as
// received and each response body as sent.
func (l *WireLog) Handler(h http.Handler) http.Handler {
	if l == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, wireLimit))
		if err != nil {
			http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		l.record("in", r.URL.Path, body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		l.record("out", r.URL.Path, rec.buf.Bytes())
	})
}

// wireLimit bounds what is recorded and passed on: one byte more than a
// message may have, so that the receiver still sees an oversized body as
// oversized.
const wireLimit = protocol.MaxMessageSize + 1

type recorder struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}

// Transport wraps a client's transport: it records each request body as
// sent and each response body as received.
func (l *WireLog) Transport(t http.RoundTripper) http.RoundTripper {
	if l == nil {
		return t
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil {
			body, err := io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, err
			}
			l.record("out", req.URL.Path, body)
			req.Body = io.NopCloser(bytes.NewReader(body))
		} else {
			l.record("out", req.URL.Path, nil)
		}
		resp, err := t.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, wireLimit))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		l.record("in", req.URL.Path, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
