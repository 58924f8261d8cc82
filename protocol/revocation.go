package protocol

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// This file is revocation: the brand's signed list of the CRLs in force (the
// Brand CRL Identifier, BCI) and the update of a Trust from a BCI and the
// CRLs it lists.

// CRLRef names one CRL in force.
//
//	CRLRef ::= SEQUENCE { issuer Thumbprint, crlNumber INTEGER (0..MAX), crl Thumbprint }
type CRLRef struct {
	Issuer Thumbprint // thumbprint of the CA certificate that signed the CRL
	Number int64      // the CRL's cRLNumber
	CRL    Thumbprint // SHA-256 of the CRL's DER
}

// BCIData is the content of a Brand CRL Identifier.
//
//	BCIData ::= SEQUENCE {
//	  suite      SuiteID,
//	  brandID    UTF8String (SIZE(1..40)),
//	  bciNumber  INTEGER (1..MAX),
//	  thisUpdate GeneralizedTime,
//	  nextUpdate GeneralizedTime,
//	  crls       SEQUENCE SIZE(1..64) OF CRLRef }
type BCIData struct {
	Suite      Suite
	Brand      string
	Number     int64 // increases with every BCI the brand issues
	ThisUpdate time.Time
	NextUpdate time.Time
	CRLs       []CRLRef
}

func (d *BCIData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		marshalSuite(b, d.Suite)
		der.AddUTF8(b, d.Brand)
		b.AddASN1Int64(d.Number)
		der.AddTime(b, d.ThisUpdate)
		der.AddTime(b, d.NextUpdate)
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			for _, c := range d.CRLs {
				der.AddSequence(b, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(c.Issuer[:])
					b.AddASN1Int64(c.Number)
					b.AddASN1OctetString(c.CRL[:])
				})
			}
		})
	})
}

func (d *BCIData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.Suite = parseSuite(r, "suite")
		d.Brand = r.UTF8("brandID", 1, 40)
		d.Number = r.Int("bciNumber", 1, 1<<62)
		d.ThisUpdate = r.Time("thisUpdate")
		d.NextUpdate = r.Time("nextUpdate")
		r.SequenceOf("crls", 1, 64, func(r *der.Reader) {
			var c CRLRef
			r.Sequence("", func(r *der.Reader) {
				readFixed(r, "issuer", c.Issuer[:])
				c.Number = r.Int("crlNumber", 0, 1<<62)
				readFixed(r, "crl", c.CRL[:])
			})
			d.CRLs = append(d.CRLs, c)
		})
	})
}

// BCI is a Brand CRL Identifier: the list of CRLs in force, signed by the
// brand CA's certificate-signing key (the key that also signs the role CAs'
// certificates and the brand's CRL). Certificates carries the brand CA
// certificate and may carry the CA certificates whose CRLs are listed.
//
//	BCI ::= SEQUENCE { data BCIData, signature Signature, certificates Certificates }
type BCI struct {
	Data         BCIData
	Signature    Signature
	Certificates [][]byte
}

func (m *BCI) marshal(b *cryptobyte.Builder) {
	marshalSigned(b, &m.Data, &m.Signature, m.Certificates)
}

func (m *BCI) parse(r *der.Reader, name string) {
	parseSigned(r, name, &m.Data, &m.Signature, &m.Certificates)
}

// NewBCI signs d with the brand CA's key. certs starts with the brand CA
// certificate, whose key brandKey is.
func NewBCI(brandKey crypto.Signer, certs [][]byte, d BCIData) (*BCI, error) {
	if len(certs) == 0 {
		return nil, fail(CodeCertMissing, "no brand CA certificate")
	}
	v, err := d.Suite.sign(brandKey, labelSigBCI, encode(&d))
	if err != nil {
		return nil, err
	}
	return &BCI{Data: d, Signature: Signature{Suite: d.Suite, Signer: ThumbprintOf(certs[0]), Value: v}, Certificates: certs}, nil
}

// revocationSet is what one BCI and its CRLs say: the serials revoked by
// each CA, keyed by the CA's key (the KeyThumbprint of its public key), so
// that CAs of two hierarchies with the same name never share revocations.
type revocationSet struct {
	number  int64
	revoked map[Thumbprint]map[string]bool // issuer key -> serial (decimal) -> revoked
}

// revocation is the Trust's revocation state, one set per (suite, brand).
type revocation struct {
	mu   sync.RWMutex
	sets map[string]*revocationSet
}

// isRevoked reports whether c, issued by issuer, is revoked.
func (rv *revocation) isRevoked(c, issuer *x509.Certificate) bool {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	if len(rv.sets) == 0 {
		return false
	}
	k := KeyThumbprint(issuer.RawSubjectPublicKeyInfo)
	for _, s := range rv.sets {
		if s.revoked[k][c.SerialNumber.String()] {
			return true
		}
	}
	return false
}

