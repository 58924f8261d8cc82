package protocol

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"filippo.io/edwards25519"
	"github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/setpay/setpay/internal/der"
)

// Object identifiers. setpay's private arc sits under IANA's documentation
// enterprise number 32473 (RFC 5612) until the project has its own; the SET
// 1.0 arc (2.23.42) is not reused because these extensions differ from SET's.
var (
	oidSetpay            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1}
	OIDCertificateType   = append(slices.Clone(oidSetpay), 1, 1) // critical
	OIDAccountHash       = append(slices.Clone(oidSetpay), 1, 2)
	OIDMerchantData      = append(slices.Clone(oidSetpay), 1, 3)
	OIDBrand             = append(slices.Clone(oidSetpay), 1, 4)
	OIDXWing             = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 62253, 25722} // draft-connolly-cfrg-xwing-kem
	maxExtensionValueLen = 1024
)

// CertType is the SET certificate type carried, critical, in every setpay
// certificate (extension OIDCertificateType, an ENUMERATED).
type CertType int

const (
	CertCardholderSignature CertType = 1
	CertMerchantSignature   CertType = 2
	CertMerchantKeyExchange CertType = 3
	CertGatewaySignature    CertType = 4
	CertGatewayKeyExchange  CertType = 5
	// The CAs' own registration keys: each role CA signs its registration
	// replies and receives sealed requests with end-entity certificates it
	// issues to itself, so that its certificate-signing key signs only
	// certificates, CRLs and (the brand's) BCIs.
	CertCardholderCASignature   CertType = 6
	CertCardholderCAKeyExchange CertType = 7
	CertMerchantCASignature     CertType = 8
	CertMerchantCAKeyExchange   CertType = 9
	CertGatewayCASignature      CertType = 10
	CertGatewayCAKeyExchange    CertType = 11
	// TLS certificates for the mutual-TLS links, issued by the role CAs
	// (and, for the CA's own server, by the brand CA). Their keys sign TLS
	// handshakes only, never setpay messages.
	CertCardholderTLS CertType = 12
	CertMerchantTLS   CertType = 13
	CertGatewayTLS    CertType = 14
	CertCATLS         CertType = 15
	CertRootCA        CertType = 16
	CertBrandCA       CertType = 17
	CertCardholderCA  CertType = 18
	CertMerchantCA    CertType = 19
	CertGatewayCA     CertType = 20
)

var certTypeNames = map[CertType]string{
	CertCardholderSignature:     "cardholder signature",
	CertMerchantSignature:       "merchant signature",
	CertMerchantKeyExchange:     "merchant key-exchange",
	CertGatewaySignature:        "gateway signature",
	CertGatewayKeyExchange:      "gateway key-exchange",
	CertCardholderCASignature:   "cardholder-CA signature",
	CertCardholderCAKeyExchange: "cardholder-CA key-exchange",
	CertMerchantCASignature:     "merchant-CA signature",
	CertMerchantCAKeyExchange:   "merchant-CA key-exchange",
	CertGatewayCASignature:      "gateway-CA signature",
	CertGatewayCAKeyExchange:    "gateway-CA key-exchange",
	CertCardholderTLS:           "cardholder TLS",
	CertMerchantTLS:             "merchant TLS",
	CertGatewayTLS:              "gateway TLS",
	CertCATLS:                   "CA TLS",
	CertRootCA:                  "root CA",
	CertBrandCA:                 "brand CA",
	CertCardholderCA:            "cardholder CA",
	CertMerchantCA:              "merchant CA",
	CertGatewayCA:               "payment-gateway CA",
}

func (t CertType) String() string {
	if n, ok := certTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("cert type %d", int(t))
}

