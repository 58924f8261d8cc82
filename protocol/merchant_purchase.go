package protocol

import (
	"bytes"
	"io"
	"slices"
	"time"
)

// This file is the merchant's side: it answers PInitReq, checks PReq, asks
// the gateway to authorize and capture, and answers the cardholder with PRes.

// ChooseSuite returns the first suite of the cardholder's offer that the
// merchant supports, or CodeUnknownSuite when there is none.
func ChooseSuite(offered, supported []Suite) (Suite, error) {
	for _, s := range offered {
		if s.Valid() && slices.Contains(supported, s) {
			return s, nil
		}
	}
	return 0, fail(CodeUnknownSuite, "no suite in common: offered %v, supported %v", offered, supported)
}

// PInitResParams is what the merchant puts into PInitRes.
type PInitResParams struct {
	Req   *PInitReq
	Suite Suite // from ChooseSuite
	// Key is the merchant's signature key of Suite.
	Key *SigningKey
	// Gateway is the gateway key-exchange chain (leaf first) of Suite.
	Gateway  [][]byte
	LIDM     []byte // the merchant's local id, 1..20 bytes
	XID      XID
	ChallM   Challenge
	PReqDate time.Time
}

// NewPInitRes signs the merchant's answer to PInitReq. The XID, Chall-M and
// LID-M are the caller's (fresh random values and the merchant's order id).
func NewPInitRes(p *PInitResParams) (*PInitRes, error) {
	if !slices.Contains(p.Req.Suites, p.Suite) {
		return nil, fail(CodeDowngrade, "suite %s was not offered", p.Suite)
	}
	if p.Key.Suite() != p.Suite {
		return nil, fail(CodeSuiteMismatch, "merchant key is of suite %s, not %s", p.Key.Suite(), p.Suite)
	}
	if len(p.Gateway) == 0 {
		return nil, fail(CodeCertMissing, "no gateway key-exchange certificate")
	}
	d := PInitResData{
		TransIDs: TransIDs{
			LIDC:     p.Req.LIDC,
			LIDM:     p.LIDM,
			XID:      p.XID,
			PReqDate: p.PReqDate.UTC().Truncate(time.Second),
			Language: p.Req.Language,
		},
		RRPID:         p.Req.RRPID,
		ChallC:        p.Req.ChallC,
		ChallM:        p.ChallM,
		Suite:         p.Suite,
		OfferedSuites: p.Req.Suites,
		PEThumb:       ThumbprintOf(p.Gateway[0]),
	}
	certs := certsWithout(append(slices.Clip(p.Key.Chain), p.Gateway...), p.Req.Thumbs)
	signed, err := newSigned[PInitResData](p.Key, labelSigPInitRes, d, dedup(certs))
	if err != nil {
		return nil, err
	}
	return &PInitRes{*signed}, nil
}

// Order is what the merchant and the cardholder agreed: the order
// description and the purchase amount. The merchant recomputes HOD from it.
type Order struct {
	OD       []byte
	PurchAmt Amount
}

// VerifiedPReq is what the merchant learned from a verified PReq.
type VerifiedPReq struct {
	OIMD       Digest
	HOD        Digest
	Cardholder *Cert // nil for the unsigned variant
}

// VerifyPReq is the merchant's check of PReq against the PInitRes it sent and
// the agreed order. Checks, in order:
//   - a dual signature is present if requireCert (CodeCertRequired);
//   - the dual signature over {PIMD, H(OIData)} verifies with the cardholder's
//     certificate, of the transaction's suite (CodeDualSignature,
//     CodeSuiteMismatch, certificate codes);
//   - OIData.TransIDs are the transaction's (CodeXIDMismatch,
//     CodeTransIDsMismatch);
//   - Chall-M and Chall-C are echoed (CodeChallMMismatch, CodeChallCMismatch);
//   - OIData names the gateway of PInitRes (CodeWrongGateway);
//   - HOD = H(OD, PurchAmt, ODSalt) for the agreed order (CodeHODMismatch);
//   - the PI is sealed under the transaction's suite to that gateway
//     (CodeSuiteMismatch, CodeWrongGateway).
//
// The merchant cannot open the PI; the gateway checks the rest.
func VerifyPReq(t *Trust, sent *PInitResData, order *Order, req *PReq, requireCert bool) (*VerifiedPReq, error) {
	s := sent.Suite
	oi := &req.OIData
	v := &VerifiedPReq{OIMD: OIMD(s, oi)}
	if req.PI.DualSigned() {
		c, err := verifySignature(t, req.PI.DualSignature, req.PI.Certificates, CertCardholderSignature, s,
			labelDualSig, DualSignatureInput(req.PIMD, v.OIMD), CodeDualSignature)
		if err != nil {
			return nil, err
		}
		v.Cardholder = c
	} else if requireCert {
		return nil, fail(CodeCertRequired, "merchant requires a cardholder certificate; PReq is unsigned")
	}
	if err := compareTransIDs(&oi.TransIDs, &sent.TransIDs, "OIData"); err != nil {
		return nil, err
	}
	if oi.ChallM != sent.ChallM {
		return nil, fail(CodeChallMMismatch, "OIData does not echo Chall-M")
	}
	if oi.ChallC != sent.ChallC {
		return nil, fail(CodeChallCMismatch, "OIData does not echo Chall-C")
	}
	if oi.PEThumb != sent.PEThumb {
		return nil, fail(CodeWrongGateway, "OIData names another gateway than PInitRes")
	}
	v.HOD = HOD(s, order.OD, order.PurchAmt, oi.ODSalt)
	if oi.HOD != v.HOD {
		return nil, fail(CodeHODMismatch, "OIData HOD is not H(order description, amount, ODSalt) of the agreed order")
	}
	if req.PI.Sealed.Suite != s {
		return nil, fail(CodeSuiteMismatch, "PI sealed under suite %s, transaction uses %s", req.PI.Sealed.Suite, s)
	}
	if req.PI.Sealed.Recipient != sent.PEThumb {
		return nil, fail(CodeWrongGateway, "PI is sealed to another gateway than PInitRes named")
	}
	return v, nil
}

