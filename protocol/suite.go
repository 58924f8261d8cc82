package protocol

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// Suite identifies the algorithms of a transaction. Its number is inside every
// signature input, every digest input and every HPKE info string, so a message
// produced under one suite never verifies under another (a downgrade breaks a
// signature).
type Suite uint8

const (
	// SuitePQ is the default: Ed25519 signatures; HPKE with X-Wing
	// (X25519 + ML-KEM-768), HKDF-SHA256, AES-256-GCM.
	SuitePQ Suite = 1
	// SuiteNIST: ECDSA P-256 with SHA-256; HPKE with DHKEM(P-256),
	// HKDF-SHA256, AES-128-GCM.
	SuiteNIST Suite = 2
)

// Suites lists the suites in order of preference.
var Suites = []Suite{SuitePQ, SuiteNIST}

// String returns the suite's name: "pq" or "nist".
func (s Suite) String() string {
	switch s {
	case SuitePQ:
		return "pq"
	case SuiteNIST:
		return "nist"
	}
	return fmt.Sprintf("suite(%d)", uint8(s))
}

// ParseSuite returns the suite with the given name.
func ParseSuite(name string) (Suite, error) {
	for _, s := range Suites {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fail(CodeUnknownSuite, "no suite named %q", name)
}

// Valid reports whether s is a known suite.
func (s Suite) Valid() bool { return s == SuitePQ || s == SuiteNIST }

// HPKE returns the suite's RFC 9180 algorithms.
func (s Suite) HPKE() hpke.Suite {
	switch s {
	case SuitePQ:
		return hpke.NewSuite(hpke.KEM_XWING, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES256GCM)
	case SuiteNIST:
		return hpke.NewSuite(hpke.KEM_P256_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_AES128GCM)
	}
	panic("protocol: HPKE of invalid suite")
}

// KEM returns the suite's key-encapsulation scheme.
func (s Suite) KEM() kem.Scheme {
	switch s {
	case SuitePQ:
		return hpke.KEM_XWING.Scheme()
	case SuiteNIST:
		return hpke.KEM_P256_HKDF_SHA256.Scheme()
	}
	panic("protocol: KEM of invalid suite")
}

// suiteOfSigningKey returns the suite whose signature algorithm pub uses.
func suiteOfSigningKey(pub crypto.PublicKey) (Suite, bool) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return SuitePQ, true
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return SuiteNIST, true
		}
	}
	return 0, false
}

// Domain-separation labels. Every hash, signature and HPKE info input starts
// with exactly one of these (docs/PROTOCOL.md, "Labels").
const (
	labelHOD         = "setpay/1 HOD"
	labelOIData      = "setpay/1 OIData"
	labelPIData      = "setpay/1 PIData"
	labelDualSig     = "setpay/1 dual signature"
	labelTransStain  = "setpay/1 TransStain"
	labelAccountHash = "setpay/1 account hash"
	labelErrorThumb  = "setpay/1 error thumb"

	labelSigPInitRes = "setpay/1 PInitRes signature"
	labelSigPRes     = "setpay/1 PRes signature"
	labelSigAuthReq  = "setpay/1 AuthReq signature"
	labelSigAuthRes  = "setpay/1 AuthRes signature"
	labelSigCapReq   = "setpay/1 CapReq signature"
	labelSigCapRes   = "setpay/1 CapRes signature"
	labelSigError    = "setpay/1 Error signature"

	labelSealPIDual    = "setpay/1 PI dual-signed"
	labelSealPIUnsig   = "setpay/1 PI unsigned"
	labelSealAuthReq   = "setpay/1 AuthReq envelope"
	labelSealAuthRes   = "setpay/1 AuthRes envelope"
	labelSealCapReq    = "setpay/1 CapReq envelope"
	labelSealCapRes    = "setpay/1 CapRes envelope"
	labelSealCapToken  = "setpay/1 CapToken"
	labelCapTokenKeyID = "setpay/1 CapToken key id"

	labelSigBCI          = "setpay/1 BCI signature"
	labelSigCardCInitRes = "setpay/1 CardCInitRes signature"
	labelSigMeAqCInitRes = "setpay/1 Me-AqCInitRes signature"
	labelSigRegFormRes   = "setpay/1 RegFormRes signature"
	labelSigCertReq      = "setpay/1 CertReq signature"
	labelSigCertInqReq   = "setpay/1 CertInqReq signature"
	labelSigCertRes      = "setpay/1 CertRes signature"
	labelSealRegFormReq  = "setpay/1 RegFormReq envelope"
	labelSealCertReq     = "setpay/1 CertReq envelope"
	labelSealCertInqReq  = "setpay/1 CertInqReq envelope"
	labelResponseKey     = "setpay/1 registration response key"
	labelSealCertRes     = "setpay/1 CertRes"
	labelSealCertInqRes  = "setpay/1 CertInqRes"
)

// Labelled returns the labelled input L(label, suite, content):
//
//	DER(UTF8String label) || DER(INTEGER suite) || content
//
// Both prefixes are self-delimiting, so distinct (label, suite) pairs never
// produce the same input. Every digest and signature in setpay is computed
// over a Labelled input; HPKE info strings are Labelled inputs with empty
// content.
func Labelled(label string, s Suite, content []byte) []byte {
	var b cryptobyte.Builder
	der.AddUTF8(&b, label)
	b.AddASN1Int64(int64(s))
	b.AddBytes(content)
	return b.BytesOrPanic()
}

