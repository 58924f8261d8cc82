// Package testpki builds a complete, deterministic SET certificate hierarchy
// for tests and test vectors: Root -> Brand -> Cardholder/Merchant/Gateway CA
// -> the parties' signature and key-exchange certificates, for one suite.
// Every key derives from a seed string and every certificate from a fixed
// time, so the same seed gives byte-identical certificates.
//
// It issues certificates with crypto/x509 directly; the embedded CA (package
// ca) is the production issuer. X-Wing key-exchange certificates, which
// crypto/x509 cannot create, are built by replacing the SubjectPublicKeyInfo
// of a template certificate and signing the result (see [CA.Issue]).
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"time"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/internal/x509x"
	"github.com/setpay/setpay/protocol"
)

// Epoch is the fixed "now" of every test PKI: certificates are valid from
// Epoch-1h to Epoch+1y.
var Epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Test card data of the default cardholder.
const (
	TestPAN        = "4111111111111111"
	TestCardExpiry = "202912"
	TestMerchantID = "M-0001"
	TestBrand      = "TestBrand"
	TestBIN        = "411111"
)

// Seed derives deterministic bytes from a seed string and a label.
func Seed(seed, label string, n int) []byte {
	var out []byte
	for i := uint32(0); len(out) < n; i++ {
		h := sha256.New()
		fmt.Fprintf(h, "setpay testpki\x00%s\x00%s\x00", seed, label)
		binary.Write(h, binary.BigEndian, i)
		out = h.Sum(out)
	}
	return out[:n]
}

// SigningKey returns a deterministic signature key of suite s.
func SigningKey(s protocol.Suite, seed, label string) crypto.Signer {
	b := Seed(seed, "sig "+label, 32)
	switch s {
	case protocol.SuitePQ:
		return ed25519.NewKeyFromSeed(b)
	case protocol.SuiteNIST:
		for i := 0; ; i++ {
			k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), Seed(seed, fmt.Sprintf("sig %s %d", label, i), 32))
			if err == nil {
				return k
			}
		}
	}
	panic("testpki: bad suite")
}

// KEMKey returns a deterministic key-exchange key pair of suite s.
func KEMKey(s protocol.Suite, seed, label string) (kem.PublicKey, kem.PrivateKey) {
	sch := s.KEM()
	return sch.DeriveKeyPair(Seed(seed, "kem "+label, sch.SeedSize()))
}

// CA is a certificate authority of the test hierarchy.
type CA struct {
	Type  protocol.CertType
	Cert  []byte
	Chain [][]byte // Cert and its issuers up to, excluding, the root
	X509  *x509.Certificate
	Key   crypto.Signer
	pki   *PKI
	next  int64
}

// Options describe an end-entity or CA certificate to issue.
type Options struct {
	Type       protocol.CertType
	Name       string
	Public     any // crypto.PublicKey or kem.PublicKey (key-exchange)
	NotBefore  time.Time
	NotAfter   time.Time
	KeyUsage   x509.KeyUsage // 0: the usage the type calls for
	Extensions []pkix.Extension
	// OmitType leaves out the certificate-type extension (for negative tests).
	OmitType bool
}

// Issue issues a certificate signed by ca and returns its DER.
func (ca *CA) Issue(o Options) []byte { return issue(ca, o) }

// issue issues a certificate signed by ca, or self-signed by o.Public (a
// crypto.Signer) when ca is nil.
func issue(ca *CA, o Options) []byte {
	serial := int64(1)
	if ca != nil {
		ca.next++
		serial = int64(ca.Type)*1_000_000 + ca.next
	}
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = Epoch.Add(-time.Hour)
	}
	if na.IsZero() {
		na = Epoch.AddDate(1, 0, 0)
	}
	ku := o.KeyUsage
	if ku == 0 {
		switch {
		case o.Type.IsCA():
			ku = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		case o.Type.IsKeyExchange():
			ku = x509.KeyUsageKeyEncipherment
		default:
			ku = x509.KeyUsageDigitalSignature
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: o.Name, Organization: []string{"setpay test"}},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              ku,
		BasicConstraintsValid: true,
		IsCA:                  o.Type.IsCA(),
		ExtraExtensions:       o.Extensions,
	}
	if !o.OmitType {
		tmpl.ExtraExtensions = append([]pkix.Extension{protocol.CertTypeExtension(o.Type)}, tmpl.ExtraExtensions...)
	}
	if o.Type.IsCA() {
		tmpl.SubjectKeyId = Seed(o.Name, "ski", 20)
	}
	var parent *x509.Certificate
	var signer crypto.Signer
	if ca == nil {
		parent, signer = tmpl, o.Public.(crypto.Signer)
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, protocol.BrandExtension(TestBrand))
	} else {
		parent, signer = ca.X509, ca.Key
	}
	if pub, ok := o.Public.(kem.PublicKey); ok {
		return issueKEM(tmpl, parent, signer, pub)
	}
	var pub any = o.Public
	if s, ok := o.Public.(crypto.Signer); ok {
		pub = s.Public()
	}
	der, err := x509.CreateCertificate(nil, tmpl, parent, pub, signer)
	if err != nil {
		panic("testpki: " + err.Error())
	}
	return der
}

