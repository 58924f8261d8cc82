package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/cloudflare/circl/kem"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"

	"github.com/setpay/setpay/internal/x509x"
	"github.com/setpay/setpay/protocol"
)

// Authority is one certificate authority of a hierarchy (root, brand or a
// role CA) backed by an embedded smallstep authority with its own database.
// Its methods are safe for concurrent use.
type Authority struct {
	// Type is the CA's certificate type (protocol.CertRootCA, ...).
	Type protocol.CertType
	// Suite is the suite of the hierarchy the CA belongs to.
	Suite protocol.Suite
	// Cert is the CA's certificate (DER).
	Cert []byte
	// Chain is Cert and its issuers up to, excluding, the root: what a
	// certificate issued by this CA is sent with. Empty for the root.
	Chain [][]byte
	// Sig and KE are a role CA's registration keys: end-entity certificates
	// it issued to itself (types from protocol.CertType.RegistrationTypes),
	// with which it signs registration replies and opens sealed requests,
	// so that its certificate-signing key signs only certificates and CRLs.
	// Nil for the root and brand CAs.
	Sig *protocol.SigningKey
	KE  *protocol.KeyExchangeKey

	name   string // file and database name: root, brand, cardholder-ca, ...
	h      *Hierarchy
	x509   *x509.Certificate
	signer crypto.Signer // deterministic (x509x.Deterministic)
	step   *authority.Authority
	db     *db.DB
	// csr is the placeholder certificate request every issuance goes
	// through, signed by placeholder, a key of this process only.
	csr         *x509.CertificateRequest
	placeholder ed25519.PublicKey

	mu sync.Mutex // serializes revocation and CRL generation
}

// IssueRequest describes a certificate for [Authority.Issue].
type IssueRequest struct {
	// Type is the setpay certificate type; the authority must be its issuer
	// (protocol.CertType.Issuer).
	Type protocol.CertType
	// Subject is the subject name; CommonName is required.
	Subject pkix.Name
	// Public is the subject's public key: for signature and TLS types a
	// crypto.PublicKey (ed25519.PublicKey or *ecdsa.PublicKey on P-256), for
	// key-exchange types a kem.PublicKey of the hierarchy's suite.
	Public any
	// Extensions are setpay extensions to include, such as
	// protocol.AccountHashExtension or protocol.MerchantDataExtension. The
	// CA adds the certificate-type and brand extensions itself; standard
	// X.509 extensions (2.5.29) are set by the CA and refused here.
	Extensions []pkix.Extension
	// NotAfter is the end of validity; zero means the default for the type
	// (Options.Validity for end entities), capped at the issuer's NotAfter.
	// An explicit NotAfter beyond the issuer's is an error.
	NotAfter time.Time
	// DNSNames and IPAddresses are the subject alternative names of TLS
	// certificates (and only of those).
	DNSNames    []string
	IPAddresses []net.IP
}

// Validity of CA certificates, and the backdating of every NotBefore (for
// clock skew between parties).
const (
	rootYears  = 10
	brandYears = 5
	roleYears  = 3
	backdate   = time.Minute
)

var oidX509Extensions = []int{2, 5, 29}