// MerchantKeys are the merchant's keys for one suite.
type MerchantKeys struct {
	Sig *SigningKey
	KE  *KeyExchangeKey
}

func (k *MerchantKeys) chain() [][]byte {
	return dedup(append(slices.Clip(k.Sig.Chain), k.KE.Chain...))
}

// AuthReqParams is what the merchant puts into AuthReq.
type AuthReqParams struct {
	Keys     *MerchantKeys
	Gateway  *Cert // the gateway key-exchange certificate (PEThumb), verified
	TransIDs TransIDs
	RRPID    RRPID
	AuthAmt  Amount
	PReq     *VerifiedPReq
	PI       PI // from the PReq, unchanged
	Rand     io.Reader
}

// Data is the AuthReqData that NewAuthReq(p) signs and seals: what the
// merchant keeps to check the AuthRes (VerifyAuthRes).
func (p *AuthReqParams) Data() AuthReqData {
	return AuthReqData{
		TransIDs:     p.TransIDs,
		RRPID:        p.RRPID,
		AuthAmt:      p.AuthAmt,
		CheckDigests: CheckDigests{HOIData: p.PReq.OIMD, HOD: p.PReq.HOD},
		MerchantKE:   p.Keys.KE.Cert.Thumb,
	}
}

// NewAuthReq signs the authorization request with the merchant's signature
// key and seals it to the gateway; the cardholder's PI rides along unchanged.
func NewAuthReq(p *AuthReqParams) (*AuthReq, error) {
	d := p.Data()
	signed, err := newSigned[AuthReqData](p.Keys.Sig, labelSigAuthReq, d, p.Keys.chain())
	if err != nil {
		return nil, err
	}
	env, err := sealTo(p.Rand, p.Gateway, labelSealAuthReq, encode(signed), nil)
	if err != nil {
		return nil, err
	}
	return &AuthReq{Sealed: env, PI: p.PI}, nil
}

// VerifyAuthRes is the merchant's check of AuthRes against the AuthReq it
// sent. Checks, in order: the envelope opens with the merchant's
// key-exchange key (CodeDecrypt, CodeSuiteMismatch); it holds a well-formed
// AuthResSigned (CodeMalformed); the gateway's signature and certificate
// (CodeSignature, certificate codes), which must be the gateway whose
// key-exchange certificate gateway the AuthReq was sealed to: same subject
// (CodeWrongGateway); RRPID echo (CodeRRPIDMismatch); TransIDs (CodeXIDMismatch, CodeTransIDsMismatch); AuthRes names this
// merchant and its certificate (CodeMerchantMismatch); an approved amount is
// in the requested currency and not above the request (CodeAmountMismatch).
func VerifyAuthRes(t *Trust, keys *MerchantKeys, gateway *Cert, sent *AuthReqData, res *AuthRes) (*AuthResData, error) {
	signed, signer, err := openSigned[AuthResData](t, keys.KE, &res.Sealed, labelSealAuthRes, labelSigAuthRes, CertGatewaySignature)
	if err != nil {
		return nil, err
	}
	if err := sameGateway(signer, gateway); err != nil {
		return nil, err
	}
	d := &signed.Data
	if d.RRPID != sent.RRPID {
		return nil, fail(CodeRRPIDMismatch, "AuthRes does not echo the AuthReq RRPID")
	}
	if err := compareTransIDs(&d.TransIDs, &sent.TransIDs, "AuthRes"); err != nil {
		return nil, err
	}
	if d.MerchantID != keys.Sig.Cert.MerchantID() || d.MerchantThumb != keys.Sig.Cert.Thumb {
		return nil, fail(CodeMerchantMismatch, "AuthRes names merchant %q, not this merchant", d.MerchantID)
	}
	if d.Result == AuthApproved && (d.AuthAmt.Currency != sent.AuthAmt.Currency || d.AuthAmt.Value > sent.AuthAmt.Value) {
		return nil, fail(CodeAmountMismatch, "AuthRes approves %d in currency %d; %d in currency %d was asked",
			d.AuthAmt.Value, d.AuthAmt.Currency, sent.AuthAmt.Value, sent.AuthAmt.Currency)
	}
	return d, nil
}

