package protocol

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"io"
	"slices"

	"github.com/cloudflare/circl/kem"
)

// This file is the applicant's side of registration (cardholder, merchant
// or gateway): a Registration builds each request and checks each reply of
// one registration, in order.

// Registration is one registration in progress, on the applicant's side.
// Create it with the role, suite, brand and Trust; then, for a cardholder,
// CardCInitReq / CheckCardCInitRes, RegFormReq / CheckRegFormRes, CertReq /
// CheckCertRes; for a merchant or gateway, MeAqCInitReq / CheckMeAqCInitRes,
// CertReq / CheckCertRes. A pending CertRes is followed by CertInqReq /
// CheckCertRes until the certificates come.
type Registration struct {
	Role     Role
	Suite    Suite
	Brand    string
	Language string
	Trust    *Trust
	// Rand supplies RRPIDs, challenges and HPKE randomness; with a fixed
	// reader every request is reproducible.
	Rand  io.Reader
	LIDEE []byte

	// Learned from the CA's replies.
	CASig   *Cert      // the CA's registration signature certificate
	CAKE    *Cert      // the CA's registration key-exchange certificate
	Session *CASession // lid-CA, chall-CA, the form
	BCI     *BCI       // the latest BCI the CA sent, if any
	caCerts [][]byte   // the certificates of the init reply

	// The exchange in flight.
	rrpid     RRPID
	chall     Challenge
	respKey   []byte
	resLabel  string
	certReq   *CertReqData
	signer    crypto.Signer
	signerSPK []byte // SPKI of signer
	signerCrt [][]byte
	requestID *RequestID
}

func (r *Registration) fresh() error {
	if _, err := io.ReadFull(r.Rand, r.rrpid[:]); err != nil {
		return err
	}
	_, err := io.ReadFull(r.Rand, r.chall[:])
	return err
}