// start creates the embedded smallstep authority of a CA and its database,
// and prepares the placeholder certificate request.
func (h *Hierarchy) start(t protocol.CertType, name string, certDER []byte, key crypto.Signer, chain [][]byte) (*Authority, error) {
	x, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("ca: %s certificate: %w", name, err)
	}
	a := &Authority{Type: t, Suite: h.Suite, Cert: certDER, Chain: chain, name: name, h: h, x509: x,
		signer: x509x.Deterministic(key)}
	rootX := x
	if h.Root != nil {
		rootX = h.Root.x509
	}
	dbc := h.ca.o.DB.config(h.ca.dir, h.Suite, name)
	cfg := &config.Config{
		DB: dbc,
		AuthorityConfig: &config.AuthConfig{
			Backdate: &provisioner.Duration{Duration: backdate},
		},
		// No CRL configuration: smallstep's CRL generator takes its times
		// from time.Now and runs on a ticker; setpay builds each CRL itself
		// from the authority's revocation table (see revocation.go).
	}
	a.step, err = authority.NewEmbedded(
		authority.WithConfig(cfg), // first: it replaces the whole configuration
		authority.WithX509RootCerts(rootX),
		authority.WithX509Signer(x, a.signer),
		authority.WithQuietInit(),
	)
	if err != nil {
		return nil, fmt.Errorf("ca: starting the %s %s authority: %w", h.Suite, name, err)
	}
	var ok bool
	if a.db, ok = a.step.GetDatabase().(*db.DB); !ok {
		a.step.Shutdown()
		return nil, fmt.Errorf("ca: the %s %s authority has no database", h.Suite, name)
	}
	for _, b := range [][]byte{bucketCerts, bucketThumbs, bucketState} {
		if err := a.db.CreateTable(b); err != nil {
			a.step.Shutdown()
			return nil, fmt.Errorf("ca: %s %s database: %w", h.Suite, name, err)
		}
	}
	seed, err := h.ca.randBytes(ed25519.SeedSize)
	if err != nil {
		a.step.Shutdown()
		return nil, err
	}
	pk := ed25519.NewKeyFromSeed(seed)
	a.placeholder = pk.Public().(ed25519.PublicKey)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "setpay placeholder"},
	}, pk)
	if err == nil {
		a.csr, err = x509.ParseCertificateRequest(csrDER)
	}
	if err != nil {
		a.step.Shutdown()
		return nil, fmt.Errorf("ca: placeholder request: %w", err)
	}
	return a, nil
}

// Issue issues a certificate of type r.Type and returns it (DER). Every
// certificate below the root is issued here, through the embedded smallstep
// authority (see the package documentation), recorded in the authority's
// database and checked with protocol.ParseCertificate before it is
// returned. The applicant's proof of possession of the private key is the
// caller's business (the registration protocol's).
func (a *Authority) Issue(ctx context.Context, r IssueRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, spki, xwing, err := a.template(r)
	if err != nil {
		return nil, err
	}
	modify := provisioner.CertificateModifierFunc(func(c *x509.Certificate, _ provisioner.SignOptions) error {
		// Replace whatever smallstep derived from the placeholder request.
		*c = *t
		return nil
	})
	chain, err := a.step.SignWithContext(ctx, a.csr, provisioner.SignOptions{}, modify)
	if err != nil {
		return nil, fmt.Errorf("ca: %s %s: issuing a %s certificate: %w", a.Suite, a.name, r.Type, err)
	}
	der := chain[0].Raw
	if xwing {
		der, err = x509x.ReplaceSPKI(der, spki, a.signer)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		x, err := x509.ParseCertificate(der)
		if err == nil {
			err = x.CheckSignatureFrom(a.x509)
		}
		if err != nil {
			return nil, fmt.Errorf("ca: re-signed X-Wing certificate: %w", err)
		}
	}
	c, err := protocol.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: issued certificate does not parse: %w", err)
	}
	if c.Type != r.Type || !bytes.Equal(c.X509.RawSubjectPublicKeyInfo, spki) {
		return nil, fmt.Errorf("ca: issued certificate is not the one requested")
	}
	if err := a.record(c, xwing); err != nil {
		return nil, err
	}
	return der, nil
}

