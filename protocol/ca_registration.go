package protocol

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"slices"

	"github.com/cloudflare/circl/kem"
)

// This file is the CA's side of registration: the stateless checks and the
// construction of replies. What needs the CA's records (which challenges
// it issued and which were used, the issuer's accounts, the enrollment
// lists, which keys it certified) is in package ca.

// CAKeys are a role CA's registration keys: the signature key its replies
// are signed with and the key-exchange key requests are sealed to.
type CAKeys struct {
	Sig *SigningKey
	KE  *KeyExchangeKey
}

// Suite returns the suite of the keys.
func (k *CAKeys) Suite() Suite { return k.Sig.Suite() }

// certs returns the CA's registration chain and key-exchange certificate,
// less those the applicant holds.
func (k *CAKeys) certs(thumbs []Thumbprint) [][]byte {
	return certsWithout(dedup(append(slices.Clone(k.Sig.Chain), k.KE.Chain...)), thumbs)
}

// checkInitReq checks what the CA checks of an init request in itself: the
// suite is the CA's (CodeSuiteMismatch) and the role is the CA's
// (CodeRequestType).
func (k *CAKeys) checkInitReq(s Suite, r Role) error {
	if !s.Valid() {
		return fail(CodeUnknownSuite, "suite %d", s)
	}
	if s != k.Suite() {
		return fail(CodeSuiteMismatch, "request for suite %s to a CA of suite %s", s, k.Suite())
	}
	if want := r.CAType(); want != k.Sig.Cert.Type.Issuer() {
		return fail(CodeRequestType, "a %s registers with the %s, not the %s", r, want, k.Sig.Cert.Type.Issuer())
	}
	return nil
}

// NewCardCInitRes answers a CardCInitReq (CodeSuiteMismatch, CodeRequestType
// if the request is not for this CA).
func (k *CAKeys) NewCardCInitRes(req *CardCInitReq, bci *BCI) (*CardCInitRes, error) {
	if err := k.checkInitReq(req.Suite, RoleCardholder); err != nil {
		return nil, err
	}
	d := CAInitData{RRPID: req.RRPID, LIDEE: req.LIDEE, ChallEE: req.ChallEE, Suite: req.Suite, CAEThumb: k.KE.Cert.Thumb, BCI: bci}
	s, err := newSigned[CAInitData](k.Sig, labelSigCardCInitRes, d, k.certs(req.Thumbs))
	if err != nil {
		return nil, err
	}
	return &CardCInitRes{*s}, nil
}

// CheckMeAqCInitReq checks a Me-AqCInitReq in itself (suite and role, as
// for CardCInitReq; an acquirer BIN exactly for merchants, CodeMalformed).
func (k *CAKeys) CheckMeAqCInitReq(req *MeAqCInitReq) error {
	if err := k.checkInitReq(req.Suite, req.Role); err != nil {
		return err
	}
	if (req.Role == RoleMerchant) != (req.Identity.AcquirerBIN != "") {
		return fail(CodeMalformed, "a merchant identity has an acquirer BIN, a gateway's none")
	}
	return nil
}

// NewMeAqCInitRes answers a checked Me-AqCInitReq, opening session s.
func (k *CAKeys) NewMeAqCInitRes(req *MeAqCInitReq, s CASession, bci *BCI) (*MeAqCInitRes, error) {
	if err := k.CheckMeAqCInitReq(req); err != nil {
		return nil, err
	}
	d := CAInitData{RRPID: req.RRPID, LIDEE: req.LIDEE, ChallEE: req.ChallEE, Suite: req.Suite, CAEThumb: k.KE.Cert.Thumb, Session: &s, BCI: bci}
	signed, err := newSigned[CAInitData](k.Sig, labelSigMeAqCInitRes, d, k.certs(req.Thumbs))
	if err != nil {
		return nil, err
	}
	return &MeAqCInitRes{*signed}, nil
}