// Hash returns H(label, suite, content) = SHA-256(Labelled(label, s, content)).
func Hash(label string, s Suite, content []byte) Digest {
	h := sha256.New()
	h.Write(Labelled(label, s, nil))
	h.Write(content)
	var d Digest
	h.Sum(d[:0])
	return d
}

// sign signs Labelled(label, s, tbs) with key, which must be of suite s.
// Ed25519 signs the input itself; ECDSA P-256 signs its SHA-256 digest with
// RFC 6979 deterministic nonces, so every signature is reproducible.
func (s Suite) sign(key crypto.Signer, label string, tbs []byte) ([]byte, error) {
	ks, ok := suiteOfSigningKey(key.Public())
	if !ok || ks != s {
		return nil, fail(CodeCertKeyType, "signing key is not a %s key", s)
	}
	in := Labelled(label, s, tbs)
	switch s {
	case SuitePQ:
		return key.Sign(nil, in, crypto.Hash(0))
	default:
		d := sha256.Sum256(in)
		return key.Sign(nil, d[:], crypto.SHA256)
	}
}

// verify reports whether sig is s's signature by pub over Labelled(label, s, tbs).
func (s Suite) verify(pub crypto.PublicKey, label string, tbs, sig []byte) bool {
	in := Labelled(label, s, tbs)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return s == SuitePQ && ed25519.Verify(k, in, sig)
	case *ecdsa.PublicKey:
		d := sha256.Sum256(in)
		return s == SuiteNIST && k.Curve == elliptic.P256() && ecdsa.VerifyASN1(k, d[:], sig)
	}
	return false
}

// seal is the deterministic core of every envelope: HPKE base mode to pk with
// info = Labelled(label, s, nil), the given aad, and encapsulation randomness
// read from rnd.
func (s Suite) seal(rnd io.Reader, pk kem.PublicKey, label string, plaintext, aad []byte) (enc, ct []byte, err error) {
	snd, err := s.HPKE().NewSender(pk, Labelled(label, s, nil))
	if err != nil {
		return nil, nil, err
	}
	enc, sealer, err := snd.Setup(rnd)
	if err != nil {
		return nil, nil, err
	}
	ct, err = sealer.Seal(plaintext, aad)
	return enc, ct, err
}

// open reverses seal.
func (s Suite) open(sk kem.PrivateKey, label string, enc, ct, aad []byte) ([]byte, error) {
	pt, _, err := s.openExport(sk, label, enc, ct, aad)
	return pt, err
}

// sealExport is seal that also exports from the HPKE context (RFC 9180,
// 5.3) the key of the reply: Export(Labelled(labelResponseKey, s, ""),
// the AEAD key size). The receiver gets the same key from openExport.
func (s Suite) sealExport(rnd io.Reader, pk kem.PublicKey, label string, plaintext, aad []byte) (enc, ct, key []byte, err error) {
	snd, err := s.HPKE().NewSender(pk, Labelled(label, s, nil))
	if err != nil {
		return nil, nil, nil, err
	}
	enc, sealer, err := snd.Setup(rnd)
	if err != nil {
		return nil, nil, nil, err
	}
	ct, err = sealer.Seal(plaintext, aad)
	return enc, ct, sealer.Export(Labelled(labelResponseKey, s, nil), s.aeadKeySize()), err
}

// openExport reverses sealExport.
func (s Suite) openExport(sk kem.PrivateKey, label string, enc, ct, aad []byte) (pt, key []byte, err error) {
	rcv, err := s.HPKE().NewReceiver(sk, Labelled(label, s, nil))
	if err != nil {
		return nil, nil, err
	}
	opener, err := rcv.Setup(enc)
	if err != nil {
		return nil, nil, err
	}
	pt, err = opener.Open(ct, aad)
	if err != nil {
		return nil, nil, err
	}
	return pt, opener.Export(Labelled(labelResponseKey, s, nil), s.aeadKeySize()), nil
}

func (s Suite) aeadKeySize() uint {
	_, _, a := s.HPKE().Params()
	return a.KeySize()
}

// sealResponse encrypts a reply under a key exported from the request's
// HPKE context, with the suite's AEAD, a zero nonce (each key encrypts one
// message) and additional data Labelled(label, s, "").
func (s Suite) sealResponse(key []byte, label string, plaintext []byte) ([]byte, error) {
	_, _, a := s.HPKE().Params()
	c, err := a.New(key)
	if err != nil {
		return nil, err
	}
	return c.Seal(nil, make([]byte, c.NonceSize()), plaintext, Labelled(label, s, nil)), nil
}

// openResponse reverses sealResponse.
func (s Suite) openResponse(key []byte, label string, ct []byte) ([]byte, error) {
	_, _, a := s.HPKE().Params()
	c, err := a.New(key)
	if err != nil {
		return nil, err
	}
	return c.Open(nil, make([]byte, c.NonceSize()), ct, Labelled(label, s, nil))
}