// issueKEM issues a key-exchange certificate for an HPKE public key. P-256
// keys go through crypto/x509 as id-ecPublicKey; X-Wing keys replace the
// SubjectPublicKeyInfo of a certificate made for a placeholder key, and the
// TBSCertificate is signed again.
func issueKEM(tmpl, parent *x509.Certificate, signer crypto.Signer, pub kem.PublicKey) []byte {
	raw, err := pub.MarshalBinary()
	if err != nil {
		panic(err)
	}
	if pub.Scheme().Name() == protocol.SuiteNIST.KEM().Name() {
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw) // a DHKEM(P-256) key is the uncompressed point
		if err != nil {
			panic(err)
		}
		der, err := x509.CreateCertificate(nil, tmpl, parent, pk, signer)
		if err != nil {
			panic(err)
		}
		return der
	}
	spki, err := protocol.MarshalXWingSPKI(pub)
	if err != nil {
		panic(err)
	}
	placeholder := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	der, err := x509.CreateCertificate(nil, tmpl, parent, placeholder, signer)
	if err != nil {
		panic(err)
	}
	return replaceSPKI(der, spki, signer)
}

// replaceSPKI swaps the SubjectPublicKeyInfo of a certificate and re-signs
// its TBSCertificate with signer (see x509x.ReplaceSPKI).
func replaceSPKI(certDER, spki []byte, signer crypto.Signer) []byte {
	der, err := x509x.ReplaceSPKI(certDER, spki, signer)
	if err != nil {
		panic("testpki: " + err.Error())
	}
	return der
}

// Sign signs msg as setpay's algorithms do: Ed25519 over msg itself, ECDSA
// (P-256) over SHA-256(msg), deterministically (see x509x.Sign). It panics on
// failure.
func Sign(signer crypto.Signer, msg []byte) []byte {
	sig, err := x509x.Sign(signer, msg)
	if err != nil {
		panic(err)
	}
	return sig
}

// SubCA issues a subordinate CA of type t under ca.
func (ca *CA) SubCA(t protocol.CertType, name string) *CA {
	key := SigningKey(ca.pki.Suite, ca.pki.seed, name)
	der := ca.Issue(Options{Type: t, Name: name, Public: key, Extensions: []pkix.Extension{protocol.BrandExtension(TestBrand)}})
	x, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	chain := [][]byte{der}
	if ca.Type != protocol.CertRootCA {
		chain = append(chain, ca.Chain...)
	}
	return &CA{Type: t, Cert: der, Chain: chain, X509: x, Key: key, pki: ca.pki}
}

// PKI is a complete test hierarchy for one suite, with one cardholder, one
// merchant and one gateway.
type PKI struct {
	Suite protocol.Suite
	seed  string

	Root, Brand, CCA, MCA, PCA *CA
	Trust                      *protocol.Trust

	Cardholder *protocol.SigningKey
	Card       protocol.Card
	Merchant   *protocol.MerchantKeys
	Gateway    *protocol.GatewayKeys
}

// New builds the hierarchy for suite s from seed. Its Trust's clock is
// fixed at Epoch.
func New(s protocol.Suite, seed string) *PKI {
	p := &PKI{Suite: s, seed: seed}
	rootKey := SigningKey(s, seed, "root")
	rootDER := issue(nil, Options{Type: protocol.CertRootCA, Name: "setpay test root " + s.String(), Public: rootKey})
	rx, err := x509.ParseCertificate(rootDER)
	if err != nil {
		panic(err)
	}
	p.Root = &CA{Type: protocol.CertRootCA, Cert: rootDER, X509: rx, Key: rootKey, pki: p}
	p.Brand = p.Root.SubCA(protocol.CertBrandCA, "TestBrand CA "+s.String())
	p.CCA = p.Brand.SubCA(protocol.CertCardholderCA, "TestBrand cardholder CA "+s.String())
	p.MCA = p.Brand.SubCA(protocol.CertMerchantCA, "TestBrand merchant CA "+s.String())
	p.PCA = p.Brand.SubCA(protocol.CertGatewayCA, "TestBrand gateway CA "+s.String())
	p.Trust, err = protocol.NewTrust(rootDER)
	if err != nil {
		panic(err)
	}
	p.Trust.Now = func() time.Time { return Epoch }

	pan, err := protocol.NewPAN(TestPAN)
	if err != nil {
		panic(err)
	}
	var cardSecret, nonceCCA protocol.Secret
	copy(cardSecret[:], Seed(seed, "CardSecret", 32))
	copy(nonceCCA[:], Seed(seed, "NonceCCA", 32))
	p.Card = protocol.Card{PAN: pan, CardExpiry: TestCardExpiry, CardSecret: cardSecret, PANSecret: protocol.PANSecret(cardSecret, nonceCCA)}
	p.Cardholder = p.NewCardholder("cardholder", p.Card, Options{})
	p.Merchant = p.NewMerchant("merchant", protocol.MerchantData{MerchantID: TestMerchantID, Name: "Test Shop", AcquirerBIN: "400000"})
	p.Gateway = p.NewGateway("gateway")
	return p
}