// NewPRes signs the merchant's purchase response for the PReq whose OIData is
// oi. authAmt is set for PurchApproved, reason for PurchDeclined.
func NewPRes(key *SigningKey, oi *OIData, status PurchStatus, authAmt *Amount, reason DeclineReason) (*PRes, error) {
	d := PResData{TransIDs: oi.TransIDs, RRPID: oi.RRPID, ChallC: oi.ChallC, Status: status, AuthAmt: authAmt, Reason: reason}
	signed, err := newSigned[PResData](key, labelSigPRes, d, key.Chain)
	if err != nil {
		return nil, err
	}
	return &PRes{*signed}, nil
}

// NewCapReq signs a capture batch and seals it to the gateway.
func NewCapReq(keys *MerchantKeys, gateway *Cert, rrpid RRPID, batchID int64, items []CapItem, rnd io.Reader) (*CapReq, *CapReqData, error) {
	if len(items) == 0 || len(items) > MaxCapItems {
		return nil, nil, fail(CodeMalformed, "a capture batch holds 1 to %d items, not %d", MaxCapItems, len(items))
	}
	d := CapReqData{RRPID: rrpid, BatchID: batchID, MerchantKE: keys.KE.Cert.Thumb, Items: items}
	signed, err := newSigned[CapReqData](keys.Sig, labelSigCapReq, d, keys.chain())
	if err != nil {
		return nil, nil, err
	}
	env, err := sealTo(rnd, gateway, labelSealCapReq, encode(signed), nil)
	if err != nil {
		return nil, nil, err
	}
	return &CapReq{Sealed: env}, &signed.Data, nil
}

// VerifyCapRes is the merchant's check of CapRes against the CapReq it sent:
// envelope, gateway signature (by the gateway of the key-exchange
// certificate gateway, as in VerifyAuthRes), RRPID echo, merchant and batch named, and one
// result per item in order, none capturing more than was asked.
func VerifyCapRes(t *Trust, keys *MerchantKeys, gateway *Cert, sent *CapReqData, res *CapRes) (*CapResData, error) {
	signed, signer, err := openSigned[CapResData](t, keys.KE, &res.Sealed, labelSealCapRes, labelSigCapRes, CertGatewaySignature)
	if err != nil {
		return nil, err
	}
	if err := sameGateway(signer, gateway); err != nil {
		return nil, err
	}
	d := &signed.Data
	if d.RRPID != sent.RRPID {
		return nil, fail(CodeRRPIDMismatch, "CapRes does not echo the CapReq RRPID")
	}
	if d.MerchantID != keys.Sig.Cert.MerchantID() || d.BatchID != sent.BatchID {
		return nil, fail(CodeMerchantMismatch, "CapRes names merchant %q batch %d", d.MerchantID, d.BatchID)
	}
	if len(d.Items) != len(sent.Items) {
		return nil, fail(CodeTransIDsMismatch, "CapRes has %d results for %d items", len(d.Items), len(sent.Items))
	}
	for i := range d.Items {
		got, want := &d.Items[i], &sent.Items[i]
		if got.XID != want.TransIDs.XID {
			return nil, fail(CodeXIDMismatch, "CapRes item %d names another transaction", i)
		}
		if got.CapAmt.Value > want.CapAmt.Value || (got.CapAmt.Value > 0 && got.CapAmt.Currency != want.CapAmt.Currency) {
			return nil, fail(CodeAmountMismatch, "CapRes item %d captures more than asked", i)
		}
	}
	return d, nil
}

// sameGateway checks that the signer of a gateway message is the gateway the
// merchant sealed to: its signature certificate has the subject of that
// gateway's key-exchange certificate (CodeWrongGateway). Certificates carry
// no gateway identifier; the payment-gateway CA vouches for the subject of
// both.
func sameGateway(signer, sealedTo *Cert) error {
	if !bytes.Equal(signer.X509.RawSubject, sealedTo.X509.RawSubject) {
		return fail(CodeWrongGateway, "signed by gateway %q, the merchant sealed to gateway %q", signer.X509.Subject.CommonName, sealedTo.X509.Subject.CommonName)
	}
	return nil
}

// dedup removes repeated certificates, keeping the first occurrence.
func dedup(certs [][]byte) [][]byte {
	var out [][]byte
	seen := map[Thumbprint]bool{}
	for _, c := range certs {
		th := ThumbprintOf(c)
		if !seen[th] {
			seen[th] = true
			out = append(out, c)
		}
	}
	return out
}
