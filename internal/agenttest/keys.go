package agenttest

import (
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// This file opens the sealed messages a test captures, with the keys of
// the parties that can, and builds variants of genuine requests.

// Keys returns the gateway's keys, read from its directory (its
// credentials and DIR/token.key).
func (g *Gateway) Keys(t testing.TB) *protocol.GatewayKeys {
	t.Helper()
	c, err := agent.LoadCredentials(g.Dir, keyfile.Store{}, Suite)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(g.Dir, "token.key"))
	if err != nil {
		t.Fatal(err)
	}
	k := &protocol.GatewayKeys{Sig: c.Sig, KE: c.KE}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != len(k.TokenKey) {
		t.Fatalf("token.key: %v", err)
	}
	copy(k.TokenKey[:], raw)
	return k
}

// Keys returns the merchant's keys, read from its directory.
func (m *Merchant) Keys(t testing.TB) *protocol.MerchantKeys {
	t.Helper()
	c, err := agent.LoadCredentials(m.Dir, keyfile.Store{}, Suite)
	if err != nil {
		t.Fatal(err)
	}
	return &protocol.MerchantKeys{Sig: c.Sig, KE: c.KE}
}

// Peer returns the merchant's TLS certificate as the gateway sees the TLS
// client (what gateway.Gateway.Authorize and Capture take as peer).
func (m *Merchant) Peer(t testing.TB) *protocol.Cert {
	t.Helper()
	c, err := protocol.ParseCertificate(m.TLSCertificate().Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Parse parses a DER MessageWrapper, failing t if it does not parse.
func Parse(t testing.TB, der []byte) *protocol.Wrapper {
	t.Helper()
	w, err := protocol.Parse(der)
	if err != nil {
		t.Fatalf("message does not parse: %v", err)
	}
	return w
}

// Expect parses der and returns its message as T, failing t otherwise
// (naming the code of an Error).
func Expect[T protocol.Message](t testing.TB, der []byte) T {
	t.Helper()
	w := Parse(t, der)
	m, ok := w.Message.(T)
	if !ok {
		if e, isErr := w.Message.(*protocol.Error); isErr {
			t.Fatalf("got an Error %d (%s): %q; want a %T", e.Data.Code, e.Data.Code, e.Data.Detail, m)
		}
		t.Fatalf("got a %s, want a %T", w.Message.Type(), m)
	}
	return m
}

// ErrorCode returns the code of the Error message der, failing t if der is
// not an Error.
func ErrorCode(t testing.TB, der []byte) protocol.Code {
	t.Helper()
	w := Parse(t, der)
	e, ok := w.Message.(*protocol.Error)
	if !ok {
		t.Fatalf("got a %s, want an Error", w.Message.Type())
	}
	return e.Data.Code
}

// Rewrap returns der with its MessageWrapper header changed by f: the same
// message in other bytes (the header is covered by no signature).
func Rewrap(t testing.TB, der []byte, f func(*protocol.Wrapper)) []byte {
	t.Helper()
	w := Parse(t, der)
	f(w)
	return w.Marshal()
}

// OpenAuthReq opens an AuthReq (DER) with the gateway's keys.
func (r *Rig) OpenAuthReq(t testing.TB, der []byte) *protocol.Authorization {
	t.Helper()
	a, err := protocol.VerifyAuthReq(r.Trust(), r.Gateway.Keys(t), protocol.AmountPolicy{}, Expect[*protocol.AuthReq](t, der))
	if err != nil {
		t.Fatalf("AuthReq: %v", err)
	}
	return a
}

// OpenAuthRes opens the AuthRes (DER) the gateway answered to authReq,
// with m's keys.
func (r *Rig) OpenAuthRes(t testing.TB, m *Merchant, authReq, authRes []byte) *protocol.AuthResData {
	t.Helper()
	a := r.OpenAuthReq(t, authReq)
	d, err := protocol.VerifyAuthRes(r.Trust(), m.Keys(t), r.Gateway.Keys(t).KE.Cert, &a.Request, Expect[*protocol.AuthRes](t, authRes))
	if err != nil {
		t.Fatalf("AuthRes: %v", err)
	}
	return d
}

// OpenCapReq opens a CapReq (DER) with the gateway's keys.
func (r *Rig) OpenCapReq(t testing.TB, der []byte) *protocol.CaptureBatch {
	t.Helper()
	b, err := protocol.VerifyCapReq(r.Trust(), r.Gateway.Keys(t), Expect[*protocol.CapReq](t, der))
	if err != nil {
		t.Fatalf("CapReq: %v", err)
	}
	return b
}

// OpenCapRes opens the CapRes (DER) the gateway answered to the CapReq
// whose data is sent, with m's keys.
func (r *Rig) OpenCapRes(t testing.TB, m *Merchant, sent *protocol.CapReqData, der []byte) *protocol.CapResData {
	t.Helper()
	d, err := protocol.VerifyCapRes(r.Trust(), m.Keys(t), r.Gateway.Keys(t).KE.Cert, sent, Expect[*protocol.CapRes](t, der))
	if err != nil {
		t.Fatalf("CapRes: %v", err)
	}
	return d
}

// NewCapReq builds a CapReq (DER) of items signed by m and sealed to the
// gateway, as merchant.Merchant.Capture does, and returns it with its
// data.
func (r *Rig) NewCapReq(t testing.TB, m *Merchant, batchID int64, items ...protocol.CapItem) ([]byte, *protocol.CapReqData) {
	t.Helper()
	rnd := r.rand()
	var rrpid protocol.RRPID
	io.ReadFull(rnd, rrpid[:])
	req, sent, err := protocol.NewCapReq(m.Keys(t), r.Gateway.Keys(t).KE.Cert, rrpid, batchID, items, rnd)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.NewWrapper(req, Now, nil, &rrpid).Marshal(), sent
}