// CardCInitReq starts a cardholder registration.
func (r *Registration) CardCInitReq(thumbs []Thumbprint) (*CardCInitReq, error) {
	if r.Role != RoleCardholder {
		return nil, fail(CodeRequestType, "CardCInitReq is for cardholders, not a %s", r.Role)
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	return &CardCInitReq{RRPID: r.rrpid, LIDEE: r.LIDEE, ChallEE: r.chall, BrandID: r.Brand, Suite: r.Suite, Thumbs: thumbs}, nil
}

// MeAqCInitReq starts a merchant or gateway registration.
func (r *Registration) MeAqCInitReq(id Identity, rt RequestType, thumbs []Thumbprint) (*MeAqCInitReq, error) {
	if r.Role != RoleMerchant && r.Role != RoleGateway {
		return nil, fail(CodeRequestType, "Me-AqCInitReq is for merchants and gateways, not a %s", r.Role)
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	return &MeAqCInitReq{RRPID: r.rrpid, LIDEE: r.LIDEE, ChallEE: r.chall, Role: r.Role, RequestType: rt,
		Identity: id, BrandID: r.Brand, Suite: r.Suite, Language: r.Language, Thumbs: thumbs}, nil
}

// CheckCardCInitRes checks the cardholder CA's reply. held are certificates
// the applicant listed in Thumbs. In order: the signature by a
// cardholder-CA signature certificate of the suite (CodeSignature and the
// certificate codes); RRPID (CodeRRPIDMismatch); LID-EE and Chall-EE
// (CodeChallEEMismatch); the suite (CodeSuiteMismatch); the key-exchange
// certificate caeThumb names, issued by the same CA (certificate codes).
func (r *Registration) CheckCardCInitRes(res *CardCInitRes, held [][]byte) error {
	return r.checkInit(&res.Signed, labelSigCardCInitRes, held, false)
}

// CheckMeAqCInitRes checks the merchant or gateway CA's reply like
// CheckCardCInitRes, and that it opens a session (CodeMalformed otherwise).
func (r *Registration) CheckMeAqCInitRes(res *MeAqCInitRes, held [][]byte) error {
	return r.checkInit(&res.Signed, labelSigMeAqCInitRes, held, true)
}

func (r *Registration) checkInit(res *Signed[CAInitData, *CAInitData], label string, held [][]byte, session bool) error {
	sigType, keType, _ := r.Role.CAType().RegistrationTypes()
	d := &res.Data
	certs := append(slices.Clip(res.Certificates), held...)
	ca, err := verifySignature(r.Trust, &res.Signature, certs, sigType, r.Suite, label, encode(d), CodeSignature)
	if err != nil {
		return err
	}
	if err := r.echo(d.RRPID, d.LIDEE, d.ChallEE); err != nil {
		return err
	}
	if d.Suite != r.Suite {
		return fail(CodeSuiteMismatch, "CA answered for suite %s, applicant asked for %s", d.Suite, r.Suite)
	}
	if session != (d.Session != nil) {
		return fail(CodeMalformed, "CA reply opens a registration session where it must not, or none where it must")
	}
	ke, err := r.Trust.Verify(certs, d.CAEThumb, keType, r.Suite)
	if err != nil {
		return err
	}
	if !bytes.Equal(ke.X509.RawIssuer, ca.X509.RawIssuer) || !bytes.Equal(ke.X509.RawSubject, ca.X509.RawSubject) {
		return fail(CodeCertRole, "the CA's key-exchange and signature certificates name different holders")
	}
	r.CASig, r.CAKE, r.Session, r.BCI, r.caCerts = ca, ke, d.Session, d.BCI, certs
	return nil
}

// echo checks the echo of the applicant's RRPID, LID-EE and challenge.
func (r *Registration) echo(rrpid RRPID, lid []byte, chall Challenge) error {
	if rrpid != r.rrpid {
		return fail(CodeRRPIDMismatch, "CA reply does not echo the request's RRPID")
	}
	if !bytes.Equal(lid, r.LIDEE) || chall != r.chall {
		return fail(CodeChallEEMismatch, "CA reply does not echo LID-EE and the applicant's challenge")
	}
	return nil
}

// RegFormReq asks the cardholder CA for the issuer's form for pan.
func (r *Registration) RegFormReq(pan PAN, rt RequestType) (*RegFormReq, error) {
	if r.CAKE == nil || r.Role != RoleCardholder {
		return nil, fail(CodeUnexpectedMessage, "RegFormReq before a checked CardCInitRes")
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	d := RegFormReqData{RRPID: r.rrpid, LIDEE: r.LIDEE, ChallEE2: r.chall, RequestType: rt, Language: r.Language, PAN: pan}
	env, err := sealTo(r.Rand, r.CAKE, labelSealRegFormReq, encode(&d), nil)
	if err != nil {
		return nil, err
	}
	return &RegFormReq{env}, nil
}

// CheckRegFormRes checks the cardholder CA's RegFormRes: signed by the same
// CA registration certificate as CardCInitRes (CodeSignature, certificate
// codes), RRPID (CodeRRPIDMismatch), LID-EE and Chall-EE2
// (CodeChallEEMismatch). It returns the form to fill.
func (r *Registration) CheckRegFormRes(res *RegFormRes) (*RegForm, error) {
	if r.CASig == nil {
		return nil, fail(CodeUnexpectedMessage, "RegFormRes before a checked CardCInitRes")
	}
	d := &res.Data
	if err := r.caSigned(&res.Signature, res.Certificates, labelSigRegFormRes, encode(d)); err != nil {
		return nil, err
	}
	if err := r.echo(d.RRPID, d.LIDEE, d.ChallEE2); err != nil {
		return nil, err
	}
	r.Session = &d.Session
	if d.BCI != nil {
		r.BCI = d.BCI
	}
	return &d.Session.Form, nil
}

// caSigned checks a signature by the CA registration certificate learned
// from the init reply.
func (r *Registration) caSigned(sig *Signature, certs [][]byte, label string, tbs []byte) error {
	if sig.Signer != r.CASig.Thumb {
		return fail(CodeCertRole, "%s is signed by another certificate than the CA's", label)
	}
	_, err := verifySignature(r.Trust, sig, slices.Concat(certs, r.caCerts), r.CASig.Type, r.Suite, label, tbs, CodeSignature)
	return err
}

// CertReqParams is what an applicant asks to certify.
type CertReqParams struct {
	RequestType RequestType
	// Account is the cardholder's card data (CardSecret is its fresh
	// secret); Identity the merchant's or gateway's.
	Account    *AccountData
	Identity   *Identity
	FormValues []FormValue
	// SignatureKey is the new signature key to certify; it signs the
	// request. Without one, Current (the applicant's certificate) signs.
	SignatureKey   crypto.Signer
	Current        *SigningKey
	KeyExchangeKey kem.PublicKey
	TLSKey         crypto.PublicKey
	Renews         *Thumbprint
}

// CertReq builds the signed and sealed certificate request.
func (r *Registration) CertReq(p CertReqParams) (*CertReq, error) {
	if r.Session == nil || r.CAKE == nil {
		return nil, fail(CodeUnexpectedMessage, "CertReq before the CA opened a session")
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	d := CertReqData{RRPID: r.rrpid, Role: r.Role, RequestType: p.RequestType, LIDEE: r.LIDEE, ChallEE3: r.chall,
		LIDCA: r.Session.LIDCA, ChallCA: r.Session.ChallCA, Identity: p.Identity, Account: p.Account,
		FormValues: p.FormValues, Renews: p.Renews}
	var err error
	if p.SignatureKey != nil {
		if d.SignatureKey, err = x509.MarshalPKIXPublicKey(p.SignatureKey.Public()); err != nil {
			return nil, err
		}
		r.signer, r.signerSPK, r.signerCrt = p.SignatureKey, d.SignatureKey, nil
	} else if p.Current != nil {
		spk, err := x509.MarshalPKIXPublicKey(p.Current.key.Public())
		if err != nil {
			return nil, err
		}
		r.signer, r.signerSPK, r.signerCrt = p.Current.key, spk, p.Current.Chain
	} else {
		return nil, fail(CodeRequestType, "a CertReq is signed by a new signature key or by the current certificate")
	}
	if p.KeyExchangeKey != nil {
		if d.KeyExchangeKey, err = MarshalKEMPublicKey(p.KeyExchangeKey); err != nil {
			return nil, err
		}
	}
	if p.TLSKey != nil {
		if d.TLSKey, err = x509.MarshalPKIXPublicKey(p.TLSKey); err != nil {
			return nil, err
		}
	}
	signer := KeyThumbprint(r.signerSPK)
	if r.signerCrt != nil {
		signer = p.Current.Cert.Thumb
	}
	signed, err := r.signAndSeal(&d, signer, labelSigCertReq, labelSealCertReq)
	if err != nil {
		return nil, err
	}
	r.certReq, r.resLabel = &d, labelSealCertRes
	return &CertReq{*signed}, nil
}

// signAndSeal signs data with r.signer and seals the signed structure to the
// CA, keeping the exported response key.
func (r *Registration) signAndSeal(data interface{ codec }, signer Thumbprint, sigLabel, sealLabel string) (*Envelope, error) {
	v, err := r.Suite.sign(r.signer, sigLabel, encode(data))
	if err != nil {
		return nil, err
	}
	sig := Signature{Suite: r.Suite, Signer: signer, Value: v}
	var b []byte
	switch d := data.(type) {
	case *CertReqData:
		b = encode(&CertReqSigned{Data: *d, Signature: sig, Certificates: r.signerCrt})
	case *CertInqReqData:
		b = encode(&CertInqSigned{Data: *d, Signature: sig})
	}
	enc, ct, key, err := r.Suite.sealExport(r.Rand, r.CAKE.kemPub, sealLabel, b, nil)
	if err != nil {
		return nil, err
	}
	r.respKey = key
	return &Envelope{Suite: r.Suite, Recipient: r.CAKE.Thumb, Enc: enc, Ciphertext: ct}, nil
}

// CertInqReq asks about the pending request the last CertRes named.
func (r *Registration) CertInqReq() (*CertInqReq, error) {
	if r.requestID == nil {
		return nil, fail(CodeUnexpectedMessage, "no pending request to ask about")
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	d := CertInqReqData{RRPID: r.rrpid, LIDEE: r.LIDEE, ChallEE4: r.chall, RequestID: *r.requestID}
	env, err := r.signAndSeal(&d, KeyThumbprint(r.signerSPK), labelSigCertInqReq, labelSealCertInqReq)
	if err != nil {
		return nil, err
	}
	r.resLabel = labelSealCertInqRes
	return &CertInqReq{*env}, nil
}

// Issued is the outcome of a registration: the new certificates, each with
// its chain (leaf first, up to but excluding the root), and the cardholder's
// PANSecret.
type Issued struct {
	Signature   [][]byte
	KeyExchange [][]byte
	TLS         [][]byte
	PANSecret   Secret
}

// CheckCertRes opens and checks the CA's CertRes (or CertInqRes) to the
// last CertReq (or CertInqReq). In order: the response opens with the key
// exported from the request (CodeDecrypt); the signature by the CA's
// registration certificate (CodeSignature, certificate codes); RRPID
// (CodeRRPIDMismatch); LID-EE and challenge (CodeChallEEMismatch). A pending
// answer returns (nil, nil) and keeps the request id for CertInqReq. An
// issued answer must certify exactly the keys asked for, with certificates
// of the role's types that verify (certificate codes, CodeCertKeyType for
// another key); a cardholder's certificate must carry the account hash of
// its card under PANSecret = CardSecret XOR NonceCCA (CodeAccountHash).
func (r *Registration) CheckCertRes(res Message) (*Issued, error) {
	var sr *SealedResponse
	switch m := res.(type) {
	case *CertRes:
		sr = &m.SealedResponse
	case *CertInqRes:
		sr = &m.SealedResponse
	default:
		return nil, fail(CodeUnexpectedMessage, "want CertRes or CertInqRes, got %s", res.Type())
	}
	if (r.resLabel == labelSealCertRes) != (res.Type() == TypeCertRes) || r.respKey == nil {
		return nil, fail(CodeUnexpectedMessage, "%s does not answer the request in flight", res.Type())
	}
	if sr.Suite != r.Suite {
		return nil, fail(CodeSuiteMismatch, "%s under suite %s, want %s", res.Type(), sr.Suite, r.Suite)
	}
	pt, err := r.Suite.openResponse(r.respKey, r.resLabel, sr.Ciphertext)
	if err != nil {
		return nil, fail(CodeDecrypt, "%s does not open with the request's key", res.Type())
	}
	signed, err := decode[CertResSigned](pt, "CertResSigned")
	if err != nil {
		return nil, err
	}
	d := &signed.Data
	if err := r.caSigned(&signed.Signature, signed.Certificates, labelSigCertRes, encode(d)); err != nil {
		return nil, err
	}
	if err := r.echo(d.RRPID, d.LIDEE, d.ChallEE); err != nil {
		return nil, err
	}
	if d.BCI != nil {
		r.BCI = d.BCI
	}
	switch {
	case d.Status == CertPending && d.RequestID != nil && len(d.Issued) == 0:
		r.requestID = d.RequestID
		return nil, nil
	case d.Status != CertIssued || len(d.Issued) == 0:
		return nil, fail(CodeMalformed, "%s is neither issued with certificates nor pending with a request id", res.Type())
	}
	return r.checkIssued(d, signed.Certificates)
}

// checkIssued checks the certificates of an issued CertRes against the
// request.
func (r *Registration) checkIssued(d *CertResData, chain [][]byte) (*Issued, error) {
	req := r.certReq
	sigT, keT, tlsT := r.Role.CertTypes()
	out := &Issued{}
	pool := slices.Concat(d.Issued, chain)
	want := map[CertType][]byte{}
	if req.SignatureKey != nil {
		want[sigT] = req.SignatureKey
	}
	if req.KeyExchangeKey != nil {
		want[keT] = req.KeyExchangeKey
	}
	if req.TLSKey != nil {
		want[tlsT] = req.TLSKey
	}
	if len(d.Issued) != len(want) {
		return nil, fail(CodeCertRole, "CA issued %d certificates for %d keys", len(d.Issued), len(want))
	}
	for _, der := range d.Issued {
		c, err := ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		spki, ok := want[c.Type]
		if !ok {
			return nil, fail(CodeCertRole, "CA issued an unasked-for %s certificate", c.Type)
		}
		delete(want, c.Type)
		if !bytes.Equal(c.X509.RawSubjectPublicKeyInfo, spki) {
			return nil, fail(CodeCertKeyType, "the %s certificate certifies another key", c.Type)
		}
		suite := r.Suite
		if c.Type.IsTLS() {
			suite = 0
		}
		if _, err := r.Trust.Verify(pool, c.Thumb, c.Type, suite); err != nil {
			return nil, err
		}
		if err := r.checkHolder(c, req); err != nil {
			return nil, err
		}
		full := append([][]byte{der}, chainOf(c, chain)...)
		switch c.Type {
		case sigT:
			out.Signature = full
		case keT:
			out.KeyExchange = full
		case tlsT:
			out.TLS = full
		}
		if c.Type == CertCardholderSignature {
			if req.Account == nil || d.NonceCCA == nil {
				return nil, fail(CodeAccountHash, "cardholder certificate without account data or NonceCCA")
			}
			out.PANSecret = PANSecret(req.Account.CardSecret, *d.NonceCCA)
			h := AccountHash(r.Suite, req.Account.PAN, req.Account.CardExpiry, out.PANSecret)
			if c.AccountHash == nil || *c.AccountHash != h {
				return nil, fail(CodeAccountHash, "the certificate's account hash is not that of the card under PANSecret")
			}
		}
	}
	return out, nil
}

// checkHolder checks that an issued certificate names the applicant: the
// brand asked for, and the merchant's or gateway's identity of the request
// (CodeIdentityMismatch).
func (r *Registration) checkHolder(c *Cert, req *CertReqData) error {
	if c.Brand != r.Brand && !c.Type.IsTLS() {
		return fail(CodeIdentityMismatch, "the %s certificate is of brand %q, not %q", c.Type, c.Brand, r.Brand)
	}
	id := req.Identity
	switch c.Type {
	case CertMerchantSignature, CertMerchantKeyExchange:
		if id == nil || c.Merchant.MerchantID != id.ID || c.Merchant.AcquirerBIN != id.AcquirerBIN {
			return fail(CodeIdentityMismatch, "the %s certificate names another merchant", c.Type)
		}
	case CertGatewaySignature, CertGatewayKeyExchange, CertGatewayTLS:
		if id == nil || c.X509.Subject.CommonName != id.ID {
			return fail(CodeIdentityMismatch, "the %s certificate names another gateway", c.Type)
		}
	}
	return nil
}

// chainOf returns the issuers of c among certs, nearest first, excluding
// self-signed roots.
func chainOf(c *Cert, certs [][]byte) [][]byte {
	var out [][]byte
	issuer := c.X509.RawIssuer
	for range MaxCertificates {
		var next []byte
		for _, d := range certs {
			x, err := x509.ParseCertificate(d)
			if err == nil && bytes.Equal(x.RawSubject, issuer) && !bytes.Equal(x.RawIssuer, x.RawSubject) {
				next = d
				issuer = x.RawIssuer
				break
			}
		}
		if next == nil {
			break
		}
		out = append(out, next)
	}
	return out
}