// Issuer returns the certificate type that must have issued a certificate of
// type t: the SET hierarchy Root -> Brand -> {Cardholder, Merchant, Gateway}
// CA -> end entities. The root has no issuer (0).
func (t CertType) Issuer() CertType {
	switch t {
	case CertCardholderSignature, CertCardholderCASignature, CertCardholderCAKeyExchange, CertCardholderTLS:
		return CertCardholderCA
	case CertMerchantSignature, CertMerchantKeyExchange, CertMerchantCASignature, CertMerchantCAKeyExchange, CertMerchantTLS:
		return CertMerchantCA
	case CertGatewaySignature, CertGatewayKeyExchange, CertGatewayCASignature, CertGatewayCAKeyExchange, CertGatewayTLS:
		return CertGatewayCA
	case CertCardholderCA, CertMerchantCA, CertGatewayCA, CertCATLS:
		return CertBrandCA
	case CertBrandCA:
		return CertRootCA
	}
	return 0
}

// IsCA reports whether t is a CA type.
func (t CertType) IsCA() bool { return t >= CertRootCA && t <= CertGatewayCA }

// IsKeyExchange reports whether t is a key-exchange (encryption) type.
func (t CertType) IsKeyExchange() bool {
	switch t {
	case CertMerchantKeyExchange, CertGatewayKeyExchange,
		CertCardholderCAKeyExchange, CertMerchantCAKeyExchange, CertGatewayCAKeyExchange:
		return true
	}
	return false
}

// IsTLS reports whether t is a TLS certificate type. TLS certificates carry
// the serverAuth and clientAuth extended key usages and no setpay message is
// ever signed with their keys.
func (t CertType) IsTLS() bool { return t >= CertCardholderTLS && t <= CertCATLS }

// Role CA messaging certificate types, by the CA type that issues them.
var caMessagingTypes = map[CertType][2]CertType{
	CertCardholderCA: {CertCardholderCASignature, CertCardholderCAKeyExchange},
	CertMerchantCA:   {CertMerchantCASignature, CertMerchantCAKeyExchange},
	CertGatewayCA:    {CertGatewayCASignature, CertGatewayCAKeyExchange},
}

// RegistrationTypes returns the signature and key-exchange certificate types
// with which the role CA of type t (cardholder, merchant or gateway CA)
// signs its registration replies and receives sealed requests; ok is false
// for any other type.
func (t CertType) RegistrationTypes() (sig, ke CertType, ok bool) {
	p, ok := caMessagingTypes[t]
	return p[0], p[1], ok
}

// MerchantData is the merchant extension of merchant certificates.
type MerchantData struct {
	MerchantID  string // 1..30
	Name        string // 1..64
	AcquirerBIN string // 6..8 digits
}

// Extension builders, used by the CA (and test PKIs) to issue certificates.

// CertTypeExtension returns the critical certificate-type extension.
func CertTypeExtension(t CertType) pkix.Extension {
	v, _ := der.Marshal(func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(t)) })
	return pkix.Extension{Id: OIDCertificateType, Critical: true, Value: v}
}

// AccountHashExtension returns the cardholder's account-hash extension.
func AccountHashExtension(h Digest) pkix.Extension {
	v, _ := der.Marshal(func(b *cryptobyte.Builder) { b.AddASN1OctetString(h[:]) })
	return pkix.Extension{Id: OIDAccountHash, Value: v}
}

// MerchantDataExtension returns the merchant-data extension.
func MerchantDataExtension(m MerchantData) pkix.Extension {
	v, _ := der.Marshal(func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			der.AddUTF8(b, m.MerchantID)
			der.AddUTF8(b, m.Name)
			der.AddNumeric(b, m.AcquirerBIN)
		})
	})
	return pkix.Extension{Id: OIDMerchantData, Value: v}
}

// BrandExtension returns the brand extension (the BrandID, e.g. "Visa").
func BrandExtension(brand string) pkix.Extension {
	v, _ := der.Marshal(func(b *cryptobyte.Builder) { der.AddUTF8(b, brand) })
	return pkix.Extension{Id: OIDBrand, Value: v}
}

