package protocol

import (
	"crypto/subtle"
	"io"
	"math/big"
	"time"
)

// This file is the gateway's authorization: it opens AuthReq and the PI it
// carries, makes every check of the protocol, and answers with AuthRes and a
// CapToken.

// GatewayKeys are the gateway's keys for one suite.
type GatewayKeys struct {
	Sig *SigningKey
	KE  *KeyExchangeKey
	// TokenKey seals and opens the gateway's CapTokens (captoken.go). It
	// never leaves the gateway.
	TokenKey Secret
}

// AmountPolicy says how much a merchant may ask to authorize relative to
// the purchase amount the cardholder signed.
type AmountPolicy struct {
	// MaxOverPercent allows AuthAmt up to PurchAmt * (100 + MaxOverPercent) /
	// 100 (tips, shipping adjustments). 0: never more than PurchAmt.
	MaxOverPercent int64
}

func (p AmountPolicy) allows(auth, purch Amount) bool {
	if auth.Currency != purch.Currency {
		return false
	}
	// auth <= floor(purch * (100 + over) / 100), exactly: amounts reach 2^62
	// and the product would overflow 64 bits.
	over := max(p.MaxOverPercent, 0)
	limit := new(big.Int).Mul(big.NewInt(purch.Value), big.NewInt(100+over))
	limit.Quo(limit, big.NewInt(100))
	return big.NewInt(auth.Value).Cmp(limit) <= 0
}

// Authorization is what the gateway learned from a verified AuthReq: enough
// to ask the issuer and to answer the merchant. It holds card data; it never
// leaves the gateway and its bank.
type Authorization struct {
	Suite      Suite
	Request    AuthReqData
	Merchant   *Cert // the merchant signature certificate that signed AuthReq
	MerchantKE *Cert // the merchant key-exchange certificate to seal AuthRes to
	PIHead     PIHead
	PANData    PANData
	Cardholder *Cert // nil for the unsigned variant
}

// VerifyAuthReq is the gateway's check of AuthReq and the PI inside it.
// Checks, in order:
//  1. the AuthReq envelope opens with the gateway's key-exchange key
//     (CodeUnknownSuite, CodeSuiteMismatch, CodeDecrypt) and holds a
//     well-formed AuthReqSigned (CodeMalformed);
//  2. the merchant's signature, certificate chain, role and validity
//     (CodeSignature, certificate codes);
//  3. the merchant key-exchange certificate is valid and of the same merchant
//     (certificate codes, CodeMerchantMismatch);
//  4. the PI is sealed under the same suite (CodeSuiteMismatch) to this
//     gateway (CodeWrongGateway), opens with the XID of AuthReq as associated
//     data (CodeDecrypt) and holds a well-formed PIContent (CodeMalformed);
//  5. the dual signature over {H(PIData), OIMD} verifies with the
//     cardholder's certificate (CodeDualSignature, certificate codes);
//  6. PIHead names this gateway (CodeWrongGateway): the fix of the flaw the
//     formal analysis found;
//  7. PIHead.TransIDs are AuthReq's (CodeXIDMismatch, CodeTransIDsMismatch);
//  8. linkage: the PI's OIMD equals the merchant's H(OIData)
//     (CodeOIMDMismatch) and PIHead.HOD equals the merchant's HOD
//     (CodeHODMismatch);
//  9. PIHead.MerchantID is the merchant that signed AuthReq
//     (CodeMerchantMismatch);
//  10. the amount to authorize is within policy of PurchAmt
//     (CodeAmountMismatch);
//  11. the card data is well formed, and an unsigned PI's PANSecret is
//     all zeros (CodeCardData);
//  12. the cardholder certificate's account hash equals
//     H(PAN, expiry) keyed with PANSecret (CodeAccountHash).
func VerifyAuthReq(t *Trust, keys *GatewayKeys, policy AmountPolicy, req *AuthReq) (*Authorization, error) {
	s := keys.KE.Suite()
	signed, merchant, err := openSigned[AuthReqData](t, keys.KE, &req.Sealed, labelSealAuthReq, labelSigAuthReq, CertMerchantSignature)
	if err != nil {
		return nil, err
	}
	a := &Authorization{Suite: s, Request: signed.Data, Merchant: merchant}
	d := &a.Request
	a.MerchantKE, err = t.Verify(signed.Certificates, d.MerchantKE, CertMerchantKeyExchange, s)
	if err != nil {
		return nil, err
	}
	if a.MerchantKE.MerchantID() != a.Merchant.MerchantID() {
		return nil, fail(CodeMerchantMismatch, "merchant key-exchange certificate is of merchant %q, signer is %q", a.MerchantKE.MerchantID(), a.Merchant.MerchantID())
	}

	content, err := openPI(keys.KE, s, &req.PI, d.TransIDs.XID)
	if err != nil {
		return nil, err
	}
	pi := &content.PIData
	if req.PI.DualSigned() {
		a.Cardholder, err = verifySignature(t, req.PI.DualSignature, req.PI.Certificates, CertCardholderSignature, s,
			labelDualSig, DualSignatureInput(PIMD(s, pi), content.OIMD), CodeDualSignature)
		if err != nil {
			return nil, err
		}
	}
	if pi.PIHead.PEThumb != keys.KE.Cert.Thumb {
		return nil, fail(CodeWrongGateway, "the cardholder named another gateway in PIHead")
	}
	if err := compareTransIDs(&pi.PIHead.TransIDs, &d.TransIDs, "PIHead"); err != nil {
		return nil, err
	}
	if content.OIMD != d.CheckDigests.HOIData {
		return nil, fail(CodeOIMDMismatch, "the PI is linked to another OIData than the merchant's")
	}
	if pi.PIHead.HOD != d.CheckDigests.HOD {
		return nil, fail(CodeHODMismatch, "PIHead HOD differs from the merchant's HOD")
	}
	if pi.PIHead.MerchantID != a.Merchant.MerchantID() {
		return nil, fail(CodeMerchantMismatch, "PIHead names merchant %q, AuthReq is signed by %q", pi.PIHead.MerchantID, a.Merchant.MerchantID())
	}
	if !policy.allows(d.AuthAmt, pi.PIHead.PurchAmt) {
		return nil, fail(CodeAmountMismatch, "merchant asks %d (currency %d); cardholder agreed %d (currency %d), policy allows %d%% over",
			d.AuthAmt.Value, d.AuthAmt.Currency, pi.PIHead.PurchAmt.Value, pi.PIHead.PurchAmt.Currency, policy.MaxOverPercent)
	}
	if err := pi.PANData.check(); err != nil {
		return nil, err
	}
	if a.Cardholder == nil && pi.PANData.PANSecret != (Secret{}) {
		return nil, fail(CodeCardData, "an unsigned PI must carry an all-zero PANSecret")
	}
	if a.Cardholder != nil {
		if a.Cardholder.AccountHash == nil {
			return nil, fail(CodeAccountHash, "cardholder certificate has no account hash")
		}
		h := AccountHash(s, pi.PANData.PAN, pi.PANData.CardExpiry, pi.PANData.PANSecret)
		if subtle.ConstantTimeCompare(h[:], a.Cardholder.AccountHash[:]) != 1 {
			return nil, fail(CodeAccountHash, "card data does not match the cardholder certificate's account hash")
		}
	}
	a.PIHead, a.PANData = pi.PIHead, pi.PANData
	return a, nil
}

