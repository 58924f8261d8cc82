package protocol

import (
	"io"
	"slices"
)

// This file is the cardholder's side of the purchase: it builds PInitReq and
// PReq and checks PInitRes and PRes.

// Card is the cardholder's card record in its wallet.
type Card struct {
	PAN        PAN
	CardExpiry string // YYYYMM
	// CardSecret is the cardholder's registration secret and PANSecret =
	// CardSecret XOR NonceCCA the key of its certificate's account hash.
	// Both are zero for a cardholder without a certificate.
	CardSecret Secret
	PANSecret  Secret
}

// PurchaseTerms is what the cardholder learned from a verified PInitRes.
type PurchaseTerms struct {
	Data     PInitResData
	Merchant *Cert // the merchant's signature certificate
	Gateway  *Cert // the gateway key-exchange certificate named by PEThumb
}

// VerifyPInitRes is the cardholder's check of PInitRes against the PInitReq
// it sent. held are certificates the cardholder listed in req.Thumbs (the
// merchant may omit them). Checks, in order:
//   - the chosen suite is one C offered (CodeDowngrade);
//   - the merchant's signature, chain, role and validity (CodeSignature and the
//     certificate codes);
//   - offeredSuites echoes C's offer exactly (CodeDowngrade);
//   - RRPID and Chall-C are echoed (CodeRRPIDMismatch, CodeChallCMismatch);
//   - LID-C, LID-M (if C sent one) and language are C's (CodeTransIDsMismatch);
//   - the gateway key-exchange certificate named by PEThumb is valid
//     (certificate codes).
func VerifyPInitRes(t *Trust, req *PInitReq, res *PInitRes, held [][]byte) (*PurchaseTerms, error) {
	d := &res.Data
	if !slices.Contains(req.Suites, d.Suite) {
		return nil, fail(CodeDowngrade, "merchant chose suite %s, which the cardholder did not offer", d.Suite)
	}
	certs := append(slices.Clip(res.Certificates), held...)
	m, err := verifySignature(t, &res.Signature, certs, CertMerchantSignature, d.Suite, labelSigPInitRes, encode(d), CodeSignature)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(d.OfferedSuites, req.Suites) {
		return nil, fail(CodeDowngrade, "PInitRes echoes offered suites %v, cardholder offered %v", d.OfferedSuites, req.Suites)
	}
	if d.RRPID != req.RRPID {
		return nil, fail(CodeRRPIDMismatch, "PInitRes does not echo the PInitReq RRPID")
	}
	if d.ChallC != req.ChallC {
		return nil, fail(CodeChallCMismatch, "PInitRes does not echo Chall-C")
	}
	if !slices.Equal(d.TransIDs.LIDC, req.LIDC) || d.TransIDs.Language != req.Language ||
		(len(req.LIDM) > 0 && !slices.Equal(d.TransIDs.LIDM, req.LIDM)) {
		return nil, fail(CodeTransIDsMismatch, "PInitRes TransIDs do not carry the cardholder's LID-C, LID-M or language")
	}
	g, err := t.Verify(certs, d.PEThumb, CertGatewayKeyExchange, d.Suite)
	if err != nil {
		return nil, err
	}
	return &PurchaseTerms{Data: *d, Merchant: m, Gateway: g}, nil
}

// PReqParams is everything the cardholder puts into a PReq. All randomness is
// explicit: RRPID, ODSalt and EXNonce here, the HPKE encapsulation
// randomness from Rand, so that a fixed input gives a fixed PReq.
type PReqParams struct {
	Terms    *PurchaseTerms
	ChallC   Challenge // the one sent in PInitReq
	BrandID  string
	BIN      string
	OD       []byte // order description agreed with the merchant
	PurchAmt Amount
	RRPID    RRPID
	ODSalt   Nonce
	EXNonce  Nonce
	Card     Card
	// Key is the cardholder's signature key; nil sends the unsigned variant
	// (cardholder without a certificate).
	Key  *SigningKey
	Rand io.Reader
}

// PReqResult is a built PReq with the values the cardholder keeps.
type PReqResult struct {
	PReq *PReq
	PIMD Digest
	OIMD Digest
}

