package gateway_test

import (
	"context"
	"testing"

	"github.com/setpay/setpay/gateway"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// FuzzGateway feeds arbitrary bytes to the gateway's two entry points, as
// the merchant on the TLS link. Whatever comes in, the gateway answers with
// a message that parses, never panics, and an input it answers with an
// Error changes nothing in its ledger. Seeds: a genuine AuthReq and CapReq
// (the first is approved, then answered from the ledger).
func FuzzGateway(f *testing.F) {
	r := agenttest.New(f, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	ctx := context.Background()
	r.Gateway.Tap.Refuse("/auth", protocol.CodeUnknownTrans, 1)
	if _, err := c.Buy(r.Merchant, merchant.OrderRequest{SKU: "tea"}); agent.Code(err) != protocol.CodeUnknownTrans {
		f.Fatalf("holding the AuthReq: %v", err)
	}
	authReq := r.Gateway.Tap.Last(f, "/auth")
	if _, err := c.Buy(r.Merchant, merchant.OrderRequest{SKU: "mug"}); err != nil {
		f.Fatal(err)
	}
	r.Gateway.Tap.Refuse("/capture", protocol.CodeUnknownTrans, 1)
	if _, err := r.Merchant.Capture(ctx); agent.Code(err) != protocol.CodeUnknownTrans {
		f.Fatalf("holding the CapReq: %v", err)
	}
	capReq := r.Gateway.Tap.Last(f, "/capture")
	f.Add(false, authReq)
	f.Add(true, capReq)
	peer := r.Merchant.Peer(f)
	g := r.Gateway.Gateway
	f.Fuzz(func(t *testing.T, capture bool, in []byte) {
		before := gateway.LedgerRows(t, g)
		var out []byte
		if capture {
			out = g.Capture(ctx, peer, in)
		} else {
			out = g.Authorize(ctx, peer, in)
		}
		w, err := protocol.Parse(out)
		if err != nil {
			t.Fatalf("the gateway's answer does not parse: %v", err)
		}
		if _, refused := w.Message.(*protocol.Error); refused {
			if after := gateway.LedgerRows(t, g); !equalRows(after, before) {
				t.Fatalf("a refused input changed the ledger: %v, was %v", after, before)
			}
		}
	})
}