// MarshalXWingSPKI returns the SubjectPublicKeyInfo of an X-Wing public key:
// the algorithm id-XWing with absent parameters and the raw 1216-byte key.
func MarshalXWingSPKI(pub kem.PublicKey) ([]byte, error) {
	raw, err := pub.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return der.Marshal(func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			der.AddSequence(b, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(OIDXWing) })
			b.AddASN1BitString(raw)
		})
	})
}

// Cert is a parsed setpay certificate: the X.509 certificate and its SET
// extensions.
type Cert struct {
	X509  *x509.Certificate
	Thumb Thumbprint
	Type  CertType
	// Suite is the suite the certificate's key belongs to (0 for CA
	// certificates, whose keys sign certificates, not messages).
	Suite       Suite
	Brand       string
	AccountHash *Digest       // cardholder signature certificates
	Merchant    *MerchantData // merchant certificates
	kemPub      kem.PublicKey // key-exchange certificates
}

// ParseCertificate parses a DER certificate, its setpay extensions and, for a
// key-exchange certificate, its KEM public key. The critical certificate-type
// extension is marked handled so that x509.Verify accepts the certificate.
func ParseCertificate(certDER []byte) (*Cert, error) {
	x, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, failWrap(CodeCertChain, err, "certificate does not parse")
	}
	if err := checkProfile(x); err != nil {
		return nil, err
	}
	c := &Cert{X509: x, Thumb: ThumbprintOf(certDER)}
	for _, ext := range x.Extensions {
		if len(ext.Value) > maxExtensionValueLen {
			return nil, fail(CodeCertRole, "certificate extension %v too large", ext.Id)
		}
		switch {
		case ext.Id.Equal(OIDCertificateType):
			r := der.NewReader(ext.Value, "certificateType")
			c.Type = CertType(r.Enum("", 1, 255))
			r.End()
			if err := r.Err(); err != nil {
				return nil, failWrap(CodeCertRole, err, "certificate type extension")
			}
			if !ext.Critical {
				return nil, fail(CodeCertRole, "certificate type extension is not critical")
			}
		case ext.Id.Equal(OIDAccountHash):
			r := der.NewReader(ext.Value, "accountHash")
			var h Digest
			readFixed(r, "", h[:])
			r.End()
			if err := r.Err(); err != nil {
				return nil, failWrap(CodeCertRole, err, "account hash extension")
			}
			c.AccountHash = &h
		case ext.Id.Equal(OIDMerchantData):
			r := der.NewReader(ext.Value, "merchantData")
			var m MerchantData
			r.Sequence("", func(r *der.Reader) {
				m.MerchantID = r.UTF8("merchantID", 1, 30)
				m.Name = r.UTF8("merchantName", 1, 64)
				m.AcquirerBIN = r.Numeric("acquirerBIN", 6, 8)
			})
			r.End()
			if err := r.Err(); err != nil {
				return nil, failWrap(CodeCertRole, err, "merchant data extension")
			}
			c.Merchant = &m
		case ext.Id.Equal(OIDBrand):
			r := der.NewReader(ext.Value, "brand")
			c.Brand = r.UTF8("", 1, 40)
			r.End()
			if err := r.Err(); err != nil {
				return nil, failWrap(CodeCertRole, err, "brand extension")
			}
		}
	}
	if _, ok := certTypeNames[c.Type]; !ok {
		return nil, fail(CodeCertRole, "certificate has no known setpay certificate type")
	}
	isMerchant := c.Type == CertMerchantSignature || c.Type == CertMerchantKeyExchange
	if isMerchant != (c.Merchant != nil) {
		return nil, fail(CodeCertRole, "merchant data belongs in merchant certificates and only there (%s certificate)", c.Type)
	}
	x.UnhandledCriticalExtensions = slices.DeleteFunc(x.UnhandledCriticalExtensions,
		func(id asn1.ObjectIdentifier) bool { return id.Equal(OIDCertificateType) })

	switch {
	case c.Type.IsKeyExchange():
		c.Suite, c.kemPub, err = parseKEMKey(x)
		if err != nil {
			return nil, err
		}
	case !c.Type.IsCA():
		s, ok := suiteOfSigningKey(x.PublicKey)
		if !ok {
			return nil, fail(CodeCertKeyType, "%s certificate key is neither Ed25519 nor ECDSA P-256", c.Type)
		}
		c.Suite = s
	}
	return c, nil
}