// openPI opens the sealed PI for the transaction xid.
func openPI(ke *KeyExchangeKey, s Suite, pi *PI, xid XID) (*PIContent, error) {
	if pi.Sealed.Suite != s {
		return nil, fail(CodeSuiteMismatch, "PI sealed under suite %d, AuthReq under %s", pi.Sealed.Suite, s)
	}
	if pi.Sealed.Recipient != ke.Cert.Thumb {
		return nil, fail(CodeWrongGateway, "the PI is sealed to another gateway")
	}
	return ke.OpenPI(pi, xid)
}

// OpenPI tries to open a PI of transaction xid with k, whoever the PI names
// as its recipient: it succeeds only with the key the cardholder sealed it
// to (CodeDecrypt otherwise). The gateway calls it through VerifyAuthReq,
// after checking that the PI names it; the teaching walkthrough calls it to
// show that the merchant's own key opens nothing.
func (k *KeyExchangeKey) OpenPI(pi *PI, xid XID) (*PIContent, error) {
	label := labelSealPIUnsig
	if pi.DualSigned() {
		label = labelSealPIDual
	}
	pt, err := k.open(&pi.Sealed, pi.Sealed.Suite, label, piAAD(xid))
	if err != nil {
		return nil, failWrap(CodeDecrypt, err, "the PI does not open for this transaction")
	}
	return decode[PIContent](pt, "PIContent")
}

// AuthDecision is the issuer's answer the gateway relays.
type AuthDecision struct {
	Result   AuthResult
	AuthAmt  Amount // approved amount; ignored when declined
	AuthCode string // issuer's approval code, 1..12 characters
	Reason   DeclineReason
	BankRef  []byte // issuer's reference for the hold, 1..64 bytes
}

// NewAuthRes answers a verified AuthReq: on approval it seals a CapToken
// with the gateway's token key; it signs AuthResData (naming
// the merchant and the XID) and seals it to the merchant.
func NewAuthRes(keys *GatewayKeys, a *Authorization, dec *AuthDecision, now time.Time, rnd io.Reader) (*AuthRes, error) {
	s := a.Suite
	d := AuthResData{
		TransIDs:      a.Request.TransIDs,
		RRPID:         a.Request.RRPID,
		MerchantID:    a.Merchant.MerchantID(),
		MerchantThumb: a.Merchant.Thumb,
		Result:        dec.Result,
		AuthAmt:       Amount{Currency: a.Request.AuthAmt.Currency},
	}
	if dec.Result == AuthApproved {
		d.AuthAmt, d.AuthCode = dec.AuthAmt, dec.AuthCode
		tok := CapTokenData{
			XID:        a.Request.TransIDs.XID,
			MerchantID: d.MerchantID,
			AuthRRPID:  a.Request.RRPID,
			AuthAmt:    dec.AuthAmt,
			AuthCode:   dec.AuthCode,
			AuthDate:   now,
			BankRef:    dec.BankRef,
		}
		env, err := sealCapToken(rnd, s, keys.TokenKey, &tok)
		if err != nil {
			return nil, err
		}
		d.CapToken = &env
	} else {
		d.Reason = dec.Reason
	}
	signed, err := newSigned[AuthResData](keys.Sig, labelSigAuthRes, d, keys.Sig.Chain)
	if err != nil {
		return nil, err
	}
	env, err := sealTo(rnd, a.MerchantKE, labelSealAuthRes, encode(signed), nil)
	if err != nil {
		return nil, err
	}
	return &AuthRes{Sealed: env}, nil
}
