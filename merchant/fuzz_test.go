package merchant_test

import (
	"context"
	"testing"

	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// FuzzPurchase feeds arbitrary bytes to the merchant's purchase entry
// point for an order of the buyer. The merchant answers with a message that
// parses, never panics, and an input it answers with an Error leaves the
// order as it was (unless the input was a PReq the merchant recorded as
// refused, which is the order's end). Seeds: the order's genuine PInitReq
// and PReq.
func FuzzPurchase(f *testing.F) {
	r := agenttest.New(f, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	rec, err := c.Buy(r.Merchant, merchant.OrderRequest{SKU: "tea"})
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range rec.Messages {
		f.Add(m)
	}
	agreed, status, body := c.Agree(r.Merchant, merchant.OrderRequest{SKU: "mug"})
	if status != 201 {
		f.Fatalf("agreeing an order: %d %s", status, body)
	}
	buyer := c.Wallet.Creds[agenttest.Suite].TLS.Certificate[0]
	th := protocol.ThumbprintOf(buyer)
	m := r.Merchant.Merchant
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, in []byte) {
		before := merchant.OrderState(t, m, agreed.Order)
		out := m.Purchase(ctx, agreed.Order, th[:], in)
		w, err := protocol.Parse(out)
		if err != nil {
			t.Fatalf("the merchant's answer does not parse: %v", err)
		}
		if _, refused := w.Message.(*protocol.Error); refused {
			if after := merchant.OrderState(t, m, agreed.Order); after != before && after != "refused" {
				t.Fatalf("a refused input moved the order from %q to %q", before, after)
			}
		}
	})
}