// NewCardholder issues a cardholder signature certificate for card under the
// cardholder CA. Fields of o other than Type, Public and Extensions override
// the defaults (validity, key usage).
func (p *PKI) NewCardholder(name string, card protocol.Card, o Options) *protocol.SigningKey {
	key := SigningKey(p.Suite, p.seed, name)
	o.Type, o.Name, o.Public = protocol.CertCardholderSignature, name, key
	o.Extensions = append(o.Extensions,
		protocol.AccountHashExtension(protocol.AccountHash(p.Suite, card.PAN, card.CardExpiry, card.PANSecret)),
		protocol.BrandExtension(TestBrand))
	return p.signingKey(p.CCA, key, o)
}

// NewMerchant issues a merchant's signature and key-exchange certificates,
// with the same subject and merchant data.
func (p *PKI) NewMerchant(name string, md protocol.MerchantData) *protocol.MerchantKeys {
	key := SigningKey(p.Suite, p.seed, name)
	sig := p.signingKey(p.MCA, key, Options{Type: protocol.CertMerchantSignature, Name: name, Public: key,
		Extensions: []pkix.Extension{protocol.MerchantDataExtension(md), protocol.BrandExtension(TestBrand)}})
	pub, priv := KEMKey(p.Suite, p.seed, name)
	ke := p.kexKey(p.MCA, priv, Options{Type: protocol.CertMerchantKeyExchange, Name: name, Public: pub,
		Extensions: []pkix.Extension{protocol.MerchantDataExtension(md), protocol.BrandExtension(TestBrand)}})
	return &protocol.MerchantKeys{Sig: sig, KE: ke}
}

// NewGateway issues a gateway's signature and key-exchange certificates
// (with the same subject, which is how a merchant ties the gateway's
// signatures to the key it sealed to) and derives its CapToken key.
func (p *PKI) NewGateway(name string) *protocol.GatewayKeys {
	key := SigningKey(p.Suite, p.seed, name)
	sig := p.signingKey(p.PCA, key, Options{Type: protocol.CertGatewaySignature, Name: name, Public: key,
		Extensions: []pkix.Extension{protocol.BrandExtension(TestBrand)}})
	pub, priv := KEMKey(p.Suite, p.seed, name)
	ke := p.kexKey(p.PCA, priv, Options{Type: protocol.CertGatewayKeyExchange, Name: name, Public: pub,
		Extensions: []pkix.Extension{protocol.BrandExtension(TestBrand)}})
	var tokenKey protocol.Secret
	copy(tokenKey[:], Seed(p.seed, "token key "+name, 32))
	return &protocol.GatewayKeys{Sig: sig, KE: ke, TokenKey: tokenKey}
}

// signingKey issues a certificate described by o under ca for key and pairs
// them. It panics if the pair is rejected.
func (p *PKI) signingKey(ca *CA, key crypto.Signer, o Options) *protocol.SigningKey {
	der := ca.Issue(o)
	k, err := protocol.NewSigningKey(key, append([][]byte{der}, ca.Chain...))
	if err != nil {
		panic(err)
	}
	return k
}

// kexKey issues a key-exchange certificate described by o under ca for priv
// and pairs them.
func (p *PKI) kexKey(ca *CA, priv kem.PrivateKey, o Options) *protocol.KeyExchangeKey {
	der := ca.Issue(o)
	k, err := protocol.NewKeyExchangeKey(priv, append([][]byte{der}, ca.Chain...))
	if err != nil {
		panic(err)
	}
	return k
}

// Seed returns the PKI's seed.
func (p *PKI) Seed() string { return p.seed }