// OpenRegFormReq opens a RegFormReq (CodeUnknownSuite, CodeSuiteMismatch,
// CodeDecrypt, CodeMalformed) and checks its PAN (CodeCardData).
func (k *CAKeys) OpenRegFormReq(req *RegFormReq) (*RegFormReqData, error) {
	pt, err := k.KE.open(&req.Envelope, 0, labelSealRegFormReq, nil)
	if err != nil {
		return nil, err
	}
	d, err := decode[RegFormReqData](pt, "RegFormReqData")
	if err != nil {
		return nil, err
	}
	if _, err := NewPAN(d.PAN.digits); err != nil {
		return nil, err
	}
	return d, nil
}

// NewRegFormRes answers a RegFormReq with the issuer's form in session s.
func (k *CAKeys) NewRegFormRes(req *RegFormReqData, s CASession, bci *BCI) (*RegFormRes, error) {
	d := RegFormResData{RRPID: req.RRPID, LIDEE: req.LIDEE, ChallEE2: req.ChallEE2, Session: s, BCI: bci}
	signed, err := newSigned[RegFormResData](k.Sig, labelSigRegFormRes, d, nil)
	if err != nil {
		return nil, err
	}
	return &RegFormRes{*signed}, nil
}

// CertRequest is an opened and verified CertReq: the request, the keys it
// asks to certify (parsed), who signed it, and the key of the reply.
type CertRequest struct {
	Data CertReqData
	// SignerKey is the SubjectPublicKeyInfo of the key that signed the
	// request (the new signature key, or the current certificate's key).
	SignerKey []byte
	// Current is the applicant's current signature certificate when it,
	// not a new key, signed the request.
	Current        *Cert
	SignatureKey   crypto.PublicKey
	KeyExchangeKey kem.PublicKey
	TLSKey         crypto.PublicKey
	respKey        []byte
}

