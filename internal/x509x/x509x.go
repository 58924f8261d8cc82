// Package x509x holds the few X.509 operations crypto/x509 cannot do for
// setpay: signing with setpay's deterministic algorithms and replacing the
// SubjectPublicKeyInfo of a certificate with one crypto/x509 cannot marshal
// (an X-Wing key), re-signing the TBSCertificate. Package ca and the test PKI
// (internal/testpki) share it.
package x509x

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Sign signs msg as setpay's CAs do: Ed25519 over msg itself, ECDSA P-256
// over SHA-256(msg) with RFC 6979 deterministic nonces (a nil random source
// selects them in Go 1.26), so that the same key and message always give the
// same signature.
func Sign(signer crypto.Signer, msg []byte) ([]byte, error) {
	switch k := signer.Public().(type) {
	case ed25519.PublicKey:
		return signer.Sign(nil, msg, crypto.Hash(0))
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("x509x: ECDSA key not on P-256")
		}
		d := sha256.Sum256(msg)
		return signer.Sign(nil, d[:], crypto.SHA256)
	default:
		return nil, fmt.Errorf("x509x: unsupported signing key %T", signer.Public())
	}
}

// Deterministic wraps a signer so that it ignores the random source it is
// given and signs with a nil one: ECDSA then uses RFC 6979 nonces (Go 1.26's
// (*ecdsa.PrivateKey).Sign does so for a nil reader) and every signature by
// the wrapped key, certificates and CRLs included, is reproducible. Ed25519
// is deterministic anyway.
func Deterministic(s crypto.Signer) crypto.Signer { return deterministic{s} }

type deterministic struct{ s crypto.Signer }

func (d deterministic) Public() crypto.PublicKey { return d.s.Public() }

func (d deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.s.Sign(nil, digest, opts)
}

// ReplaceSPKI returns certDER with its SubjectPublicKeyInfo replaced by spki
// (a DER SubjectPublicKeyInfo) and its TBSCertificate signed again by signer
// with [Sign]. The signature algorithm the certificate names is kept, so
// signer must be the key that signed certDER (Ed25519, or ECDSA P-256 with
// SHA-256). The caller checks the result against the issuer.
func ReplaceSPKI(certDER, spki []byte, signer crypto.Signer) ([]byte, error) {
	in := cryptobyte.String(certDER)
	var cert, tbs, sigAlg cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() ||
		!cert.ReadASN1(&tbs, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) {
		return nil, errors.New("x509x: malformed certificate")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		// version [0], serialNumber, signature, issuer, validity, subject: copied.
		for range 6 {
			var el cryptobyte.String
			var tag cbasn1.Tag
			if !tbs.ReadAnyASN1Element(&el, &tag) {
				b.SetError(errors.New("x509x: malformed TBSCertificate"))
				return
			}
			b.AddBytes(el)
		}
		var old cryptobyte.String
		if !tbs.ReadASN1Element(&old, cbasn1.SEQUENCE) {
			b.SetError(errors.New("x509x: TBSCertificate has no SubjectPublicKeyInfo"))
			return
		}
		b.AddBytes(spki)
		b.AddBytes(tbs) // unique identifiers, extensions
	})
	newTBS, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	sig, err := Sign(signer, newTBS)
	if err != nil {
		return nil, err
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(newTBS)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
	})
	return out.Bytes()
}

// SubjectKeyID returns the key identifier of a SubjectPublicKeyInfo: the
// leftmost 160 bits of the SHA-256 hash of its subjectPublicKey bits (RFC
// 7093, section 2, method 1).
func SubjectKeyID(spki []byte) ([]byte, error) {
	in := cryptobyte.String(spki)
	var seq, alg, key cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!seq.ReadASN1(&key, cbasn1.BIT_STRING) || !seq.Empty() ||
		len(key) < 1 || key[0] != 0 {
		return nil, errors.New("x509x: malformed SubjectPublicKeyInfo")
	}
	h := sha256.Sum256(key[1:]) // key[0]: the count of unused bits, 0
	return h[:20], nil
}