// template validates r and builds the certificate template the modifier
// installs, with its SubjectPublicKeyInfo. For an X-Wing key the template
// holds the placeholder key and xwing is true: the caller replaces the key
// after signing.
func (a *Authority) template(r IssueRequest) (t *x509.Certificate, spki []byte, xwing bool, err error) {
	if r.Type.Issuer() != a.Type || a.Type == 0 {
		return nil, nil, false, fmt.Errorf("ca: a %s does not issue %s certificates", a.Type, r.Type)
	}
	if r.Subject.CommonName == "" {
		return nil, nil, false, errors.New("ca: the subject has no common name")
	}
	if !r.Type.IsTLS() && (len(r.DNSNames) > 0 || len(r.IPAddresses) > 0) {
		return nil, nil, false, fmt.Errorf("ca: subject alternative names belong in TLS certificates, not %s", r.Type)
	}
	pub, spki, xwing, err := a.publicKey(r)
	if err != nil {
		return nil, nil, false, err
	}
	ski, err := x509x.SubjectKeyID(spki)
	if err != nil {
		return nil, nil, false, err
	}
	exts := []pkix.Extension{protocol.CertTypeExtension(r.Type), protocol.BrandExtension(a.h.brand)}
	for _, e := range r.Extensions {
		switch {
		case e.Id.Equal(protocol.OIDCertificateType), e.Id.Equal(protocol.OIDBrand):
			return nil, nil, false, fmt.Errorf("ca: extension %v is the CA's to set", e.Id)
		case len(e.Id) > len(oidX509Extensions) && slices.Equal(e.Id[:len(oidX509Extensions)], oidX509Extensions):
			return nil, nil, false, fmt.Errorf("ca: standard extension %v is the CA's to set", e.Id)
		}
		for _, f := range exts {
			if f.Id.Equal(e.Id) {
				return nil, nil, false, fmt.Errorf("ca: extension %v given twice", e.Id)
			}
		}
		exts = append(exts, e)
	}

	now := a.h.ca.now()
	serial, err := a.newSerial()
	if err != nil {
		return nil, nil, false, err
	}
	notAfter, err := a.notAfter(r.Type, r.NotAfter, now)
	if err != nil {
		return nil, nil, false, err
	}
	t = &x509.Certificate{
		SerialNumber:          serial,
		Subject:               r.Subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              keyUsage(r.Type),
		BasicConstraintsValid: true,
		IsCA:                  r.Type.IsCA(),
		SubjectKeyId:          ski,
		ExtraExtensions:       exts,
		PublicKey:             pub,
		DNSNames:              slices.Clone(r.DNSNames),
		IPAddresses:           slices.Clone(r.IPAddresses),
	}
	switch r.Type {
	case protocol.CertBrandCA:
		t.MaxPathLen = 1
	case protocol.CertCardholderCA, protocol.CertMerchantCA, protocol.CertGatewayCA:
		t.MaxPathLen, t.MaxPathLenZero = 0, true
	}
	if r.Type.IsTLS() {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return t, spki, xwing, nil
}

// keyUsage returns the key usage of a certificate type (protocol's
// checkKeyUsage): CAs sign certificates and CRLs; key-exchange keys
// encipher keys; every other key signs.
func keyUsage(t protocol.CertType) x509.KeyUsage {
	switch {
	case t.IsCA():
		return x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	case t.IsKeyExchange():
		return x509.KeyUsageKeyEncipherment
	default:
		return x509.KeyUsageDigitalSignature
	}
}

// notAfter returns the end of validity of a certificate of type t issued at
// now: requested, or the type's default capped at the issuer's NotAfter.
func (a *Authority) notAfter(t protocol.CertType, requested, now time.Time) (time.Time, error) {
	limit := a.x509.NotAfter
	if !requested.IsZero() {
		switch {
		case !requested.After(now):
			return time.Time{}, fmt.Errorf("ca: NotAfter %s is not in the future", requested.UTC().Format(time.RFC3339))
		case requested.After(limit):
			return time.Time{}, fmt.Errorf("ca: NotAfter %s is after the %s's (%s)", requested.UTC().Format(time.RFC3339), a.Type, limit.UTC().Format(time.RFC3339))
		}
		return requested, nil
	}
	var na time.Time
	switch t {
	case protocol.CertBrandCA:
		na = now.AddDate(brandYears, 0, 0)
	case protocol.CertCardholderCA, protocol.CertMerchantCA, protocol.CertGatewayCA:
		na = now.AddDate(roleYears, 0, 0)
	default:
		na = a.h.ca.endEntityNotAfter(now)
	}
	if na.After(limit) {
		na = limit
	}
	if !na.After(now) {
		return time.Time{}, fmt.Errorf("ca: the %s expires at %s", a.Type, limit.UTC().Format(time.RFC3339))
	}
	return na, nil
}

// publicKey checks the public key of r against its type and the suite and
// returns the key to put in the template, the final SubjectPublicKeyInfo and
// whether it is an X-Wing key (which crypto/x509 cannot marshal).
func (a *Authority) publicKey(r IssueRequest) (pub crypto.PublicKey, spki []byte, xwing bool, err error) {
	if r.Type.IsKeyExchange() {
		kp, ok := r.Public.(kem.PublicKey)
		if !ok {
			return nil, nil, false, fmt.Errorf("ca: a %s certificate needs a kem.PublicKey, got %T", r.Type, r.Public)
		}
		raw, err := kp.MarshalBinary()
		if err != nil {
			return nil, nil, false, fmt.Errorf("ca: %w", err)
		}
		// Through the suite's own scheme: this checks the key is of it.
		if kp, err = a.Suite.KEM().UnmarshalBinaryPublicKey(raw); err != nil {
			return nil, nil, false, fmt.Errorf("ca: a %s certificate of suite %s needs a %s public key: %w", r.Type, a.Suite, a.Suite.KEM().Name(), err)
		}
		if a.Suite == protocol.SuitePQ {
			spki, err := protocol.MarshalXWingSPKI(kp)
			if err != nil {
				return nil, nil, false, fmt.Errorf("ca: %w", err)
			}
			return a.placeholder, spki, true, nil
		}
		// A DHKEM(P-256) public key is the uncompressed point: in the
		// certificate it is an id-ecPublicKey on P-256.
		ek, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, nil, false, fmt.Errorf("ca: DHKEM(P-256) key: %w", err)
		}
		pub = ek
	} else {
		switch k := r.Public.(type) {
		case ed25519.PublicKey:
			if len(k) != ed25519.PublicKeySize {
				return nil, nil, false, errors.New("ca: malformed Ed25519 public key")
			}
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return nil, nil, false, errors.New("ca: ECDSA public key not on P-256")
			}
		default:
			return nil, nil, false, fmt.Errorf("ca: a %s certificate needs an Ed25519 or ECDSA P-256 public key, got %T", r.Type, r.Public)
		}
		pub = r.Public
		if !r.Type.IsTLS() && suiteOfKey(pub) != a.Suite {
			return nil, nil, false, fmt.Errorf("ca: a %s certificate of suite %s needs a %s key", r.Type, a.Suite, signatureAlgorithm(a.Suite))
		}
	}
	spki, err = x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, false, fmt.Errorf("ca: %w", err)
	}
	return pub, spki, false, nil
}