// checkProfile enforces the setpay certificate profile beyond what
// crypto/x509 parses (docs/PROTOCOL.md 7.4): X.509 version 3; a positive
// serial number of at most 20 octets; a signature by Ed25519 or by ECDSA
// with SHA-256, the two algorithms setpay's CAs use; an ECDSA key, if any, on
// P-256 (so that a CA's signatures are P-256 ones); and an Ed25519 key, if
// any, that is canonically encoded and not of small order (such a key would
// make one forged "signature" verify for every message).
func checkProfile(x *x509.Certificate) error {
	switch {
	case x.Version != 3:
		return fail(CodeCertChain, "certificate is X.509 version %d, not 3", x.Version)
	case x.SerialNumber.Sign() <= 0 || len(x.SerialNumber.Bytes()) > 20:
		return fail(CodeCertChain, "certificate serial number is not positive or longer than 20 octets")
	case x.SignatureAlgorithm != x509.PureEd25519 && x.SignatureAlgorithm != x509.ECDSAWithSHA256:
		return fail(CodeCertChain, "certificate signed with %v, not Ed25519 or ECDSA with SHA-256", x.SignatureAlgorithm)
	}
	if k, ok := x.PublicKey.(*ecdsa.PublicKey); ok && k.Curve != elliptic.P256() {
		return fail(CodeCertKeyType, "ECDSA key on %s, not P-256", k.Curve.Params().Name)
	}
	if k, ok := x.PublicKey.(ed25519.PublicKey); ok {
		p, err := new(edwards25519.Point).SetBytes(k)
		if err != nil || !bytes.Equal(p.Bytes(), k) {
			return fail(CodeCertKeyType, "Ed25519 key is not a canonical point encoding")
		}
		if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
			return fail(CodeCertKeyType, "Ed25519 key is of small order")
		}
	}
	return nil
}

// parseKEMKey reads the HPKE public key of a key-exchange certificate.
func parseKEMKey(x *x509.Certificate) (Suite, kem.PublicKey, error) {
	return ParseKEMPublicKey(x.RawSubjectPublicKeyInfo)
}

// ParseKEMPublicKey parses the SubjectPublicKeyInfo of a key-exchange key:
// id-XWing with absent parameters (suite pq) or id-ecPublicKey on P-256
// (suite nist). Anything else is CodeCertKeyType.
func ParseKEMPublicKey(spkiDER []byte) (Suite, kem.PublicKey, error) {
	in := cryptobyte.String(spkiDER)
	var spki, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	var bits asn1.BitString
	if in.ReadASN1(&spki, cbasn1.SEQUENCE) && in.Empty() && spki.ReadASN1(&alg, cbasn1.SEQUENCE) &&
		alg.ReadASN1ObjectIdentifier(&oid) && alg.Empty() && oid.Equal(OIDXWing) {
		if !spki.ReadASN1BitString(&bits) || !spki.Empty() || bits.BitLength%8 != 0 {
			return 0, nil, fail(CodeCertKeyType, "X-Wing key is not a whole BIT STRING")
		}
		pk, err := SuitePQ.KEM().UnmarshalBinaryPublicKey(bits.Bytes)
		if err != nil {
			return 0, nil, failWrap(CodeCertKeyType, err, "X-Wing key")
		}
		return SuitePQ, pk, nil
	}
	if k, err := x509.ParsePKIXPublicKey(spkiDER); err == nil {
		if k, ok := k.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
			e, err := k.ECDH()
			if err != nil {
				return 0, nil, failWrap(CodeCertKeyType, err, "key-exchange key")
			}
			pk, err := SuiteNIST.KEM().UnmarshalBinaryPublicKey(e.Bytes())
			if err != nil {
				return 0, nil, failWrap(CodeCertKeyType, err, "key-exchange key")
			}
			return SuiteNIST, pk, nil
		}
	}
	return 0, nil, fail(CodeCertKeyType, "key-exchange key is neither X-Wing nor P-256")
}

