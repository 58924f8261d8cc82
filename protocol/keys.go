package protocol

import (
	"crypto"
	"crypto/subtle"
	"io"

	"github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// SigningKey is a party's signature key with its certificate chain (leaf
// first, then its CAs up to but excluding the root). It has no String method
// and never prints its key.
type SigningKey struct {
	Cert  *Cert
	Chain [][]byte
	key   crypto.Signer
}

// NewSigningKey pairs a private key with its certificate chain. The leaf must
// be a signature certificate whose public key is key's.
func NewSigningKey(key crypto.Signer, chain [][]byte) (*SigningKey, error) {
	if len(chain) == 0 {
		return nil, fail(CodeCertMissing, "empty certificate chain")
	}
	c, err := ParseCertificate(chain[0])
	if err != nil {
		return nil, err
	}
	if c.Type.IsCA() || c.Type.IsKeyExchange() {
		return nil, fail(CodeCertRole, "a %s certificate cannot sign messages", c.Type)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.X509.PublicKey) {
		return nil, fail(CodeCertKeyType, "private key does not match the %s certificate", c.Type)
	}
	return &SigningKey{Cert: c, Chain: chain, key: key}, nil
}

// Suite returns the suite of the key.
func (k *SigningKey) Suite() Suite { return k.Cert.Suite }

// KeyExchangeKey is a party's HPKE private key with its key-exchange
// certificate chain.
type KeyExchangeKey struct {
	Cert  *Cert
	Chain [][]byte
	key   kem.PrivateKey
}

// NewKeyExchangeKey pairs a KEM private key with its certificate chain. The
// leaf must be a key-exchange certificate for key's public key.
func NewKeyExchangeKey(key kem.PrivateKey, chain [][]byte) (*KeyExchangeKey, error) {
	if len(chain) == 0 {
		return nil, fail(CodeCertMissing, "empty certificate chain")
	}
	c, err := ParseCertificate(chain[0])
	if err != nil {
		return nil, err
	}
	if !c.Type.IsKeyExchange() {
		return nil, fail(CodeCertRole, "a %s certificate is not a key-exchange certificate", c.Type)
	}
	a, _ := key.Public().MarshalBinary()
	b, _ := c.kemPub.MarshalBinary()
	if subtle.ConstantTimeCompare(a, b) != 1 {
		return nil, fail(CodeCertKeyType, "private key does not match the %s certificate", c.Type)
	}
	return &KeyExchangeKey{Cert: c, Chain: chain, key: key}, nil
}

// Suite returns the suite of the key.
func (k *KeyExchangeKey) Suite() Suite { return k.Cert.Suite }

// Signature is a signature with the suite it was made under and the
// thumbprint of the signer's certificate.
//
//	Signature ::= SEQUENCE { suite SuiteID, signer Thumbprint, value OCTET STRING (SIZE(1..128)) }
type Signature struct {
	Suite  Suite
	Signer Thumbprint
	Value  []byte
}

func (s *Signature) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		marshalSuite(b, s.Suite)
		b.AddASN1OctetString(s.Signer[:])
		b.AddASN1OctetString(s.Value)
	})
}

func (s *Signature) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		s.Suite = parseSuite(r, "suite")
		readFixed(r, "signer", s.Signer[:])
		s.Value = r.Octets("value", 1, 128)
	})
}

// signWith signs Labelled(label, suite, tbs) with k.
func signWith(k *SigningKey, label string, tbs []byte) (Signature, error) {
	v, err := k.Suite().sign(k.key, label, tbs)
	if err != nil {
		return Signature{}, err
	}
	return Signature{Suite: k.Suite(), Signer: k.Cert.Thumb, Value: v}, nil
}

// verifySignature checks a signature made under the transaction's suite by a
// certificate of type want found in certs, and returns that certificate.
// sigCode is the code for a signature that does not verify (CodeSignature, or
// CodeDualSignature for the dual signature).
func verifySignature(t *Trust, sig *Signature, certs [][]byte, want CertType, suite Suite, label string, tbs []byte, sigCode Code) (*Cert, error) {
	if !sig.Suite.Valid() {
		return nil, fail(CodeUnknownSuite, "signature suite %d", sig.Suite)
	}
	if sig.Suite != suite {
		return nil, fail(CodeSuiteMismatch, "signature made under suite %s, transaction uses %s", sig.Suite, suite)
	}
	c, err := t.Verify(certs, sig.Signer, want, suite)
	if err != nil {
		return nil, err
	}
	if !suite.verify(c.X509.PublicKey, label, tbs, sig.Value) {
		return nil, fail(sigCode, "%s (%s) does not verify", label, c.Type)
	}
	return c, nil
}

// Envelope is an HPKE ciphertext (RFC 9180, base mode) for the holder of the
// key-exchange certificate with thumbprint Recipient.
//
//	Envelope ::= SEQUENCE { suite SuiteID, recipient Thumbprint,
//	                        enc OCTET STRING (SIZE(1..2048)), ciphertext OCTET STRING (SIZE(16..MAX)) }
type Envelope struct {
	Suite      Suite
	Recipient  Thumbprint
	Enc        []byte
	Ciphertext []byte
}

func (e *Envelope) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		marshalSuite(b, e.Suite)
		b.AddASN1OctetString(e.Recipient[:])
		b.AddASN1OctetString(e.Enc)
		b.AddASN1OctetString(e.Ciphertext)
	})
}

func (e *Envelope) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		e.Suite = parseSuite(r, "suite")
		readFixed(r, "recipient", e.Recipient[:])
		e.Enc = r.Octets("enc", 1, 2048)
		e.Ciphertext = r.Octets("ciphertext", 16, MaxMessageSize)
	})
}

// sealTo seals plaintext to the key-exchange certificate to, under label and
// aad, reading the encapsulation randomness from rnd.
func sealTo(rnd io.Reader, to *Cert, label string, plaintext, aad []byte) (Envelope, error) {
	if to.kemPub == nil {
		return Envelope{}, fail(CodeCertRole, "cannot seal to a %s certificate", to.Type)
	}
	enc, ct, err := to.Suite.seal(rnd, to.kemPub, label, plaintext, aad)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{Suite: to.Suite, Recipient: to.Thumb, Enc: enc, Ciphertext: ct}, nil
}

// open opens an envelope sealed to k under label and aad. The envelope must
// be of the transaction's suite (suite 0: k's own suite).
func (k *KeyExchangeKey) open(e *Envelope, suite Suite, label string, aad []byte) ([]byte, error) {
	if suite == 0 {
		suite = k.Suite()
	}
	if !e.Suite.Valid() {
		return nil, fail(CodeUnknownSuite, "envelope suite %d", e.Suite)
	}
	if e.Suite != suite || e.Suite != k.Suite() {
		return nil, fail(CodeSuiteMismatch, "envelope sealed under suite %s, want %s", e.Suite, suite)
	}
	if e.Recipient != k.Cert.Thumb {
		return nil, fail(CodeDecrypt, "%s sealed for another recipient", label)
	}
	pt, err := e.Suite.open(k.key, label, e.Enc, e.Ciphertext, aad)
	if err != nil {
		return nil, fail(CodeDecrypt, "%s does not open", label)
	}
	return pt, nil
}
