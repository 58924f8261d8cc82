package protocol

import "io"

// The Forge* names let the external tests build messages that no correct
// party would build (a PI re-sealed by a dishonest gateway, a CapToken whose
// content contradicts its binding, ...), so that each check can be broken on
// its own. They exist only in test builds.

func ForgeEncode(c any) []byte { return encode(c.(codec)) }

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

func ForgeOpen(k *KeyExchangeKey, e *Envelope, label string, aad []byte) ([]byte, error) {
	return k.open(e, 0, label, aad)
}

func ForgeDecodePIContent(b []byte) (*PIContent, error) { return decode[PIContent](b, "PIContent") }
func ForgeDecodeAuthReqSigned(b []byte) (*AuthReqSigned, error) {
	return decode[AuthReqSigned](b, "AuthReqSigned")
}
func ForgeDecodeAuthResSigned(b []byte) (*AuthResSigned, error) {
	return decode[AuthResSigned](b, "AuthResSigned")
}
func ForgeDecodeCapReqSigned(b []byte) (*CapReqSigned, error) {
	return decode[CapReqSigned](b, "CapReqSigned")
}
func ForgeDecodeCapTokenData(b []byte) (*CapTokenData, error) {
	return decode[CapTokenData](b, "CapTokenData")
}

func ForgePIAAD(xid XID) []byte { return piAAD(xid) }

func ForgePAN(digits string) PAN { return PAN{digits: digits} }

const (
	ForgeLabelDualSig     = labelDualSig
	ForgeLabelSealPIDual  = labelSealPIDual
	ForgeLabelSealPIUnsig = labelSealPIUnsig
	ForgeLabelSigAuthReq  = labelSigAuthReq
	ForgeLabelSealAuthReq = labelSealAuthReq
	ForgeLabelSigAuthRes  = labelSigAuthRes
	ForgeLabelSealAuthRes = labelSealAuthRes
	ForgeLabelSigCapReq   = labelSigCapReq
	ForgeLabelSealCapReq  = labelSealCapReq
	ForgeLabelSigPInitRes = labelSigPInitRes
)

func ForgeVerify(s Suite, c *Cert, label string, tbs []byte, sig *Signature) bool {
	return s.verify(c.X509.PublicKey, label, tbs, sig.Value)
}

// ForgeOpenCapToken opens a CapToken with the gateway's token key.
func ForgeOpenCapToken(k *GatewayKeys, e *Envelope, xid XID) ([]byte, error) {
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
