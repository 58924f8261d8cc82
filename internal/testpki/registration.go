package testpki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"sync"
	"time"

	"github.com/setpay/setpay/protocol"
)

// This file adds registration and revocation to the test hierarchy: the
// role CAs' registration keys, CRLs and the brand's BCI. Like the rest of
// the package it is deterministic: keys derive from the PKI seed, dates from
// Epoch, and signatures are Ed25519 or RFC 6979 ECDSA.

// Validity of every CRL and BCI this package builds.
var (
	CRLThisUpdate = Epoch.Add(-time.Hour)
	CRLNextUpdate = Epoch.AddDate(0, 0, 30)
)

// registrationKeys caches RegistrationKeys per role CA, so that repeated
// calls return the same certificates (Issue numbers serials in call order).
var registrationKeys sync.Map // *CA -> *protocol.CAKeys

// RegistrationKeys returns the registration keys of the role CA ca (p.CCA,
// p.MCA or p.PCA): a signature and a key-exchange certificate of the types
// ca.Type.RegistrationTypes() names, issued by ca to itself under the same
// subject, with keys derived from the PKI seed. Repeated calls return the
// same keys and certificates.
func (p *PKI) RegistrationKeys(ca *CA) *protocol.CAKeys {
	if k, ok := registrationKeys.Load(ca); ok {
		return k.(*protocol.CAKeys)
	}
	k, _ := registrationKeys.LoadOrStore(ca, p.RegistrationKeysNamed(ca, ca.X509.Subject.CommonName+" registration"))
	return k.(*protocol.CAKeys)
}

// RegistrationKeysNamed issues a new pair of registration certificates under
// ca for the holder name (a second set of keys of the same CA, for negative
// tests). Each call issues new certificates.
func (p *PKI) RegistrationKeysNamed(ca *CA, name string) *protocol.CAKeys {
	sigT, keT, ok := ca.Type.RegistrationTypes()
	if !ok {
		panic("testpki: a " + ca.Type.String() + " has no registration keys")
	}
	brand := []pkix.Extension{protocol.BrandExtension(TestBrand)}
	key := SigningKey(p.Suite, p.Seed(), name)
	sigDER := ca.Issue(Options{Type: sigT, Name: name, Public: key, Extensions: brand})
	sig, err := protocol.NewSigningKey(key, append([][]byte{sigDER}, ca.Chain...))
	if err != nil {
		panic(err)
	}
	pub, priv := KEMKey(p.Suite, p.Seed(), name)
	keDER := ca.Issue(Options{Type: keT, Name: name, Public: pub, Extensions: brand})
	ke, err := protocol.NewKeyExchangeKey(priv, append([][]byte{keDER}, ca.Chain...))
	if err != nil {
		panic(err)
	}
	return &protocol.CAKeys{Sig: sig, KE: ke}
}

// deterministicSigner signs with a nil random source whatever it is given:
// Ed25519 is deterministic anyway, and ECDSA with a nil source uses RFC 6979
// nonces (crypto/ecdsa, PrivateKey.Sign).
type deterministicSigner struct{ crypto.Signer }

func (d deterministicSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.Signer.Sign(nil, digest, opts)
}

// CRL returns a DER CRL signed by ca with cRLNumber number, revoking the
// given serial numbers, valid from CRLThisUpdate to CRLNextUpdate.
func (p *PKI) CRL(ca *CA, number int64, revoked ...*big.Int) []byte {
	return p.CRLWith(ca, &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: CRLThisUpdate, NextUpdate: CRLNextUpdate}, revoked...)
}

// CRLWith is CRL with the caller's template (other dates, other number).
func (p *PKI) CRLWith(ca *CA, tmpl *x509.RevocationList, revoked ...*big.Int) []byte {
	t := *tmpl
	t.RevokedCertificateEntries = append([]x509.RevocationListEntry(nil), tmpl.RevokedCertificateEntries...)
	for _, s := range revoked {
		t.RevokedCertificateEntries = append(t.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: t.ThisUpdate})
	}
	der, err := x509.CreateRevocationList(nil, &t, ca.X509, deterministicSigner{ca.Key})
	if err != nil {
		panic("testpki: " + err.Error())
	}
	return der
}

// BCIData returns the content of a BCI of the PKI's suite and brand numbered
// number, valid from CRLThisUpdate to CRLNextUpdate, that lists crls. Each
// CRL's issuer is found by matching its issuer name with the Root, Brand,
// CCA, MCA and PCA of p; it panics on a CRL of another CA.
func (p *PKI) BCIData(number int64, crls ...[]byte) protocol.BCIData {
	d := protocol.BCIData{Suite: p.Suite, Brand: TestBrand, Number: number, ThisUpdate: CRLThisUpdate, NextUpdate: CRLNextUpdate}
	for _, der := range crls {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			panic(err)
		}
		ca := p.crlCA(crl)
		if ca == nil {
			panic("testpki: CRL of a CA outside the test hierarchy")
		}
		d.CRLs = append(d.CRLs, protocol.CRLRef{Issuer: protocol.ThumbprintOf(ca.Cert), Number: crl.Number.Int64(), CRL: protocol.ThumbprintOf(der)})
	}
	return d
}

// BCI returns the brand's BCI numbered number listing crls (see BCIData),
// signed by the brand CA. Its certificates are the brand CA certificate and
// the role CA certificates whose CRLs it lists.
func (p *PKI) BCI(number int64, crls ...[]byte) *protocol.BCI {
	return p.SignBCI(p.BCIData(number, crls...))
}

// SignBCI signs d with the brand CA key, carrying the brand CA certificate
// and the role CA certificates named in d.
func (p *PKI) SignBCI(d protocol.BCIData) *protocol.BCI {
	certs := [][]byte{p.Brand.Cert}
	for _, ref := range d.CRLs {
		for _, ca := range []*CA{p.CCA, p.MCA, p.PCA} {
			if protocol.ThumbprintOf(ca.Cert) == ref.Issuer && !containsBytes(certs, ca.Cert) {
				certs = append(certs, ca.Cert)
			}
		}
	}
	bci, err := protocol.NewBCI(p.Brand.Key, certs, d)
	if err != nil {
		panic(err)
	}
	return bci
}

// crlCA returns the CA of p whose subject is crl's issuer.
func (p *PKI) crlCA(crl *x509.RevocationList) *CA {
	for _, ca := range []*CA{p.Root, p.Brand, p.CCA, p.MCA, p.PCA} {
		if bytes.Equal(ca.X509.RawSubject, crl.RawIssuer) {
			return ca
		}
	}
	return nil
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}