func suiteOfKey(pub crypto.PublicKey) protocol.Suite {
	switch pub.(type) {
	case ed25519.PublicKey:
		return protocol.SuitePQ
	case *ecdsa.PublicKey:
		return protocol.SuiteNIST
	}
	return 0
}

func signatureAlgorithm(s protocol.Suite) string {
	if s == protocol.SuitePQ {
		return "Ed25519"
	}
	return "ECDSA P-256"
}

// serial returns a new certificate serial number: 16 bytes from the random
// source, positive and non-zero (RFC 5280 allows up to 20 octets).
func (c *CA) serial() (*big.Int, error) {
	for {
		b, err := c.randBytes(16)
		if err != nil {
			return nil, err
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}

// newSerial returns a serial number the authority has not used.
func (a *Authority) newSerial() (*big.Int, error) {
	for {
		serial, err := a.h.ca.serial()
		if err != nil {
			return nil, err
		}
		if _, used, err := a.lookup(serial); err != nil || !used {
			return serial, err
		}
	}
}

// selfSign creates a root CA certificate with crypto/x509 (a root has no
// issuer to go through).
func (h *Hierarchy) selfSign(key crypto.Signer, subject pkix.Name) ([]byte, error) {
	now := h.ca.now()
	serial, err := h.ca.serial()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	ski, err := x509x.SubjectKeyID(spki)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(rootYears, 0, 0),
		KeyUsage:              keyUsage(protocol.CertRootCA),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            2,
		SubjectKeyId:          ski,
		ExtraExtensions:       []pkix.Extension{protocol.CertTypeExtension(protocol.CertRootCA), protocol.BrandExtension(h.brand)},
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, key.Public(), x509x.Deterministic(key))
	if err != nil {
		return nil, fmt.Errorf("ca: root certificate: %w", err)
	}
	return der, nil
}
