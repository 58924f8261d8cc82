package agenttest_test

import (
	"testing"

	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

func TestPANsAreDistinctValidCardNumbers(t *testing.T) {
	seen := map[string]bool{}
	for i := range agenttest.Cards {
		p := agenttest.PAN(i)
		if _, err := protocol.NewPAN(p); err != nil {
			t.Errorf("PAN(%d): %v", i, err)
		}
		if seen[p] {
			t.Errorf("PAN(%d) repeats", i)
		}
		seen[p] = true
	}
}

func TestRigRunsAPurchaseAndRecordsIt(t *testing.T) {
	r := agenttest.New(t, agenttest.Options{})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	r.Gateway.Tap.Unreachable("/auth", 1)
	rec, err := c.Buy(r.Merchant, merchant.OrderRequest{SKU: "tea"})
	if err != nil || rec.Status != protocol.PurchApproved {
		t.Fatalf("purchase: %v", err)
	}
	if n := len(r.Gateway.Tap.Requests("/auth")); n != 2 {
		t.Errorf("tap recorded %d AuthReqs, want 2 (one refused as unreachable)", n)
	}
	if n := r.Link.Exchanges(); n != 1 {
		t.Errorf("%d bank exchanges, want 1", n)
	}
	a := r.OpenAuthReq(t, r.Gateway.Tap.Last(t, "/auth"))
	if a.PANData.PAN.Digits() != c.PAN || a.Merchant.MerchantID() != r.Merchant.ID {
		t.Error("the AuthReq opened is not the purchase's")
	}
}
