package gateway

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/setpay/setpay/protocol"
)

// Authorize answers one AuthReq (its DER MessageWrapper in) from the
// merchant whose TLS client certificate is peer, with an AuthRes or an
// Error (DER).
//
// In order:
//  1. a request answered before (the same bytes: a retry or a replay) gets
//     the recorded answer, and nothing else happens;
//  2. the protocol's checks of AuthReq and the PI (protocol.VerifyAuthReq,
//     with the keys of the suite the envelope names);
//  3. the merchant that signed AuthReq is the one on the TLS link
//     (CodeMerchantMismatch);
//  4. the ledger records the authorization as pending before the bank is
//     asked; an XID already authorized by another request is refused
//     (CodeReplay);
//  5. the bank is asked (its retrieval reference number is derived from the
//     XID, so a retry after a crash is a duplicate the bank answers without
//     a second hold); if it cannot be reached the answer is
//     CodeUnavailable and the merchant retries;
//  6. the AuthRes, and the decision, are recorded in one transaction before
//     they are sent.
func (g *Gateway) Authorize(ctx context.Context, peer *protocol.Cert, in []byte) []byte {
	h := hashOf(in)
	if out, ok, err := g.ledger.answer(ctx, "AuthReq", h); err != nil {
		return g.fail("AuthReq", in, protocol.SuitePQ, err)
	} else if ok {
		g.log.Info("AuthReq answered before: recorded answer sent again")
		return out
	}
	w, err := protocol.Parse(in)
	if err != nil {
		return g.fail("AuthReq", in, protocol.SuitePQ, err)
	}
	req, err := protocol.Expect[*protocol.AuthReq](w)
	if err != nil {
		return g.fail("AuthReq", in, protocol.SuitePQ, err)
	}
	s := req.Sealed.Suite
	keys := g.keys[s]
	if keys == nil {
		return g.fail("AuthReq", in, protocol.SuitePQ, &protocol.CheckError{Code: protocol.CodeUnknownSuite, Detail: "this gateway has no key of suite " + s.String()})
	}
	a, err := protocol.VerifyAuthReq(g.trust.Get(s), keys, g.cfg.Policy, req)
	if err != nil {
		return g.fail("AuthReq", in, s, err)
	}
	if !sameMerchant(peer, a.Merchant) {
		return g.fail("AuthReq", in, s, &protocol.CheckError{Code: protocol.CodeMerchantMismatch, Detail: "AuthReq is signed by another merchant than the TLS client"})
	}
	xid := a.Request.TransIDs.XID
	unlock := g.lockXID(xid)
	defer unlock()
	// A concurrent identical request may have been answered meanwhile.
	if out, ok, err := g.ledger.answer(ctx, "AuthReq", h); err != nil || ok {
		if err != nil {
			return g.fail("AuthReq", in, s, err)
		}
		return out
	}
	rec := &authRecord{XID: xid, Merchant: a.Merchant.MerchantID(), Request: h, RRN: rrnOf(xid), Amount: a.Request.AuthAmt}
	if err := g.ledger.beginAuth(ctx, rec); err != nil {
		return g.fail("AuthReq", in, s, err)
	}
	dec, err := g.authorizeAtBank(ctx, a, rec)
	if err != nil {
		g.log.Warn("bank unavailable", "err", err)
		return g.fail("AuthReq", in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the bank does not answer; send the same AuthReq again later"})
	}
	now := g.now().UTC().Truncate(time.Second)
	res, err := protocol.NewAuthRes(keys, a, dec, now, g.rand)
	if err != nil {
		return g.fail("AuthReq", in, s, err)
	}
	out := protocol.NewWrapper(res, now, &a.Request.TransIDs, &a.Request.RRPID).Marshal()
	if out, err = g.ledger.finishAuth(ctx, xid, h, dec, out); err != nil {
		return g.fail("AuthReq", in, s, err)
	}
	g.log.Info("authorization", "xid", hex.EncodeToString(xid[:8]), "merchant", rec.Merchant, "approved", dec.Result == protocol.AuthApproved, "reason", dec.Reason.String())
	return out
}

// rrnOf derives the bank's retrieval reference number (12 characters)
// from the XID: the same transaction always has the same RRN.
func rrnOf(xid protocol.XID) string { return hex.EncodeToString(xid[:6]) }