// MarshalKEMPublicKey returns the SubjectPublicKeyInfo of a key-exchange
// key of either suite (see [ParseKEMPublicKey]).
func MarshalKEMPublicKey(pub kem.PublicKey) ([]byte, error) {
	raw, err := pub.MarshalBinary()
	if err != nil {
		return nil, err
	}
	switch {
	case len(raw) == SuitePQ.KEM().PublicKeySize():
		if _, err := SuitePQ.KEM().UnmarshalBinaryPublicKey(raw); err != nil {
			return nil, failWrap(CodeCertKeyType, err, "X-Wing key")
		}
		return MarshalXWingSPKI(pub)
	case len(raw) == SuiteNIST.KEM().PublicKeySize():
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, failWrap(CodeCertKeyType, err, "P-256 key")
		}
		return x509.MarshalPKIXPublicKey(k)
	}
	return nil, fail(CodeCertKeyType, "KEM key of %d bytes belongs to no suite", len(raw))
}

// KeyThumbprint is the SHA-256 of a DER SubjectPublicKeyInfo. It names the
// signer of a request signed by a key that has no certificate yet.
func KeyThumbprint(spkiDER []byte) Thumbprint { return sha256.Sum256(spkiDER) }

// MerchantID returns the merchant id of a merchant certificate, or "".
func (c *Cert) MerchantID() string {
	if c.Merchant == nil {
		return ""
	}
	return c.Merchant.MerchantID
}

// Trust is what a party needs to check another party's certificates: the
// trusted roots, the clock and the revocation status. Every verification in
// setpay goes through [Trust.Verify].
type Trust struct {
	roots     *x509.CertPool
	rootTypes map[*x509.Certificate]CertType
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Revoked, if set, reports further certificates as revoked, in addition
	// to those of the CRLs installed by [Trust.UpdateRevocation] (tests use
	// it to revoke without a CA).
	Revoked func(*x509.Certificate) bool
	rev     revocation
	// verified caches the chains that verified, so that a party checking
	// the same certificates again (every message of every purchase carries
	// them) pays a lookup instead of parsing and building the chain.
	verified verifiedCache
}

// NewTrust returns a Trust anchored at the given root certificates (DER).
func NewTrust(rootsDER ...[]byte) (*Trust, error) {
	pool := x509.NewCertPool()
	types := map[*x509.Certificate]CertType{}
	for _, d := range rootsDER {
		c, err := ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		if c.Type != CertRootCA {
			return nil, fail(CodeCertRole, "trust anchor is a %s certificate, not a root", c.Type)
		}
		pool.AddCert(c.X509)
		types[c.X509] = c.Type
	}
	return &Trust{roots: pool, rootTypes: types}, nil
}