// OpenCertReq opens and verifies a CertReq. In order:
//   - the envelope opens (CodeUnknownSuite, CodeSuiteMismatch, CodeDecrypt)
//     and the signed request decodes (CodeMalformed);
//   - the request is for this CA's role and carries what the role needs:
//     card data for a cardholder, an identity for a merchant or gateway,
//     at least one key, no key-exchange key for a cardholder
//     (CodeRequestType, CodeMalformed);
//   - the keys parse and belong to the suite (CodeCertKeyType);
//   - the signature: by the new signature key, named by its KeyThumbprint,
//     or by the applicant's current signature certificate of the role
//     (CodeSignature and the certificate codes);
//   - a current certificate names the identity the request carries
//     (CodeIdentityMismatch; the fix of the merchant-registration flaw).
//
// What needs the CA's records (session, replay, issuer, enrollment, fresh
// keys) is checked by the caller.
func (k *CAKeys) OpenCertReq(t *Trust, req *CertReq) (*CertRequest, error) {
	s := k.Suite()
	if !req.Suite.Valid() {
		return nil, fail(CodeUnknownSuite, "envelope suite %d", req.Suite)
	}
	if req.Suite != s {
		return nil, fail(CodeSuiteMismatch, "CertReq sealed under suite %s, CA uses %s", req.Suite, s)
	}
	if req.Recipient != k.KE.Cert.Thumb {
		return nil, fail(CodeDecrypt, "CertReq sealed for another recipient")
	}
	pt, key, err := s.openExport(k.KE.key, labelSealCertReq, req.Enc, req.Ciphertext, nil)
	if err != nil {
		return nil, fail(CodeDecrypt, "CertReq does not open")
	}
	signed, err := decode[CertReqSigned](pt, "CertReqSigned")
	if err != nil {
		return nil, err
	}
	d := &signed.Data
	if err := k.checkInitReq(s, d.Role); err != nil {
		return nil, err
	}
	out := &CertRequest{Data: *d, respKey: key}
	switch {
	case d.Role == RoleCardholder && (d.Account == nil || d.Identity != nil || d.KeyExchangeKey != nil):
		return nil, fail(CodeRequestType, "a cardholder CertReq carries card data, no identity and no key-exchange key")
	case d.Role != RoleCardholder && (d.Identity == nil || d.Account != nil):
		return nil, fail(CodeRequestType, "a %s CertReq carries an identity and no card data", d.Role)
	case d.SignatureKey == nil && d.KeyExchangeKey == nil && d.TLSKey == nil:
		return nil, fail(CodeRequestType, "CertReq asks to certify no key")
	case (d.RequestType == RequestRenewal) != (d.Renews != nil):
		return nil, fail(CodeRequestType, "a renewal, and only a renewal, names the certificate it renews")
	case d.Role != RoleCardholder && (d.Role == RoleMerchant) != (d.Identity.AcquirerBIN != ""):
		return nil, fail(CodeMalformed, "a merchant identity has an acquirer BIN, a gateway's none")
	}
	if d.SignatureKey != nil {
		if out.SignatureKey, err = parseSigningSPKI(d.SignatureKey, s); err != nil {
			return nil, err
		}
	}
	if d.KeyExchangeKey != nil {
		ks, pub, err := ParseKEMPublicKey(d.KeyExchangeKey)
		if err != nil {
			return nil, err
		}
		if ks != s {
			return nil, fail(CodeCertKeyType, "key-exchange key of suite %s, CA uses %s", ks, s)
		}
		if spki, err := MarshalKEMPublicKey(pub); err != nil || !bytes.Equal(spki, d.KeyExchangeKey) {
			return nil, fail(CodeCertKeyType, "key-exchange key is not in its canonical encoding")
		}
		out.KeyExchangeKey = pub
	}
	if d.TLSKey != nil {
		if out.TLSKey, err = parseSigningSPKI(d.TLSKey, 0); err != nil {
			return nil, err
		}
	}
	tbs := encode(d)
	if d.SignatureKey != nil {
		if signed.Signature.Signer != KeyThumbprint(d.SignatureKey) {
			return nil, fail(CodeSignature, "CertReq with a new signature key is not signed by it")
		}
		if signed.Signature.Suite != s || !s.verify(out.SignatureKey, labelSigCertReq, tbs, signed.Signature.Value) {
			return nil, fail(CodeSignature, "CertReq signature by the new key does not verify")
		}
		out.SignerKey = d.SignatureKey
	} else {
		sigT, _, _ := d.Role.CertTypes()
		cur, err := verifySignature(t, &signed.Signature, signed.Certificates, sigT, s, labelSigCertReq, tbs, CodeSignature)
		if err != nil {
			return nil, err
		}
		out.Current, out.SignerKey = cur, cur.X509.RawSubjectPublicKeyInfo
		if err := identityMatches(cur, d.Identity); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// identityMatches checks that the identity inside a request signed by a
// current certificate is the certificate holder's.
func identityMatches(c *Cert, id *Identity) error {
	switch c.Type {
	case CertMerchantSignature:
		if id == nil || c.Merchant == nil || c.Merchant.MerchantID != id.ID || c.Merchant.AcquirerBIN != id.AcquirerBIN {
			return fail(CodeIdentityMismatch, "the request names a merchant other than its signer")
		}
	case CertGatewaySignature:
		if id == nil || c.X509.Subject.CommonName != id.ID {
			return fail(CodeIdentityMismatch, "the request names a gateway other than its signer")
		}
	}
	return nil
}

// parseSigningSPKI parses a signature or TLS key: Ed25519 or ECDSA P-256,
// of suite s unless s is 0, in its canonical encoding: x509 accepts elements
// appended inside a SubjectPublicKeyInfo, and such a variant would give a
// key another KeyThumbprint (a way around a byte-wise freshness check) and
// other bytes than the certificate the CA issues for it.
func parseSigningSPKI(spki []byte, s Suite) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, failWrap(CodeCertKeyType, err, "signature key")
	}
	if canon, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(canon, spki) {
		return nil, fail(CodeCertKeyType, "signature key is not in its canonical encoding")
	}
	ks, ok := suiteOfSigningKey(pub)
	if !ok {
		return nil, fail(CodeCertKeyType, "signature key is neither Ed25519 nor ECDSA P-256")
	}
	if s != 0 && ks != s {
		return nil, fail(CodeCertKeyType, "signature key of suite %s, CA uses %s", ks, s)
	}
	return pub, nil
}

