package protocol

import "io"

// This file is the gateway's capture: it opens CapReq, checks each item
// against the CapToken the gateway sealed for itself, and answers CapRes.

// CaptureBatch is a verified CapReq: the batch-level checks passed; each
// item carries its own result.
type CaptureBatch struct {
	Suite      Suite
	Request    CapReqData
	Merchant   *Cert
	MerchantKE *Cert
	Items      []CaptureItem
}

// CaptureItem is one item of a batch: the CapToken's content if it opened,
// and the error of the first item check that failed (nil: capture it).
type CaptureItem struct {
	Item  *CapItem
	Token *CapTokenData
	Err   error
}

// VerifyCapReq is the gateway's check of CapReq. Batch checks, in order:
// envelope (CodeDecrypt, CodeSuiteMismatch), CodeMalformed, the merchant's
// signature and certificates (CodeSignature, certificate codes), the merchant
// key-exchange certificate (certificate codes, CodeMerchantMismatch). Each item
// then: its CapToken opens with the gateway's token key and the item's XID
// (CodeCapTokenInvalid); the token is for this XID (CodeXIDMismatch), this
// merchant (CodeMerchantMismatch) and this authorization
// (CodeRRPIDMismatch); the capture is in the authorized currency
// (CodeAmountMismatch) and not above the authorized amount
// (CodeCaptureExceeds). Whether an authorization was already captured is the
// gateway ledger's check, not this function's.
func VerifyCapReq(t *Trust, keys *GatewayKeys, req *CapReq) (*CaptureBatch, error) {
	s := keys.KE.Suite()
	signed, merchant, err := openSigned[CapReqData](t, keys.KE, &req.Sealed, labelSealCapReq, labelSigCapReq, CertMerchantSignature)
	if err != nil {
		return nil, err
	}
	b := &CaptureBatch{Suite: s, Request: signed.Data, Merchant: merchant}
	d := &b.Request
	b.MerchantKE, err = t.Verify(signed.Certificates, d.MerchantKE, CertMerchantKeyExchange, s)
	if err != nil {
		return nil, err
	}
	if b.MerchantKE.MerchantID() != b.Merchant.MerchantID() {
		return nil, fail(CodeMerchantMismatch, "merchant key-exchange certificate is of merchant %q, signer is %q", b.MerchantKE.MerchantID(), b.Merchant.MerchantID())
	}
	for i := range d.Items {
		it := &d.Items[i]
		tok, err := checkCapItem(keys.TokenKey, s, b.Merchant.MerchantID(), it)
		b.Items = append(b.Items, CaptureItem{Item: it, Token: tok, Err: err})
	}
	return b, nil
}

func checkCapItem(tokenKey Secret, s Suite, merchantID string, it *CapItem) (*CapTokenData, error) {
	tok, err := openCapToken(s, tokenKey, &it.CapToken, it.TransIDs.XID)
	if err != nil {
		return nil, err
	}
	switch {
	case tok.XID != it.TransIDs.XID:
		return tok, fail(CodeXIDMismatch, "CapToken is for another transaction")
	case tok.MerchantID != merchantID:
		return tok, fail(CodeMerchantMismatch, "CapToken was issued to merchant %q", tok.MerchantID)
	case tok.AuthRRPID != it.AuthRRPID:
		return tok, fail(CodeRRPIDMismatch, "CapToken is for another authorization of this transaction")
	case it.CapAmt.Currency != tok.AuthAmt.Currency:
		return tok, fail(CodeAmountMismatch, "capture in currency %d, authorized in %d", it.CapAmt.Currency, tok.AuthAmt.Currency)
	case it.CapAmt.Value > tok.AuthAmt.Value:
		return tok, fail(CodeCaptureExceeds, "capture of %d exceeds the authorized %d", it.CapAmt.Value, tok.AuthAmt.Value)
	}
	return tok, nil
}

// NewCapRes signs the results of a capture batch (one per item, in order:
// captured amount and code 0, or the refusing code) and seals them to the
// merchant.
func NewCapRes(keys *GatewayKeys, b *CaptureBatch, results []CapResItem, rnd io.Reader) (*CapRes, error) {
	if len(results) != len(b.Request.Items) {
		return nil, fail(CodeMalformed, "%d results for %d items", len(results), len(b.Request.Items))
	}
	d := CapResData{RRPID: b.Request.RRPID, MerchantID: b.Merchant.MerchantID(), BatchID: b.Request.BatchID, Items: results}
	signed, err := newSigned[CapResData](keys.Sig, labelSigCapRes, d, keys.Sig.Chain)
	if err != nil {
		return nil, err
	}
	env, err := sealTo(rnd, b.MerchantKE, labelSealCapRes, encode(signed), nil)
	if err != nil {
		return nil, err
	}
	return &CapRes{Sealed: env}, nil
}