// NewPReq builds the purchase request: OIData for the merchant; PIData for
// the gateway, sealed to the gateway's key-exchange certificate with the XID
// as associated data; and, when p.Key is set, the dual signature over
// {PIMD, OIMD}. Both OIData and PIHead name the gateway (PEThumb).
func NewPReq(p *PReqParams) (*PReqResult, error) {
	s := p.Terms.Data.Suite
	if p.Key != nil && p.Key.Suite() != s {
		return nil, fail(CodeSuiteMismatch, "cardholder key is of suite %s, transaction uses %s", p.Key.Suite(), s)
	}
	if len(p.OD) > MaxOrderDescription {
		return nil, fail(CodeTooLarge, "order description of %d bytes exceeds %d", len(p.OD), MaxOrderDescription)
	}
	tids := p.Terms.Data.TransIDs
	hod := HOD(s, p.OD, p.PurchAmt, p.ODSalt)
	oi := OIData{
		TransIDs: tids,
		RRPID:    p.RRPID,
		ChallC:   p.ChallC,
		HOD:      hod,
		ODSalt:   p.ODSalt,
		ChallM:   p.Terms.Data.ChallM,
		BrandID:  p.BrandID,
		BIN:      p.BIN,
		PEThumb:  p.Terms.Gateway.Thumb,
	}
	card := p.Card
	if p.Key == nil {
		card.CardSecret, card.PANSecret = Secret{}, Secret{}
	}
	content := PIContent{
		PIData: PIData{
			PIHead: PIHead{
				TransIDs:   tids,
				HOD:        hod,
				PurchAmt:   p.PurchAmt,
				MerchantID: p.Terms.Merchant.MerchantID(),
				TransStain: TransStain(s, tids.XID, card.CardSecret),
				PEThumb:    p.Terms.Gateway.Thumb,
			},
			PANData: PANData{PAN: card.PAN, CardExpiry: card.CardExpiry, PANSecret: card.PANSecret, EXNonce: p.EXNonce},
		},
	}
	if err := content.PIData.PANData.check(); err != nil {
		return nil, err
	}
	oimd := OIMD(s, &oi)
	content.OIMD = oimd
	pimd := PIMD(s, &content.PIData)

	req := &PReq{OIData: oi}
	label := labelSealPIUnsig
	if p.Key != nil {
		label = labelSealPIDual
		ds, err := signWith(p.Key, labelDualSig, DualSignatureInput(pimd, oimd))
		if err != nil {
			return nil, err
		}
		req.PIMD = pimd
		req.PI.DualSignature = &ds
		req.PI.Certificates = p.Key.Chain
	}
	sealed, err := sealTo(p.Rand, p.Terms.Gateway, label, encode(&content), piAAD(tids.XID))
	if err != nil {
		return nil, err
	}
	req.PI.Sealed = sealed
	return &PReqResult{PReq: req, PIMD: pimd, OIMD: oimd}, nil
}

// VerifyPRes is the cardholder's check of PRes. Checks, in order: the
// signature is by the merchant of PInitRes (CodeMerchantMismatch) and
// verifies (CodeSignature and certificate codes); RRPID and Chall-C echo the
// PReq's OIData (CodeRRPIDMismatch, CodeChallCMismatch); TransIDs are the
// transaction's (CodeXIDMismatch, CodeTransIDsMismatch).
func VerifyPRes(t *Trust, terms *PurchaseTerms, oi *OIData, res *PRes, held [][]byte) (*PResData, error) {
	if res.Signature.Signer != terms.Merchant.Thumb {
		return nil, fail(CodeMerchantMismatch, "PRes is signed by another certificate than PInitRes")
	}
	certs := append(slices.Clip(res.Certificates), held...)
	certs = append(certs, terms.Merchant.X509.Raw)
	if _, err := verifySignature(t, &res.Signature, certs, CertMerchantSignature, terms.Data.Suite, labelSigPRes, encode(&res.Data), CodeSignature); err != nil {
		return nil, err
	}
	d := &res.Data
	if d.RRPID != oi.RRPID {
		return nil, fail(CodeRRPIDMismatch, "PRes does not echo the PReq RRPID")
	}
	if d.ChallC != oi.ChallC {
		return nil, fail(CodeChallCMismatch, "PRes does not echo Chall-C")
	}
	if err := compareTransIDs(&d.TransIDs, &terms.Data.TransIDs, "PRes"); err != nil {
		return nil, err
	}
	return d, nil
}

// NewPInitReq returns a PInitReq with fresh RRPID and Chall-C read from rnd.
// held are certificates the cardholder already has; their thumbprints go in
// Thumbs so the merchant may omit them.
func NewPInitReq(rnd io.Reader, lidC []byte, language, brandID, bin string, suites []Suite, held [][]byte) (*PInitReq, error) {
	switch {
	case len(suites) < 1 || len(suites) > 4:
		return nil, fail(CodeMalformed, "offer 1 to 4 suites, not %d", len(suites))
	case len(lidC) < 1 || len(lidC) > maxLocalID:
		return nil, fail(CodeMalformed, "LID-C must be 1 to %d bytes", maxLocalID)
	case len(held) > 16:
		return nil, fail(CodeMalformed, "at most 16 held certificates can be listed in Thumbs")
	}
	req := &PInitReq{LIDC: lidC, Language: language, BrandID: brandID, BIN: bin, Suites: suites}
	if _, err := io.ReadFull(rnd, req.RRPID[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rnd, req.ChallC[:]); err != nil {
		return nil, err
	}
	for _, c := range held {
		req.Thumbs = append(req.Thumbs, ThumbprintOf(c))
	}
	return req, nil
}