// UpdateRevocation verifies a BCI and the CRLs it lists and, if everything
// verifies, makes Verify reject the certificates they revoke
// (CodeCertRevoked). certs are CA certificates (DER) in addition to those the
// BCI carries. All failures are CodeRevocationInfo, and leave the Trust as it
// was:
//   - the BCI is signed, under its suite, by a brand CA certificate that
//     chains to a trusted root and names the BCI's brand;
//   - now is within [thisUpdate, nextUpdate] and the BCI number is not lower
//     than that of the BCI in force for the same suite and brand (no rollback);
//   - every listed CRL is present (by thumbprint), signed by the CA
//     certificate the entry names (which chains to a trusted root, or is
//     one), has the listed cRLNumber and is not past its nextUpdate.
//
// Certificates whose CA has no CRL listed are not judged revoked.
func (t *Trust) UpdateRevocation(bci *BCI, crls [][]byte, certs [][]byte) error {
	d := &bci.Data
	now := t.now()
	pool := slices.Concat(bci.Certificates, certs)
	brand, err := t.Verify(pool, bci.Signature.Signer, CertBrandCA, 0)
	if err != nil {
		return failWrap(CodeRevocationInfo, err, "BCI signer")
	}
	if !d.Suite.Valid() || bci.Signature.Suite != d.Suite {
		return fail(CodeRevocationInfo, "BCI suite %s, signature suite %s", d.Suite, bci.Signature.Suite)
	}
	if brand.Brand != d.Brand {
		return fail(CodeRevocationInfo, "BCI for brand %q signed by the CA of brand %q", d.Brand, brand.Brand)
	}
	if !d.Suite.verify(brand.X509.PublicKey, labelSigBCI, encode(d), bci.Signature.Value) {
		return fail(CodeRevocationInfo, "BCI signature does not verify")
	}
	if now.Before(d.ThisUpdate) || now.After(d.NextUpdate) {
		return fail(CodeRevocationInfo, "BCI valid %s to %s, now %s", d.ThisUpdate.UTC().Format(time.RFC3339),
			d.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	key := fmt.Sprintf("%d/%s", d.Suite, d.Brand)
	t.rev.mu.RLock()
	cur := t.rev.sets[key]
	t.rev.mu.RUnlock()
	if cur != nil && d.Number < cur.number {
		return fail(CodeRevocationInfo, "BCI number %d is older than the one in force (%d)", d.Number, cur.number)
	}
	set := &revocationSet{number: d.Number, revoked: map[Thumbprint]map[string]bool{}}
	for _, ref := range d.CRLs {
		crlDER := findByThumb(crls, ref.CRL)
		if crlDER == nil {
			return fail(CodeRevocationInfo, "CRL %x listed in the BCI is missing", ref.CRL[:8])
		}
		issuer, err := t.crlIssuer(pool, ref.Issuer, d.Brand)
		if err != nil {
			return err
		}
		crl, err := x509.ParseRevocationList(crlDER)
		if err != nil {
			return failWrap(CodeRevocationInfo, err, "CRL of %q", issuer.Subject.CommonName)
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return failWrap(CodeRevocationInfo, err, "CRL of %q", issuer.Subject.CommonName)
		}
		if crl.Number == nil || !crl.Number.IsInt64() || crl.Number.Int64() != ref.Number {
			return fail(CodeRevocationInfo, "CRL of %q has not the number the BCI lists (%d)", issuer.Subject.CommonName, ref.Number)
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			return fail(CodeRevocationInfo, "CRL of %q is past its nextUpdate", issuer.Subject.CommonName)
		}
		if now.Before(crl.ThisUpdate) {
			return fail(CodeRevocationInfo, "CRL of %q is not yet valid (thisUpdate in the future)", issuer.Subject.CommonName)
		}
		k := KeyThumbprint(issuer.RawSubjectPublicKeyInfo)
		serials := set.revoked[k]
		if serials == nil {
			serials = map[string]bool{}
			set.revoked[k] = serials
		}
		for _, e := range crl.RevokedCertificateEntries {
			serials[e.SerialNumber.String()] = true
		}
	}
	t.rev.mu.Lock()
	defer t.rev.mu.Unlock()
	if cur := t.rev.sets[key]; cur != nil && d.Number < cur.number {
		return fail(CodeRevocationInfo, "BCI number %d is older than the one in force (%d)", d.Number, cur.number)
	}
	if t.rev.sets == nil {
		t.rev.sets = map[string]*revocationSet{}
	}
	t.rev.sets[key] = set
	return nil
}

// crlIssuer returns the CA certificate with thumbprint th: a trusted root,
// or a CA certificate among pool that chains to one; either of the BCI's
// brand.
func (t *Trust) crlIssuer(pool [][]byte, th Thumbprint, brand string) (*x509.Certificate, error) {
	d := findByThumb(pool, th)
	for x := range t.rootTypes {
		if ThumbprintOf(x.Raw) == th {
			d = x.Raw
		}
	}
	if d == nil {
		return nil, fail(CodeRevocationInfo, "no CA certificate %x for a listed CRL", th[:8])
	}
	c, err := ParseCertificate(d)
	if err != nil {
		return nil, failWrap(CodeRevocationInfo, err, "CRL issuer")
	}
	if !c.Type.IsCA() {
		return nil, fail(CodeRevocationInfo, "CRL issuer is a %s certificate", c.Type)
	}
	if c.Brand != brand {
		return nil, fail(CodeRevocationInfo, "CRL issuer %q is of brand %q, the BCI of brand %q", c.X509.Subject.CommonName, c.Brand, brand)
	}
	if c.Type != CertRootCA {
		if _, err := t.Verify(pool, th, c.Type, 0); err != nil {
			return nil, failWrap(CodeRevocationInfo, err, "CRL issuer")
		}
	}
	return c.X509, nil
}

func findByThumb(ds [][]byte, th Thumbprint) []byte {
	for _, d := range ds {
		if ThumbprintOf(d) == th {
			return d
		}
	}
	return nil
}