func (t *Trust) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Verify checks the certificate with thumbprint leaf among certs (leaf and
// intermediates, DER, in any order) and returns it parsed. In order:
//  1. the leaf is present (CodeCertMissing);
//  2. it is of type want with matching key usage (CodeCertRole);
//  3. its key belongs to suite (CodeCertKeyType), unless suite is 0;
//  4. every certificate is within its validity period (CodeCertExpired);
//  5. the chain verifies to a trusted root through the CA types the SET
//     hierarchy prescribes (CodeCertChain);
//  6. no certificate of the chain is revoked (CodeCertRevoked).
func (t *Trust) Verify(certs [][]byte, leaf Thumbprint, want CertType, suite Suite) (*Cert, error) {
	now := t.now()
	key := verifiedKey(certs, leaf, want, suite)
	if v := t.verified.get(key, now); v != nil {
		// The same certificates verified before, and every one of the
		// chain is still within its dates: only revocation can have
		// changed.
		if err := t.checkRevoked(v.chain); err != nil {
			return nil, err
		}
		return v.leaf, nil
	}
	lc, chain, err := t.verify(certs, leaf, want, suite, now)
	if err != nil {
		return nil, err
	}
	t.verified.put(key, &verifiedChain{leaf: lc, chain: chain})
	return lc, nil
}

// checkRevoked fails if a certificate of a verified chain is revoked.
func (t *Trust) checkRevoked(chain []*x509.Certificate) error {
	for i, c := range chain {
		issuer := c // the root is its own issuer
		if i+1 < len(chain) {
			issuer = chain[i+1]
		}
		if t.rev.isRevoked(c, issuer) || (t.Revoked != nil && t.Revoked(c)) {
			return fail(CodeCertRevoked, "certificate serial %s (%q) is revoked", c.SerialNumber, c.Subject.CommonName)
		}
	}
	return nil
}

// verify is Verify without the cache: it returns the leaf and the verified
// chain (leaf first, root last).
func (t *Trust) verify(certs [][]byte, leaf Thumbprint, want CertType, suite Suite, now time.Time) (*Cert, []*x509.Certificate, error) {
	var lc *Cert
	var others []*Cert
	for _, d := range certs {
		if ThumbprintOf(d) == leaf && lc == nil {
			c, err := ParseCertificate(d)
			if err != nil {
				return nil, nil, err
			}
			lc = c
			continue
		}
		c, err := ParseCertificate(d)
		if err != nil {
			return nil, nil, err
		}
		others = append(others, c)
	}
	if lc == nil {
		return nil, nil, fail(CodeCertMissing, "no %s certificate with thumbprint %x", want, leaf[:8])
	}
	if lc.Type != want {
		return nil, nil, fail(CodeCertRole, "want a %s certificate, got a %s certificate", want, lc.Type)
	}
	if err := checkKeyUsage(lc); err != nil {
		return nil, nil, err
	}
	if suite != 0 && lc.Suite != suite {
		return nil, nil, fail(CodeCertKeyType, "%s certificate key is of suite %s, want %s", want, lc.Suite, suite)
	}
	intermediates := x509.NewCertPool()
	types := map[*x509.Certificate]CertType{lc.X509: lc.Type}
	for _, c := range others {
		types[c.X509] = c.Type
		intermediates.AddCert(c.X509)
	}
	// Check the dates of the leaf and of the certificates above it by name,
	// so that an expired certificate on the path gets its own code (x509
	// reports an expired intermediate as an unknown authority) while an
	// unrelated certificate carried in the same message is not judged here.
	visited := map[*Cert]bool{}
	for c := lc; c != nil && !visited[c]; c = issuerAmong(c, others) {
		visited[c] = true // certificates may name each other as issuers
		if now.Before(c.X509.NotBefore) || now.After(c.X509.NotAfter) {
			return nil, nil, fail(CodeCertExpired, "%s certificate valid %s to %s, now %s", c.Type,
				c.X509.NotBefore.UTC().Format(time.RFC3339), c.X509.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	chains, err := lc.X509.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, nil, failWrap(CodeCertExpired, err, "%s certificate chain", want)
		}
		return nil, nil, failWrap(CodeCertChain, err, "%s certificate", want)
	}
	var chain []*x509.Certificate
	for _, ch := range chains {
		if t.chainTypesOK(ch, types) {
			chain = ch
			break
		}
	}
	if chain == nil {
		return nil, nil, fail(CodeCertChain, "%s certificate not issued through the SET hierarchy (%s <- %s <- brand <- root)", want, want, want.Issuer())
	}
	if err := t.checkRevoked(chain); err != nil {
		return nil, nil, err
	}
	return lc, chain, nil
}

// issuerAmong returns the certificate of cs whose subject is c's issuer, or
// nil. Self-issued certificates (roots) have none.
func issuerAmong(c *Cert, cs []*Cert) *Cert {
	if bytes.Equal(c.X509.RawIssuer, c.X509.RawSubject) {
		return nil
	}
	for _, d := range cs {
		if d != c && bytes.Equal(d.X509.RawSubject, c.X509.RawIssuer) {
			return d
		}
	}
	return nil
}

// chainTypesOK reports whether each certificate of a verified chain was issued
// by a CA of the type the hierarchy prescribes, ending at a root. types holds
// the types of the leaf and intermediates; the root's comes from the Trust.
func (t *Trust) chainTypesOK(chain []*x509.Certificate, types map[*x509.Certificate]CertType) bool {
	typeOf := func(x *x509.Certificate) CertType {
		if ct, ok := types[x]; ok {
			return ct
		}
		return t.rootTypes[x]
	}
	for i := 0; i+1 < len(chain); i++ {
		if typeOf(chain[i]).Issuer() != typeOf(chain[i+1]) {
			return false
		}
	}
	return typeOf(chain[len(chain)-1]) == CertRootCA
}

// checkKeyUsage enforces the separation of signing and key-exchange keys:
// signature certificates must allow digitalSignature and none of
// keyEncipherment, keyAgreement, dataEncipherment; key-exchange certificates
// must allow keyEncipherment or keyAgreement and not digitalSignature.
func checkKeyUsage(c *Cert) error {
	ku := c.X509.KeyUsage
	kex := ku&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) != 0
	enc := kex || ku&x509.KeyUsageDataEncipherment != 0
	sig := ku&x509.KeyUsageDigitalSignature != 0
	switch {
	case c.Type.IsKeyExchange():
		if !kex || sig {
			return fail(CodeCertRole, "%s certificate key usage must be key encipherment only", c.Type)
		}
	case !c.Type.IsCA():
		if !sig || enc {
			return fail(CodeCertRole, "%s certificate key usage must be digital signature only", c.Type)
		}
	}
	return nil
}

// certsWithout returns certs minus those whose thumbprint is in omit (the
// Thumbs a peer said it already holds).
func certsWithout(certs [][]byte, omit []Thumbprint) [][]byte {
	var out [][]byte
	for _, c := range certs {
		if !slices.Contains(omit, ThumbprintOf(c)) {
			out = append(out, c)
		}
	}
	return out
}

// verifiedCache holds chains Trust.Verify verified, by the exact inputs
// (verifiedKey). An entry is used only while every certificate of its chain
// is within its dates; revocation is checked again on every use. Failures
// are not cached. At maxVerified entries the cache starts over.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[Digest]*verifiedChain
}

