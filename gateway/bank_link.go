package gateway

import (
	"context"

	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/protocol"
)

// This file is the gateway's translation between SET and the bank's own
// message format (package bank): the payment-gateway role, the Internet on
// one side and the bank network on the other.

// stanOf derives the systems trace audit number from the XID.
func stanOf(xid protocol.XID) int {
	return (int(xid[6])<<16 | int(xid[7])<<8 | int(xid[8])) % 1_000_000
}

// authorizeAtBank asks the issuer to authorize a verified AuthReq: the
// card data from the PI, the amount the merchant asks, the merchant, and
// the RRN of the transaction. An error means the bank could not be reached
// or answered nonsense; the authorization stays pending.
func (g *Gateway) authorizeAtBank(ctx context.Context, a *protocol.Authorization, rec *authRecord) (*protocol.AuthDecision, error) {
	req := &bank.AuthRequest{
		PAN:        a.PANData.PAN,
		Expiry:     a.PANData.CardExpiry,
		Amount:     a.Request.AuthAmt.Value,
		Currency:   int(a.Request.AuthAmt.Currency),
		MerchantID: rec.Merchant,
		RRN:        rec.RRN,
		STAN:       stanOf(rec.XID),
		When:       g.now(),
	}
	res, err := g.exchange(ctx, req.Marshal, req.ParseResponse)
	if err != nil {
		return nil, err
	}
	if res.Approved {
		return &protocol.AuthDecision{Result: protocol.AuthApproved, AuthAmt: a.Request.AuthAmt, AuthCode: res.AuthID, BankRef: []byte(rec.RRN)}, nil
	}
	reason := res.Reason
	if reason == 0 {
		reason = protocol.DeclineOther
	}
	return &protocol.AuthDecision{Result: protocol.AuthDeclined, Reason: reason}, nil
}

// captureAtBank has the acquirer capture amt of an approved authorization.
// It returns the item's refusal code (0: captured).
func (g *Gateway) captureAtBank(ctx context.Context, rec *authRecord, amt protocol.Amount) (protocol.Code, error) {
	req := &bank.CaptureRequest{
		MerchantID: rec.Merchant,
		RRN:        rec.RRN,
		AuthID:     rec.AuthCode,
		Amount:     amt.Value,
		Currency:   int(amt.Currency),
		STAN:       stanOf(rec.XID),
		When:       g.now(),
	}
	res, err := g.exchange(ctx, req.Marshal, req.ParseResponse)
	switch {
	case err != nil:
		return 0, err
	case res.Approved:
		return 0, nil
	case res.Code == bank.CodeInvalidAmount:
		return protocol.CodeCaptureExceeds, nil
	}
	return protocol.CodeUnknownTrans, nil
}

// exchange sends one request over the bank network and parses the answer.
func (g *Gateway) exchange(ctx context.Context, marshal func() ([]byte, error), parse func([]byte) (*bank.Response, error)) (*bank.Response, error) {
	b, err := marshal()
	if err != nil {
		return nil, err
	}
	out, err := g.cfg.Bank.Exchange(ctx, b)
	if err != nil {
		return nil, err
	}
	return parse(out)
}
