package protocol

import "io"

// This file exports internals to the tests of package protocol_test: what it
// takes to open an envelope with a test key, the labels, and helpers that
// forge what no correct party would build.

// OpenEnvelope opens e with k under label and aad, in k's suite.
func OpenEnvelope(k *KeyExchangeKey, e *Envelope, label string, aad []byte) ([]byte, error) {
	return k.open(e, 0, label, aad)
}

// Envelope labels and associated data.
const (
	LabelSealPIDual  = labelSealPIDual
	LabelSealPIUnsig = labelSealPIUnsig
	LabelSealAuthReq = labelSealAuthReq
	LabelSealAuthRes = labelSealAuthRes
	LabelSealCapReq  = labelSealCapReq
	LabelSealCapRes  = labelSealCapRes

	LabelDualSig     = labelDualSig
	LabelSigPInitRes = labelSigPInitRes
	LabelSigAuthReq  = labelSigAuthReq
	LabelSigAuthRes  = labelSigAuthRes
	LabelSigCapReq   = labelSigCapReq
)

var PIAAD = piAAD

// CertHasKEMKey reports whether c carries an HPKE public key.
func CertHasKEMKey(c *Cert) bool { return c.kemPub != nil }

// Forging helpers: messages no correct party would build (a PI re-sealed by
// a dishonest gateway, a CapToken whose content contradicts its binding),
// so that each check can be broken on its own.

func ForgeSign(k *SigningKey, label string, tbs []byte) Signature {
	s, err := signWith(k, label, tbs)
	if err != nil {
		panic(err)
	}
	return s
}

func ForgeSeal(rnd io.Reader, to *Cert, label string, pt, aad []byte) Envelope {
	e, err := sealTo(rnd, to, label, pt, aad)
	if err != nil {
		panic(err)
	}
	return e
}

func ForgeVerify(s Suite, c *Cert, label string, tbs []byte, sig *Signature) bool {
	return s.verify(c.X509.PublicKey, label, tbs, sig.Value)
}

func ForgePAN(digits string) PAN { return PAN{digits: digits} }

// OpenCapToken opens a CapToken with the gateway's token key.
func OpenCapToken(k *GatewayKeys, e *Envelope, xid XID) ([]byte, error) {
	return openCapTokenBytes(k.KE.Suite(), k.TokenKey, e, xid)
}

// ForgeSealCapToken seals any CapTokenData with the gateway's token key.
func ForgeSealCapToken(rnd io.Reader, k *GatewayKeys, tok *CapTokenData) Envelope {
	e, err := sealCapToken(rnd, k.KE.Suite(), k.TokenKey, tok)
	if err != nil {
		panic(err)
	}
	return e
}

// ForgeSealCapTokenFor seals tok with the gateway's token key but binds it
// to xid (which a correct gateway takes from tok itself).
func ForgeSealCapTokenFor(rnd io.Reader, k *GatewayKeys, tok *CapTokenData, xid XID) Envelope {
	s := k.KE.Suite()
	salt := make([]byte, 32)
	io.ReadFull(rnd, salt)
	aead, nonce, err := capTokenAEAD(s, k.TokenKey, salt)
	if err != nil {
		panic(err)
	}
	return Envelope{Suite: s, Recipient: TokenKeyID(s, k.TokenKey), Enc: salt, Ciphertext: aead.Seal(nil, nonce, encode(tok), capTokenAAD(xid))}
}

// Registration and revocation labels.
const (
	LabelSigBCI          = labelSigBCI
	LabelSigCardCInitRes = labelSigCardCInitRes
	LabelSigMeAqCInitRes = labelSigMeAqCInitRes
	LabelSigRegFormRes   = labelSigRegFormRes
	LabelSigCertReq      = labelSigCertReq
	LabelSigCertInqReq   = labelSigCertInqReq
	LabelSigCertRes      = labelSigCertRes
	LabelSealRegFormReq  = labelSealRegFormReq
	LabelSealCertReq     = labelSealCertReq
	LabelSealCertInqReq  = labelSealCertInqReq
	LabelSealCertRes     = labelSealCertRes
	LabelSealCertInqRes  = labelSealCertInqRes
)

// OpenCertResponse opens the CA's answer to req, as the applicant does, and
// returns the plaintext (a CertResSigned).
func OpenCertResponse(s Suite, req *CertRequest, sr *SealedResponse) ([]byte, error) {
	return s.openResponse(req.respKey, labelSealCertRes, sr.Ciphertext)
}

// OpenInquiryResponse opens the CA's answer to the inquiry q.
func OpenInquiryResponse(s Suite, q *CertInquiry, sr *SealedResponse) ([]byte, error) {
	return s.openResponse(q.respKey, labelSealCertInqRes, sr.Ciphertext)
}

// ForgeCertRes encrypts any plaintext as the answer to req: a CertRes only
// the CA that opened req (or one that doctors its own answer) could make.
func ForgeCertRes(s Suite, req *CertRequest, pt []byte) *CertRes {
	ct, err := s.sealResponse(req.respKey, labelSealCertRes, pt)
	if err != nil {
		panic(err)
	}
	return &CertRes{SealedResponse{Suite: s, Ciphertext: ct}}
}

// ForgeCertInqRes encrypts any plaintext as the answer to the inquiry q.
func ForgeCertInqRes(s Suite, q *CertInquiry, pt []byte) *CertInqRes {
	ct, err := s.sealResponse(q.respKey, labelSealCertInqRes, pt)
	if err != nil {
		panic(err)
	}
	return &CertInqRes{SealedResponse{Suite: s, Ciphertext: ct}}
}
