package gateway

import (
	"context"

	"github.com/setpay/setpay/protocol"
)

// Capture answers one CapReq (DER in) from the merchant whose TLS client
// certificate is peer, with a CapRes or an Error (DER).
//
// A request answered before gets the recorded answer. Otherwise, after the
// protocol's checks (protocol.VerifyCapReq, which checks each item's
// CapToken), each item must name an authorization the gateway approved for
// this merchant (CodeUnknownTrans) that was not captured before
// (CodeAlreadyCaptured); the acquirer then records the capture. The
// captures and the CapRes are recorded in one transaction before the
// CapRes is sent. Captures are handled one batch at a time.
func (g *Gateway) Capture(ctx context.Context, peer *protocol.Cert, in []byte) []byte {
	h := hashOf(in)
	if out, ok, err := g.ledger.answer(ctx, "CapReq", h); err != nil {
		return g.fail("CapReq", in, protocol.SuitePQ, err)
	} else if ok {
		g.log.Info("CapReq answered before: recorded answer sent again")
		return out
	}
	w, err := protocol.Parse(in)
	if err != nil {
		return g.fail("CapReq", in, protocol.SuitePQ, err)
	}
	req, err := protocol.Expect[*protocol.CapReq](w)
	if err != nil {
		return g.fail("CapReq", in, protocol.SuitePQ, err)
	}
	s := req.Sealed.Suite
	keys := g.keys[s]
	if keys == nil {
		return g.fail("CapReq", in, protocol.SuitePQ, &protocol.CheckError{Code: protocol.CodeUnknownSuite, Detail: "this gateway has no key of suite " + s.String()})
	}
	b, err := protocol.VerifyCapReq(g.trust.Get(s), keys, req)
	if err != nil {
		return g.fail("CapReq", in, s, err)
	}
	if !sameMerchant(peer, b.Merchant) {
		return g.fail("CapReq", in, s, &protocol.CheckError{Code: protocol.CodeMerchantMismatch, Detail: "CapReq is signed by another merchant than the TLS client"})
	}
	g.capMu.Lock()
	defer g.capMu.Unlock()
	if out, ok, err := g.ledger.answer(ctx, "CapReq", h); err != nil || ok {
		if err != nil {
			return g.fail("CapReq", in, s, err)
		}
		return out
	}
	merchant := b.Merchant.MerchantID()
	results := make([]protocol.CapResItem, len(b.Items))
	var caps []capture
	seen := map[protocol.XID]bool{}
	for i, it := range b.Items {
		xid := it.Item.TransIDs.XID
		r := protocol.CapResItem{XID: xid, CapAmt: protocol.Amount{Currency: it.Item.CapAmt.Currency}}
		code, err := g.captureItem(ctx, merchant, &it, seen[xid])
		switch {
		case err != nil:
			g.log.Warn("bank unavailable", "err", err)
			return g.fail("CapReq", in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the bank does not answer; send the same CapReq again later"})
		case code != 0:
			r.Code = code
		default:
			r.CapAmt = it.Item.CapAmt
			caps = append(caps, capture{XID: xid, Amount: it.Item.CapAmt})
			seen[xid] = true
		}
		results[i] = r
	}
	res, err := protocol.NewCapRes(keys, b, results, g.rand)
	if err != nil {
		return g.fail("CapReq", in, s, err)
	}
	out := protocol.NewWrapper(res, g.now(), nil, &b.Request.RRPID).Marshal()
	if out, err = g.ledger.recordCaptures(ctx, merchant, b.Request.BatchID, h, caps, out); err != nil {
		return g.fail("CapReq", in, s, err)
	}
	g.log.Info("capture batch", "merchant", merchant, "batch", b.Request.BatchID, "items", len(b.Items), "captured", len(caps))
	return out
}

// captureItem checks one verified item against the ledger and has the
// acquirer capture it. It returns the item's refusal code, or an error
// if the bank cannot be reached.
func (g *Gateway) captureItem(ctx context.Context, merchant string, it *protocol.CaptureItem, inBatch bool) (protocol.Code, error) {
	if it.Err != nil {
		return protocol.CodeOf(it.Err), nil
	}
	rec, captured, err := g.ledger.authorization(ctx, it.Item.TransIDs.XID)
	switch {
	case err != nil:
		return 0, err
	case rec == nil || rec.Merchant != merchant || rec.State != stateApproved:
		return protocol.CodeUnknownTrans, nil
	case captured || inBatch:
		return protocol.CodeAlreadyCaptured, nil
	}
	return g.captureAtBank(ctx, rec, it.Item.CapAmt)
}