const maxVerified = 4096

type verifiedChain struct {
	leaf      *Cert
	chain     []*x509.Certificate
	notBefore time.Time // the latest NotBefore of the chain
	notAfter  time.Time // the earliest NotAfter of the chain
}

// verifiedKey is SHA-256 over the inputs of Verify that decide its
// outcome, apart from the clock and revocation: the leaf, the type, the
// suite, and every certificate given, in order.
func verifiedKey(certs [][]byte, leaf Thumbprint, want CertType, suite Suite) Digest {
	h := sha256.New()
	h.Write(leaf[:])
	h.Write([]byte{byte(want), byte(suite), byte(len(certs))})
	for _, c := range certs {
		th := ThumbprintOf(c)
		h.Write(th[:])
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

func (vc *verifiedCache) get(k Digest, now time.Time) *verifiedChain {
	vc.mu.RLock()
	v := vc.m[k]
	vc.mu.RUnlock()
	if v == nil || now.Before(v.notBefore) || now.After(v.notAfter) {
		return nil
	}
	return v
}

func (vc *verifiedCache) put(k Digest, v *verifiedChain) {
	for i, c := range v.chain {
		if i == 0 || c.NotBefore.After(v.notBefore) {
			v.notBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(v.notAfter) {
			v.notAfter = c.NotAfter
		}
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.m == nil || len(vc.m) >= maxVerified {
		vc.m = map[Digest]*verifiedChain{}
	}
	vc.m[k] = v
}
