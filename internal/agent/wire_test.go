package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// echo answers every message with an Error of code 58 naming it.
func echo(w http.ResponseWriter, r *http.Request) {
	in, ok := agent.ReadMessage(w, r)
	if !ok {
		return
	}
	err := &protocol.CheckError{Code: protocol.CodeUnknownTrans, Detail: fmt.Sprintf("got %d bytes", len(in))}
	agent.WriteMessage(w, agent.ErrorReply(err, in, protocol.SuitePQ, nil, protocol.Challenge{}, now))
}

func TestPostAndReadMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	ctx := context.Background()
	req, err := protocol.NewPInitReq(bytes.NewReader(make([]byte, 64)), []byte("C-1"), "en", "setpay", "411111", []protocol.Suite{protocol.SuitePQ}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, raw, err := agent.Post(ctx, srv.Client(), srv.URL, req, now)
	var re *agent.RemoteError
	if !errors.As(err, &re) || agent.Code(err) != protocol.CodeUnknownTrans || w == nil || raw == nil {
		t.Fatalf("an Error reply: %v, want a RemoteError with code 58 and the wrapper", err)
	}
	if !strings.Contains(re.Error(), "unknown transaction") || !strings.Contains(re.Error(), "bytes") {
		t.Errorf("RemoteError %q names neither the code nor the detail", re.Error())
	}

	// Transport-level refusals are answered by ReadMessage with a status.
	for _, c := range []struct {
		name, method, ctype string
		body                []byte
		status              int
	}{
		{"GET", http.MethodGet, agent.ContentType, nil, http.StatusMethodNotAllowed},
		{"wrong content type", http.MethodPost, "application/json", []byte("{}"), http.StatusUnsupportedMediaType},
		{"too large", http.MethodPost, agent.ContentType, make([]byte, protocol.MaxMessageSize+1), http.StatusRequestEntityTooLarge},
	} {
		r, _ := http.NewRequest(c.method, srv.URL, bytes.NewReader(c.body))
		r.Header.Set("Content-Type", c.ctype)
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}

	// A reply that is not a setpay message is an error, not a message.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", agent.ContentType)
		w.Write([]byte{0x30, 0x00})
	}))
	defer bad.Close()
	if _, _, err := agent.PostDER(ctx, bad.Client(), bad.URL, []byte{1}); err == nil || agent.Code(err) != protocol.CodeMalformed {
		t.Errorf("a malformed reply: %v, want CodeMalformed", err)
	}
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer html.Close()
	if _, _, err := agent.PostDER(ctx, html.Client(), html.URL, []byte{1}); err == nil {
		t.Error("a reply of another content type was accepted")
	}
}

// TestErrorReplyHidesLocalErrors: an error without a protocol code (a
// database error, a path) goes on the wire as "internal error", with the
// code that has the sender retry.
func TestErrorReplyHidesLocalErrors(t *testing.T) {
	secret := "open /var/lib/setpay/merchant.db: permission denied"
	out := agent.ErrorReply(errors.New(secret), nil, protocol.SuitePQ, nil, protocol.Challenge{}, now)
	if bytes.Contains(out, []byte("merchant.db")) {
		t.Error("a local error's text went on the wire")
	}
	w, err := protocol.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	e := w.Message.(*protocol.Error)
	if e.Data.Code != protocol.CodeUnavailable || !strings.HasPrefix(e.Data.Detail, "internal error") {
		t.Errorf("Error = %+v", e.Data)
	}
}

func TestWireLogRecordsBothWays(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wire")
	wl, err := agent.NewWireLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wl.Handler(http.HandlerFunc(echo)))
	defer srv.Close()
	cl := &http.Client{Transport: wl.Transport(http.DefaultTransport)}
	if _, _, err := agent.PostDER(context.Background(), cl, srv.URL+"/x", []byte("request-bytes")); agent.Code(err) != protocol.CodeUnknownTrans {
		t.Fatalf("through the wire log: %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// client out, server in, server out, client in
	if len(ents) != 4 {
		t.Fatalf("%d files recorded, want 4", len(ents))
	}
	var in int
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if bytes.Equal(b, []byte("request-bytes")) {
			in++
		}
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", e.Name(), fi.Mode().Perm())
		}
	}
	if in != 2 {
		t.Errorf("the request was recorded %d times, want 2 (sent, received)", in)
	}
	var nilLog *agent.WireLog
	if nilLog.Handler(http.NotFoundHandler()) == nil || nilLog.Transport(http.DefaultTransport) != http.DefaultTransport {
		t.Error("a nil WireLog must pass through")
	}
}
