package x509x

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func keys(t *testing.T) map[string]crypto.Signer {
	ek, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"Ed25519": ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), "ECDSA P-256": ek}
}

func TestSignIsDeterministicAndVerifies(t *testing.T) {
	msg := []byte("setpay")
	for name, k := range keys(t) {
		t.Run(name, func(t *testing.T) {
			a, err := Sign(k, msg)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := Sign(k, msg)
			if !bytes.Equal(a, b) {
				t.Error("two signatures of the same message differ")
			}
			d := Deterministic(k)
			h := sha256.Sum256(msg)
			var in []byte = h[:]
			var opts crypto.SignerOpts = crypto.SHA256
			if name == "Ed25519" {
				in, opts = msg, crypto.Hash(0)
			}
			c, err := d.Sign(rand.Reader, in, opts)
			if err != nil || !bytes.Equal(a, c) {
				t.Errorf("Deterministic(k).Sign with a reader differs from Sign: %v", err)
			}
			switch pub := k.Public().(type) {
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, msg, a) {
					t.Error("does not verify")
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, h[:], a) {
					t.Error("does not verify")
				}
			}
		})
	}
}

func TestReplaceSPKI(t *testing.T) {
	for name, caKey := range keys(t) {
		t.Run(name, func(t *testing.T) {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"},
				NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0), IsCA: true, BasicConstraintsValid: true,
				KeyUsage: x509.KeyUsageCertSign}
			caDER, err := x509.CreateCertificate(nil, tmpl, tmpl, caKey.Public(), Deterministic(caKey))
			if err != nil {
				t.Fatal(err)
			}
			caCert, _ := x509.ParseCertificate(caDER)
			leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
				NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
			placeholder := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
			der, err := x509.CreateCertificate(nil, leaf, caCert, placeholder, Deterministic(caKey))
			if err != nil {
				t.Fatal(err)
			}
			other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public()
			spki, _ := x509.MarshalPKIXPublicKey(other)
			out, err := ReplaceSPKI(der, spki, caKey)
			if err != nil {
				t.Fatal(err)
			}
			x, err := x509.ParseCertificate(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(x.RawSubjectPublicKeyInfo, spki) || x.Subject.CommonName != "leaf" {
				t.Error("the key was not replaced")
			}
			if err := x.CheckSignatureFrom(caCert); err != nil {
				t.Error(err)
			}
			for _, bad := range [][]byte{nil, der[:len(der)-1], append(bytes.Clone(der), 0)} {
				if _, err := ReplaceSPKI(bad, spki, caKey); err == nil {
					t.Error("a malformed certificate was accepted")
				}
			}
			id, err := SubjectKeyID(spki)
			if h := sha256.Sum256([]byte(other.(ed25519.PublicKey))); err != nil || !bytes.Equal(id, h[:20]) {
				t.Errorf("SubjectKeyID %x, %v", id, err)
			}
		})
	}
}
