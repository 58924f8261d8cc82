package protocol

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"io"
)

// The CapToken is opaque to everyone but the gateway that made it: it lets
// the gateway capture later without keeping the PI. It must be
// unforgeable, not only secret, so it is sealed with a symmetric key only the
// gateway holds (as a TLS server seals its session tickets), not with HPKE to
// the gateway's public key, which anyone could do.
//
// With the gateway's 32-byte token key K and 32 fresh random bytes salt:
//
//	keyID      = H("setpay/1 CapToken key id", suite, K)
//	k || nonce = HKDF-SHA256(ikm = K, salt = salt, info = Labelled("setpay/1 CapToken", suite, ""), 44 bytes)
//	ciphertext = AES-256-GCM(k, nonce, plaintext = DER(CapTokenData), aad = DER(XID))
//	CapToken   = Envelope { suite, recipient = keyID, enc = salt, ciphertext }
//
// The key id lets a gateway that rotates its token key find the right one.

// TokenKeyID returns the key id of a gateway token key.
func TokenKeyID(s Suite, key Secret) Thumbprint {
	return Thumbprint(Hash(labelCapTokenKeyID, s, key[:]))
}

func capTokenAEAD(s Suite, key Secret, salt []byte) (cipher.AEAD, []byte, error) {
	okm, err := hkdf.Key(sha256.New, key[:], salt, string(Labelled(labelSealCapToken, s, nil)), 44)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	return aead, okm[32:], err
}

// sealCapToken is the deterministic core of CapToken sealing; the salt is
// read from rnd.
func sealCapToken(rnd io.Reader, s Suite, key Secret, tok *CapTokenData) (Envelope, error) {
	salt := make([]byte, 32)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return Envelope{}, err
	}
	aead, nonce, err := capTokenAEAD(s, key, salt)
	if err != nil {
		return Envelope{}, err
	}
	ct := aead.Seal(nil, nonce, encode(tok), capTokenAAD(tok.XID))
	return Envelope{Suite: s, Recipient: TokenKeyID(s, key), Enc: salt, Ciphertext: ct}, nil
}

// openCapToken opens a CapToken for the transaction xid. Every failure is
// CodeCapTokenInvalid: a token the gateway did not make, for another
// transaction, or under another suite.
func openCapToken(s Suite, key Secret, e *Envelope, xid XID) (*CapTokenData, error) {
	pt, err := openCapTokenBytes(s, key, e, xid)
	if err != nil {
		return nil, err
	}
	tok, err := decode[CapTokenData](pt, "CapTokenData")
	if err != nil {
		return nil, failWrap(CodeCapTokenInvalid, err, "CapToken content")
	}
	return tok, nil
}

func openCapTokenBytes(s Suite, key Secret, e *Envelope, xid XID) ([]byte, error) {
	if e.Suite != s || e.Recipient != TokenKeyID(s, key) || len(e.Enc) != 32 {
		return nil, fail(CodeCapTokenInvalid, "CapToken was not made with this gateway's token key under suite %s", s)
	}
	aead, nonce, err := capTokenAEAD(s, key, e.Enc)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, e.Ciphertext, capTokenAAD(xid))
	if err != nil {
		return nil, fail(CodeCapTokenInvalid, "CapToken does not open for this transaction")
	}
	return pt, nil
}

// capTokenAAD returns the associated data of a CapToken: DER(XID), as for
// the PI.
func capTokenAAD(xid XID) []byte { return piAAD(xid) }