// NewCertRes answers req: d is signed with the CA's registration key and
// encrypted under the key exported from req's envelope. The caller fills
// the status, certificates and NonceCCA; the echo fields come from req.
func (k *CAKeys) NewCertRes(req *CertRequest, d CertResData, chain [][]byte) (*CertRes, error) {
	d.RRPID, d.LIDEE, d.ChallEE = req.Data.RRPID, req.Data.LIDEE, req.Data.ChallEE3
	sr, err := k.sealResponse(req.respKey, labelSealCertRes, d, chain)
	if err != nil {
		return nil, err
	}
	return &CertRes{*sr}, nil
}

func (k *CAKeys) sealResponse(key []byte, label string, d CertResData, chain [][]byte) (*SealedResponse, error) {
	signed, err := newSigned[CertResData](k.Sig, labelSigCertRes, d, chain)
	if err != nil {
		return nil, err
	}
	ct, err := k.Suite().sealResponse(key, label, encode(signed))
	if err != nil {
		return nil, err
	}
	return &SealedResponse{Suite: k.Suite(), Ciphertext: ct}, nil
}

// CertInquiry is an opened CertInqReq whose signature is still to be
// checked against the pending request (Verify).
type CertInquiry struct {
	Data    CertInqReqData
	signed  *CertInqSigned
	respKey []byte
}

// OpenCertInqReq opens a CertInqReq (CodeUnknownSuite, CodeSuiteMismatch,
// CodeDecrypt, CodeMalformed).
func (k *CAKeys) OpenCertInqReq(req *CertInqReq) (*CertInquiry, error) {
	s := k.Suite()
	if !req.Suite.Valid() {
		return nil, fail(CodeUnknownSuite, "envelope suite %d", req.Suite)
	}
	if req.Suite != s {
		return nil, fail(CodeSuiteMismatch, "CertInqReq sealed under suite %s, CA uses %s", req.Suite, s)
	}
	if req.Recipient != k.KE.Cert.Thumb {
		return nil, fail(CodeDecrypt, "CertInqReq sealed for another CA key")
	}
	pt, key, err := s.openExport(k.KE.key, labelSealCertInqReq, req.Enc, req.Ciphertext, nil)
	if err != nil {
		return nil, fail(CodeDecrypt, "CertInqReq does not open")
	}
	signed, err := decode[CertInqSigned](pt, "CertInqSigned")
	if err != nil {
		return nil, err
	}
	return &CertInquiry{Data: signed.Data, signed: signed, respKey: key}, nil
}

// Verify checks that the inquiry is signed by the key that signed the
// pending request (signerSPKI, from the CA's records): CodeSignature.
func (q *CertInquiry) Verify(s Suite, signerSPKI []byte) error {
	pub, err := parseSigningSPKI(signerSPKI, s)
	if err != nil {
		return err
	}
	sig := &q.signed.Signature
	if sig.Signer != KeyThumbprint(signerSPKI) || sig.Suite != s || !s.verify(pub, labelSigCertInqReq, encode(&q.Data), sig.Value) {
		return fail(CodeSignature, "CertInqReq is not signed by the key of the pending request")
	}
	return nil
}

// NewCertInqRes answers an inquiry like NewCertRes.
func (k *CAKeys) NewCertInqRes(q *CertInquiry, d CertResData, chain [][]byte) (*CertInqRes, error) {
	d.RRPID, d.LIDEE, d.ChallEE = q.Data.RRPID, q.Data.LIDEE, q.Data.ChallEE4
	sr, err := k.sealResponse(q.respKey, labelSealCertInqRes, d, chain)
	if err != nil {
		return nil, err
	}
	return &CertInqRes{*sr}, nil
}
