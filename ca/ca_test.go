package ca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/protocol"
)

// epoch is the fixed clock of the tests.
var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return epoch }

// seeded returns a deterministic random source.
func seeded(label string) *rand.ChaCha8 {
	var seed [32]byte
	copy(seed[:], label)
	return rand.NewChaCha8(seed)
}

// newCA initialises a CA in a temporary directory with a seeded random
// source and the fixed clock (unless o sets them), opens it, and closes it at
// the end of the test.
func newCA(t testing.TB, o ca.Options) (*ca.CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if o.Rand == nil {
		o.Rand = seeded(t.Name())
	}
	if o.Now == nil {
		o.Now = fixedNow
	}
	if err := ca.Init(dir, o); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Open(dir, ca.Options{Now: o.Now, Passphrase: o.Passphrase, Rand: seeded(t.Name() + " open")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir
}

func trustOf(t *testing.T, c *ca.CA) *protocol.Trust {
	t.Helper()
	tr, err := c.TrustContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// chainOf returns a certificate issued by a with the issuer chain, as a
// party would send it.
func chainOf(der []byte, a *ca.Authority) [][]byte {
	return append([][]byte{der}, a.Chain...)
}

// x509Verify checks a chain with crypto/x509 alone, against the root.
func x509Verify(t *testing.T, chain [][]byte, root []byte, usage x509.ExtKeyUsage) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	rc, err := protocol.ParseCertificate(root)
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(rc.X509)
	var leaf *x509.Certificate
	for i, d := range chain {
		// protocol.ParseCertificate marks setpay's critical certificate-type
		// extension handled; crypto/x509 does the rest.
		c, err := protocol.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			leaf = c.X509
		} else {
			inter.AddCert(c.X509)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: epoch,
		KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Errorf("crypto/x509: %s: %v", leaf.Subject.CommonName, err)
	}
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want code %d (%s)", code, code)
	}
	if got := protocol.CodeOf(err); got != code {
		t.Fatalf("error %v: code %d (%s), want %d (%s)", err, got, got, code, code)
	}
}

func sigKey(t testing.TB, s protocol.Suite, seed byte) crypto.Signer {
	t.Helper()
	b := bytes.Repeat([]byte{seed}, 32)
	if s == protocol.SuitePQ {
		return ed25519.NewKeyFromSeed(b)
	}
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func kemKey(s protocol.Suite, seed byte) (kem.PublicKey, kem.PrivateKey) {
	return s.KEM().DeriveKeyPair(bytes.Repeat([]byte{seed}, s.KEM().SeedSize()))
}

func TestHierarchyVerifies(t *testing.T) {
	c, _ := newCA(t, ca.Options{Brand: "TestBrand"})
	tr := trustOf(t, c)
	if got := c.Suites(); !slices.Equal(got, protocol.Suites) {
		t.Fatalf("suites %v, want both", got)
	}
	for _, s := range c.Suites() {
		h := c.Hierarchy(s)
		t.Run(s.String()+" CA certificates chain to the root through the SET types", func(t *testing.T) {
			for _, a := range h.Authorities() {
				pc, err := protocol.ParseCertificate(a.Cert)
				if err != nil {
					t.Fatal(err)
				}
				if pc.Type != a.Type || pc.Brand != "TestBrand" || !pc.X509.IsCA ||
					pc.X509.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || len(pc.X509.SubjectKeyId) == 0 {
					t.Errorf("%s: type %s, brand %q, CA %v, key usage %v", a.Type, pc.Type, pc.Brand, pc.X509.IsCA, pc.X509.KeyUsage)
				}
				if want := map[protocol.Suite]x509.PublicKeyAlgorithm{protocol.SuitePQ: x509.Ed25519, protocol.SuiteNIST: x509.ECDSA}[s]; pc.X509.PublicKeyAlgorithm != want {
					t.Errorf("%s key is %v, want %v", a.Type, pc.X509.PublicKeyAlgorithm, want)
				}
				years := map[protocol.CertType]int{protocol.CertRootCA: 10, protocol.CertBrandCA: 5}[a.Type]
				if years == 0 {
					years = 3
				}
				if !pc.X509.NotAfter.Equal(epoch.AddDate(years, 0, 0)) {
					t.Errorf("%s valid until %s, want %d years", a.Type, pc.X509.NotAfter, years)
				}
				if a.Type == protocol.CertRootCA {
					continue
				}
				if _, err := tr.Verify(a.Chain, protocol.ThumbprintOf(a.Cert), a.Type, 0); err != nil {
					t.Errorf("Trust.Verify %s: %v", a.Type, err)
				}
				x509Verify(t, a.Chain, h.Root.Cert, x509.ExtKeyUsageAny)
			}
		})
		t.Run(s.String()+" registration keys are the role CAs' own end-entity certificates", func(t *testing.T) {
			for _, a := range []*ca.Authority{h.Cardholder, h.Merchant, h.Gateway} {
				sigT, keT, _ := a.Type.RegistrationTypes()
				if a.Sig == nil || a.KE == nil {
					t.Fatalf("%s has no registration keys", a.Type)
				}
				if a.Sig.Cert.Type != sigT || a.KE.Cert.Type != keT || a.Sig.Suite() != s || a.KE.Suite() != s {
					t.Errorf("%s: registration keys %s/%s of suites %s/%s", a.Type, a.Sig.Cert.Type, a.KE.Cert.Type, a.Sig.Suite(), a.KE.Suite())
				}
				if !slices.EqualFunc(a.Sig.Chain[1:], a.Chain, bytes.Equal) || !slices.EqualFunc(a.KE.Chain[1:], a.Chain, bytes.Equal) {
					t.Errorf("%s: registration chains are not the CA's chain", a.Type)
				}
				if _, err := tr.Verify(a.Sig.Chain, a.Sig.Cert.Thumb, sigT, s); err != nil {
					t.Error(err)
				}
				if _, err := tr.Verify(a.KE.Chain, a.KE.Cert.Thumb, keT, s); err != nil {
					t.Error(err)
				}
				if ku := a.KE.Cert.X509.KeyUsage; ku != x509.KeyUsageKeyEncipherment {
					t.Errorf("%s key usage %v", keT, ku)
				}
				x509Verify(t, a.Sig.Chain, h.Root.Cert, x509.ExtKeyUsageAny)
				x509Verify(t, a.KE.Chain, h.Root.Cert, x509.ExtKeyUsageAny)
			}
		})
		t.Run(s.String()+" the CA server's TLS certificate is a P-256 key for the default hosts", func(t *testing.T) {
			tc := h.TLS
			if len(tc.Certificate) != 2 || !bytes.Equal(tc.Certificate[1], h.Brand.Cert) {
				t.Fatal("TLS chain is not leaf, brand CA")
			}
			pc, err := tr.Verify(tc.Certificate, protocol.ThumbprintOf(tc.Certificate[0]), protocol.CertCATLS, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := pc.X509.PublicKey.(*ecdsa.PublicKey); !ok {
				t.Errorf("TLS key is %T", pc.X509.PublicKey)
			}
			if !slices.Equal(pc.X509.DNSNames, []string{"localhost"}) || len(pc.X509.IPAddresses) != 2 ||
				!pc.X509.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !pc.X509.IPAddresses[1].Equal(net.IPv6loopback) {
				t.Errorf("TLS names %v %v", pc.X509.DNSNames, pc.X509.IPAddresses)
			}
			if err := pc.X509.VerifyHostname("localhost"); err != nil {
				t.Error(err)
			}
			x509Verify(t, tc.Certificate, h.Root.Cert, x509.ExtKeyUsageServerAuth)
			x509Verify(t, tc.Certificate, h.Root.Cert, x509.ExtKeyUsageClientAuth)
		})
	}
	if !bytes.Equal(c.TLSCertificate().Certificate[0], c.Hierarchy(protocol.SuitePQ).TLS.Certificate[0]) {
		t.Error("TLSCertificate is not the first suite's")
	}
}

// issueCase is one certificate to issue in TestIssueEveryType.
type issueCase struct {
	name   string
	ca     func(h *ca.Hierarchy) *ca.Authority
	req    func(s protocol.Suite) ca.IssueRequest
	usage  x509.ExtKeyUsage
	keyFor func(s protocol.Suite) any // the private key, to pair with the certificate
	check  func(t *testing.T, c *protocol.Cert)
}

var merchantData = protocol.MerchantData{MerchantID: "M-0001", Name: "Test Shop", AcquirerBIN: "400000"}

var accountHash = protocol.Digest{1, 2, 3, 4, 5, 6, 7, 8}

func issueCases(t *testing.T) []issueCase {
	name := func(cn string) pkix.Name { return pkix.Name{CommonName: cn, Organization: []string{"setpay test"}} }
	sig := func(seed byte) func(s protocol.Suite) any {
		return func(s protocol.Suite) any { return sigKey(t, s, seed) }
	}
	ke := func(seed byte) func(s protocol.Suite) any {
		return func(s protocol.Suite) any { _, k := kemKey(s, seed); return k }
	}
	pub := func(seed byte) func(s protocol.Suite) any {
		return func(s protocol.Suite) any { return sigKey(t, s, seed).Public() }
	}
	kpub := func(seed byte) func(s protocol.Suite) any {
		return func(s protocol.Suite) any { k, _ := kemKey(s, seed); return k }
	}
	req := func(typ protocol.CertType, cn string, key func(protocol.Suite) any, exts ...pkix.Extension) func(protocol.Suite) ca.IssueRequest {
		return func(s protocol.Suite) ca.IssueRequest {
			return ca.IssueRequest{Type: typ, Subject: name(cn), Public: key(s), Extensions: exts}
		}
	}
	p256 := func(seed byte) func(protocol.Suite) any {
		return func(protocol.Suite) any { return sigKey(t, protocol.SuiteNIST, seed).Public() }
	}
	ed := func(seed byte) func(protocol.Suite) any {
		return func(protocol.Suite) any { return sigKey(t, protocol.SuitePQ, seed).Public() }
	}
	tls := func(typ protocol.CertType, key func(protocol.Suite) any) func(protocol.Suite) ca.IssueRequest {
		return func(s protocol.Suite) ca.IssueRequest {
			return ca.IssueRequest{Type: typ, Subject: name("tls"), Public: key(s), DNSNames: []string{"party.example"},
				IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}
		}
	}
	cch := func(h *ca.Hierarchy) *ca.Authority { return h.Cardholder }
	mca := func(h *ca.Hierarchy) *ca.Authority { return h.Merchant }
	pca := func(h *ca.Hierarchy) *ca.Authority { return h.Gateway }
	return []issueCase{
		{name: "a cardholder signature certificate carries the account hash", ca: cch,
			req: req(protocol.CertCardholderSignature, "cardholder", pub(1), protocol.AccountHashExtension(accountHash)), keyFor: sig(1),
			check: func(t *testing.T, c *protocol.Cert) {
				if c.AccountHash == nil || *c.AccountHash != accountHash {
					t.Errorf("account hash %v", c.AccountHash)
				}
			}},
		{name: "a merchant signature certificate carries the merchant data", ca: mca,
			req: req(protocol.CertMerchantSignature, "merchant", pub(2), protocol.MerchantDataExtension(merchantData)), keyFor: sig(2),
			check: func(t *testing.T, c *protocol.Cert) {
				if c.Merchant == nil || *c.Merchant != merchantData {
					t.Errorf("merchant data %v", c.Merchant)
				}
			}},
		{name: "a merchant key-exchange certificate carries the suite's KEM key", ca: mca,
			req: req(protocol.CertMerchantKeyExchange, "merchant", kpub(3), protocol.MerchantDataExtension(merchantData)), keyFor: ke(3),
			check: func(t *testing.T, c *protocol.Cert) {
				if c.Merchant == nil || *c.Merchant != merchantData || c.X509.KeyUsage != x509.KeyUsageKeyEncipherment {
					t.Errorf("merchant data %v, key usage %v", c.Merchant, c.X509.KeyUsage)
				}
			}},
		{name: "a gateway signature certificate", ca: pca, req: req(protocol.CertGatewaySignature, "gateway", pub(4)), keyFor: sig(4)},
		{name: "a gateway key-exchange certificate", ca: pca, req: req(protocol.CertGatewayKeyExchange, "gateway", kpub(5)), keyFor: ke(5)},
		{name: "a cardholder TLS certificate with a P-256 key", ca: cch, req: tls(protocol.CertCardholderTLS, p256(6)), usage: x509.ExtKeyUsageClientAuth},
		{name: "a merchant TLS certificate with an Ed25519 key", ca: mca, req: tls(protocol.CertMerchantTLS, ed(7)), usage: x509.ExtKeyUsageServerAuth},
		{name: "a gateway TLS certificate with a P-256 key", ca: pca, req: tls(protocol.CertGatewayTLS, p256(8)), usage: x509.ExtKeyUsageServerAuth},
	}
}

func TestIssueEveryType(t *testing.T) {
	c, _ := newCA(t, ca.Options{})
	tr := trustOf(t, c)
	for _, s := range c.Suites() {
		h := c.Hierarchy(s)
		for _, tc := range issueCases(t) {
			t.Run(s.String()+" "+tc.name, func(t *testing.T) {
				a := tc.ca(h)
				r := tc.req(s)
				der, err := a.Issue(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				chain := chainOf(der, a)
				suite := s
				if r.Type.IsTLS() {
					suite = 0
				}
				pc, err := tr.Verify(chain, protocol.ThumbprintOf(der), r.Type, suite)
				if err != nil {
					t.Fatal(err)
				}
				usage := tc.usage
				if usage == 0 {
					usage = x509.ExtKeyUsageAny
				}
				x509Verify(t, chain, h.Root.Cert, usage)
				if pc.Type != r.Type || pc.Brand != ca.DefaultBrand || pc.X509.Subject.CommonName != r.Subject.CommonName {
					t.Errorf("type %s, brand %q, subject %q", pc.Type, pc.Brand, pc.X509.Subject)
				}
				if !pc.X509.NotAfter.Equal(epoch.AddDate(1, 0, 0)) || !pc.X509.NotBefore.Equal(epoch.Add(-time.Minute)) {
					t.Errorf("valid %s to %s", pc.X509.NotBefore, pc.X509.NotAfter)
				}
				if r.Type.IsTLS() {
					eku := pc.X509.ExtKeyUsage
					if !slices.Equal(eku, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) ||
						!slices.Equal(pc.X509.DNSNames, r.DNSNames) || len(pc.X509.IPAddresses) != 1 {
						t.Errorf("TLS: EKU %v, names %v %v", eku, pc.X509.DNSNames, pc.X509.IPAddresses)
					}
				} else if len(pc.X509.ExtKeyUsage) != 0 || len(pc.X509.DNSNames) != 0 {
					t.Errorf("EKU %v, DNS names %v", pc.X509.ExtKeyUsage, pc.X509.DNSNames)
				}
				if tc.check != nil {
					tc.check(t, pc)
				}
				switch k := tc.keyFor; {
				case k == nil:
				case r.Type.IsKeyExchange():
					if _, err := protocol.NewKeyExchangeKey(k(s).(kem.PrivateKey), chain); err != nil {
						t.Errorf("the key-exchange key does not pair with its certificate: %v", err)
					}
				default:
					if _, err := protocol.NewSigningKey(k(s).(crypto.Signer), chain); err != nil {
						t.Errorf("the signature key does not pair with its certificate: %v", err)
					}
				}
				recs, err := c.List()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(recs, func(rec ca.Record) bool {
					return bytes.Equal(rec.Cert, der) && rec.Type == r.Type && rec.Issuer == a.Type && rec.Status(epoch) == "valid"
				}) {
					t.Error("List does not show the certificate")
				}
			})
		}
	}
}

func TestIssueRejects(t *testing.T) {
	c, _ := newCA(t, ca.Options{Suites: []protocol.Suite{protocol.SuitePQ}})
	h := c.Hierarchy(protocol.SuitePQ)
	if c.Hierarchy(protocol.SuiteNIST) != nil {
		t.Fatal("a CA of suite pq has a nist hierarchy")
	}
	ed := sigKey(t, protocol.SuitePQ, 1).Public()
	p256 := sigKey(t, protocol.SuiteNIST, 1).Public()
	xw, _ := kemKey(protocol.SuitePQ, 1)
	p256kem, _ := kemKey(protocol.SuiteNIST, 1)
	n := pkix.Name{CommonName: "x"}
	for _, tc := range []struct {
		name string
		a    *ca.Authority
		r    ca.IssueRequest
		want string
	}{
		{"a type the CA does not issue", h.Merchant, ca.IssueRequest{Type: protocol.CertCardholderSignature, Subject: n, Public: ed}, "does not issue"},
		{"a root from the brand CA", h.Brand, ca.IssueRequest{Type: protocol.CertRootCA, Subject: n, Public: ed}, "does not issue"},
		{"a signature key of the other suite", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: p256}, "needs a Ed25519 key"},
		{"a KEM key of the other suite", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewayKeyExchange, Subject: n, Public: p256kem}, "needs a HPKE_KEM_XWING public key"},
		{"a signature key for a key-exchange type", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewayKeyExchange, Subject: n, Public: ed}, "needs a kem.PublicKey"},
		{"a KEM key for a signature type", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: xw}, "Ed25519 or ECDSA P-256 public key"},
		{"a private key", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: sigKey(t, protocol.SuitePQ, 1)}, "public key"},
		{"no common name", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Public: ed}, "no common name"},
		{"the certificate-type extension", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			Extensions: []pkix.Extension{protocol.CertTypeExtension(protocol.CertGatewayCA)}}, "the CA's to set"},
		{"the brand extension", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			Extensions: []pkix.Extension{protocol.BrandExtension("Other")}}, "the CA's to set"},
		{"a standard extension", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			Extensions: []pkix.Extension{{Id: []int{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 0}}}}, "standard extension"},
		{"an extension twice", h.Cardholder, ca.IssueRequest{Type: protocol.CertCardholderSignature, Subject: n, Public: ed,
			Extensions: []pkix.Extension{protocol.AccountHashExtension(accountHash), protocol.AccountHashExtension(accountHash)}}, "given twice"},
		{"merchant data outside a merchant certificate", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			Extensions: []pkix.Extension{protocol.MerchantDataExtension(merchantData)}}, "merchant data"},
		{"DNS names in a signature certificate", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			DNSNames: []string{"a.example"}}, "belong in TLS"},
		{"a NotAfter beyond the CA's", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			NotAfter: epoch.AddDate(4, 0, 0)}, "is after"},
		{"a NotAfter in the past", h.Gateway, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed,
			NotAfter: epoch.Add(-time.Hour)}, "not in the future"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := tc.a.Issue(context.Background(), tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	t.Run("an explicit NotAfter is kept", func(t *testing.T) {
		na := epoch.Add(48 * time.Hour)
		der, err := h.Gateway.Issue(context.Background(), ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: n, Public: ed, NotAfter: na})
		if err != nil {
			t.Fatal(err)
		}
		x, _ := x509.ParseCertificate(der)
		if !x.NotAfter.Equal(na) {
			t.Errorf("NotAfter %s", x.NotAfter)
		}
	})
}

func TestCertificatesKeepToTheirRole(t *testing.T) {
	c, _ := newCA(t, ca.Options{})
	tr := trustOf(t, c)
	for _, s := range c.Suites() {
		h := c.Hierarchy(s)
		mk := sigKey(t, s, 9)
		sigDER, err := h.Merchant.Issue(context.Background(), ca.IssueRequest{Type: protocol.CertMerchantSignature,
			Subject: pkix.Name{CommonName: "shop"}, Public: mk.Public(), Extensions: []pkix.Extension{protocol.MerchantDataExtension(merchantData)}})
		if err != nil {
			t.Fatal(err)
		}
		kpub, _ := kemKey(s, 9)
		keDER, err := h.Merchant.Issue(context.Background(), ca.IssueRequest{Type: protocol.CertMerchantKeyExchange,
			Subject: pkix.Name{CommonName: "shop"}, Public: kpub, Extensions: []pkix.Extension{protocol.MerchantDataExtension(merchantData)}})
		if err != nil {
			t.Fatal(err)
		}
		tlsDER, err := h.Merchant.Issue(context.Background(), ca.IssueRequest{Type: protocol.CertMerchantTLS,
			Subject: pkix.Name{CommonName: "shop"}, Public: mk.Public()})
		if err != nil {
			t.Fatal(err)
		}
		t.Run(s.String()+" a merchant signature certificate is no gateway's", func(t *testing.T) {
			_, err := tr.Verify(chainOf(sigDER, h.Merchant), protocol.ThumbprintOf(sigDER), protocol.CertGatewaySignature, s)
			wantCode(t, err, protocol.CodeCertRole)
		})
		t.Run(s.String()+" a key-exchange certificate does not verify as a signature certificate", func(t *testing.T) {
			_, err := tr.Verify(chainOf(keDER, h.Merchant), protocol.ThumbprintOf(keDER), protocol.CertMerchantSignature, s)
			wantCode(t, err, protocol.CodeCertRole)
		})
		t.Run(s.String()+" a key-exchange key cannot sign", func(t *testing.T) {
			_, err := protocol.NewSigningKey(mk, chainOf(keDER, h.Merchant))
			wantCode(t, err, protocol.CodeCertRole)
		})
		t.Run(s.String()+" a TLS certificate does not sign messages", func(t *testing.T) {
			_, err := tr.Verify(chainOf(tlsDER, h.Merchant), protocol.ThumbprintOf(tlsDER), protocol.CertMerchantSignature, s)
			wantCode(t, err, protocol.CodeCertRole)
		})
		t.Run(s.String()+" a registration certificate is not a party's", func(t *testing.T) {
			_, err := tr.Verify(h.Merchant.Sig.Chain, h.Merchant.Sig.Cert.Thumb, protocol.CertMerchantSignature, s)
			wantCode(t, err, protocol.CodeCertRole)
		})
	}
}

func TestRevocation(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := epoch
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, dir := newCA(t, ca.Options{Now: clock})
	h := c.Hierarchy(protocol.SuiteNIST)
	issue := func(seed byte) []byte {
		der, err := h.Gateway.Issue(ctx, ca.IssueRequest{Type: protocol.CertGatewaySignature, Subject: pkix.Name{CommonName: "gw"},
			Public: sigKey(t, protocol.SuiteNIST, seed).Public()})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	revoked, kept := issue(1), issue(2)
	serial := func(der []byte) *big.Int { x, _ := x509.ParseCertificate(der); return x.SerialNumber }
	verify := func(tr *protocol.Trust, der []byte) error {
		_, err := tr.Verify(chainOf(der, h.Gateway), protocol.ThumbprintOf(der), protocol.CertGatewaySignature, protocol.SuiteNIST)
		return err
	}
	before, err := h.Gateway.CRL()
	if err != nil {
		t.Fatal(err)
	}
	bci0, err := h.BCI(ctx)
	if err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	now = epoch.Add(time.Hour) // revoked an hour after issue
	mu.Unlock()
	if err := c.Revoke(ctx, serial(revoked), ca.ReasonKeyCompromise, "key leaked"); err != nil {
		t.Fatal(err)
	}

	t.Run("the CRL lists the serial with the reason and the CA's time", func(t *testing.T) {
		der, err := h.Gateway.CRL()
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		gx, _ := x509.ParseCertificate(h.Gateway.Cert)
		if err := crl.CheckSignatureFrom(gx); err != nil {
			t.Fatal(err)
		}
		old, _ := x509.ParseRevocationList(before)
		if crl.Number.Cmp(old.Number) <= 0 || !crl.ThisUpdate.Equal(epoch.Add(time.Hour)) {
			t.Errorf("CRL number %v after %v, thisUpdate %s", crl.Number, old.Number, crl.ThisUpdate)
		}
		if len(crl.RevokedCertificateEntries) != 1 {
			t.Fatalf("%d entries", len(crl.RevokedCertificateEntries))
		}
		e := crl.RevokedCertificateEntries[0]
		if e.SerialNumber.Cmp(serial(revoked)) != 0 || e.ReasonCode != int(ca.ReasonKeyCompromise) || !e.RevocationTime.Equal(epoch.Add(time.Hour)) {
			t.Errorf("entry %v reason %d at %s", e.SerialNumber, e.ReasonCode, e.RevocationTime)
		}
	})
	t.Run("a new BCI with a higher number lists the new CRL", func(t *testing.T) {
		bci, err := h.BCI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl, _ := h.Gateway.CRL()
		if bci.Data.Number <= bci0.Data.Number || len(bci.Data.CRLs) != 5 {
			t.Fatalf("BCI number %d after %d, %d CRLs", bci.Data.Number, bci0.Data.Number, len(bci.Data.CRLs))
		}
		if !slices.ContainsFunc(bci.Data.CRLs, func(r protocol.CRLRef) bool { return r.CRL == protocol.ThumbprintOf(crl) }) {
			t.Error("the BCI does not list the gateway CA's new CRL")
		}
		again, _ := h.BCI(ctx)
		if again.Data.Number != bci.Data.Number {
			t.Error("an unchanged BCI changed number")
		}
	})
	t.Run("a Trust updated from the BCI rejects the revoked certificate only", func(t *testing.T) {
		tr := trustOf(t, c)
		wantCode(t, verify(tr, revoked), protocol.CodeCertRevoked)
		if err := verify(tr, kept); err != nil {
			t.Error(err)
		}
		// The same with a Trust built from the published data alone.
		bci, err := h.BCI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crls, err := h.CRLs()
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := protocol.NewTrust(h.Root.Cert)
		if err != nil {
			t.Fatal(err)
		}
		fresh.Now = clock
		if err := fresh.UpdateRevocation(bci, crls, nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, verify(fresh, revoked), protocol.CodeCertRevoked)
		if err := verify(fresh, kept); err != nil {
			t.Error(err)
		}
	})
	t.Run("List shows the revocation", func(t *testing.T) {
		recs, err := c.List()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(recs, func(r ca.Record) bool { return bytes.Equal(r.Cert, revoked) })
		if i < 0 || !recs[i].Revoked || recs[i].Reason != ca.ReasonKeyCompromise || recs[i].ReasonText != "key leaked" ||
			!recs[i].RevokedAt.Equal(epoch.Add(time.Hour)) || recs[i].Status(epoch) != "revoked (keyCompromise)" {
			t.Errorf("record %+v", recs[i])
		}
	})
	t.Run("revoking twice or an unknown serial fails", func(t *testing.T) {
		if err := c.Revoke(ctx, serial(revoked), ca.ReasonSuperseded, ""); !errors.Is(err, ca.ErrRevoked) {
			t.Errorf("second revocation: %v", err)
		}
		if err := c.Revoke(ctx, big.NewInt(12345), ca.ReasonSuperseded, ""); !errors.Is(err, ca.ErrNotFound) {
			t.Errorf("unknown serial: %v", err)
		}
		if err := c.Revoke(ctx, serial(kept), ca.Reason(6), ""); err == nil {
			t.Error("certificateHold accepted")
		}
	})
	t.Run("revocation persists across Close and Open", func(t *testing.T) {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		c2, err := ca.Open(dir, ca.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		tr := trustOf(t, c2)
		h2 := c2.Hierarchy(protocol.SuiteNIST)
		_, err = tr.Verify(chainOf(revoked, h2.Gateway), protocol.ThumbprintOf(revoked), protocol.CertGatewaySignature, protocol.SuiteNIST)
		wantCode(t, err, protocol.CodeCertRevoked)
		if _, err := tr.Verify(chainOf(kept, h2.Gateway), protocol.ThumbprintOf(kept), protocol.CertGatewaySignature, protocol.SuiteNIST); err != nil {
			t.Error(err)
		}
		// Revoking a role CA revokes everything below it.
		if err := c2.Revoke(ctx, serial(h2.Gateway.Cert), ca.ReasonCACompromise, ""); err != nil {
			t.Fatal(err)
		}
		tr = trustOf(t, c2)
		_, err = tr.Verify(chainOf(kept, h2.Gateway), protocol.ThumbprintOf(kept), protocol.CertGatewaySignature, protocol.SuiteNIST)
		wantCode(t, err, protocol.CodeCertRevoked)
		if _, err := tr.Verify(h2.Merchant.Sig.Chain, h2.Merchant.Sig.Cert.Thumb, protocol.CertMerchantCASignature, protocol.SuiteNIST); err != nil {
			t.Errorf("the merchant CA is not revoked: %v", err)
		}
		// A Trust that knows of the revoked CA accepts the next BCI, which
		// no longer lists the revoked CA's CRL.
		mu.Lock()
		now = now.Add(13 * time.Hour)
		mu.Unlock()
		bci, err := h2.BCI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crls, err := h2.CRLs()
		if err != nil {
			t.Fatal(err)
		}
		if len(bci.Data.CRLs) != 4 || len(crls) != 4 {
			t.Errorf("the BCI lists %d CRLs, want 4", len(bci.Data.CRLs))
		}
		if err := tr.UpdateRevocation(bci, crls, nil); err != nil {
			t.Fatal(err)
		}
		_, err = tr.Verify(chainOf(kept, h2.Gateway), protocol.ThumbprintOf(kept), protocol.CertGatewaySignature, protocol.SuiteNIST)
		wantCode(t, err, protocol.CodeCertRevoked)
		// The pq hierarchy is untouched.
		hp := c2.Hierarchy(protocol.SuitePQ)
		if _, err := tr.Verify(hp.Gateway.Sig.Chain, hp.Gateway.Sig.Cert.Thumb, protocol.CertGatewayCASignature, protocol.SuitePQ); err != nil {
			t.Error(err)
		}
	})
	t.Run("CRLs are reissued at half their validity, and the BCI with them", func(t *testing.T) {
		c3, err := ca.Open(dir, ca.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		h3 := c3.Hierarchy(protocol.SuitePQ)
		b1, _ := h3.BCI(ctx)
		mu.Lock()
		now = now.Add(13 * time.Hour)
		mu.Unlock()
		b2, err := h3.BCI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b2.Data.Number != b1.Data.Number+1 || !b2.Data.ThisUpdate.Equal(clock()) || !b2.Data.NextUpdate.Equal(clock().Add(24*time.Hour)) {
			t.Errorf("BCI %d %s..%s after %d", b2.Data.Number, b2.Data.ThisUpdate, b2.Data.NextUpdate, b1.Data.Number)
		}
		if _, err := c3.TrustContext(ctx); err != nil {
			t.Error(err)
		}
	})
}

func TestRevokeByThumbprint(t *testing.T) {
	c, _ := newCA(t, ca.Options{Suites: []protocol.Suite{protocol.SuitePQ}})
	h := c.Hierarchy(protocol.SuitePQ)
	kpub, _ := kemKey(protocol.SuitePQ, 4)
	der, err := h.Gateway.Issue(context.Background(), ca.IssueRequest{Type: protocol.CertGatewayKeyExchange, Subject: pkix.Name{CommonName: "gw"}, Public: kpub})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeCertificate(context.Background(), protocol.ThumbprintOf(der), ca.ReasonSuperseded, "renewed"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Trust().Verify(chainOf(der, h.Gateway), protocol.ThumbprintOf(der), protocol.CertGatewayKeyExchange, protocol.SuitePQ)
	wantCode(t, err, protocol.CodeCertRevoked)
	if err := c.RevokeCertificate(context.Background(), protocol.Thumbprint{1}, ca.ReasonSuperseded, ""); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("unknown thumbprint: %v", err)
	}
}

// files returns the PEM and key files of a CA directory (not the
// databases), by relative path.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(filepath.Dir(p)) == "db" {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitIsDeterministic(t *testing.T) {
	t.Parallel() // PBKDF2 of the encrypted keys takes seconds
	initDir := func(o ca.Options) map[string][]byte {
		dir := filepath.Join(t.TempDir(), "ca")
		o.Rand, o.Now = seeded("determinism"), fixedNow
		if err := ca.Init(dir, o); err != nil {
			t.Fatal(err)
		}
		return files(t, dir)
	}
	t.Run("both suites, unencrypted", func(t *testing.T) {
		a, b := initDir(ca.Options{}), initDir(ca.Options{})
		if len(a) != 2*25 {
			t.Errorf("%d files", len(a))
		}
		for name, content := range a {
			if !bytes.Equal(content, b[name]) {
				t.Errorf("%s differs", name)
			}
		}
	})
	t.Run("with a passphrase", func(t *testing.T) {
		o := ca.Options{Suites: []protocol.Suite{protocol.SuiteNIST}, Passphrase: []byte("correct horse")}
		a, b := initDir(o), initDir(o)
		for name, content := range a {
			if !bytes.Equal(content, b[name]) {
				t.Errorf("%s differs", name)
			}
		}
	})
	t.Run("another seed gives other keys", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ca")
		if err := ca.Init(dir, ca.Options{Rand: seeded("other"), Now: fixedNow, Suites: []protocol.Suite{protocol.SuitePQ}}); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(files(t, dir)["pq/root.key"], initDir(ca.Options{})["pq/root.key"]) {
			t.Error("same root key from another seed")
		}
	})
}

func TestKeyFiles(t *testing.T) {
	t.Parallel() // PBKDF2 of the encrypted keys takes seconds
	pass := []byte("correct horse battery staple")
	_, dir := newCA(t, ca.Options{Suites: []protocol.Suite{protocol.SuitePQ}, Passphrase: pass})
	t.Run("keys are 0600 and encrypted, directories 0700", func(t *testing.T) {
		var keys int
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				if fi.Mode().Perm() != 0o700 {
					t.Errorf("%s is %v", p, fi.Mode().Perm())
				}
			case strings.HasSuffix(p, ".key"):
				keys++
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s is %v", p, fi.Mode().Perm())
				}
				b, _ := os.ReadFile(p)
				if !bytes.Contains(b, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) && !bytes.Contains(b, []byte("-----BEGIN SETPAY ENCRYPTED XWING PRIVATE KEY-----")) {
					t.Errorf("%s is not encrypted:\n%s", p, b)
				}
			case filepath.Base(filepath.Dir(p)) == "db":
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s is %v", p, fi.Mode().Perm())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if keys != 12 {
			t.Errorf("%d key files, want 12", keys)
		}
	})
	t.Run("a wrong passphrase is refused clearly", func(t *testing.T) {
		_, err := ca.Open(dir, ca.Options{Passphrase: []byte("wrong")})
		if !errors.Is(err, ca.ErrPassphrase) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a missing passphrase is refused clearly", func(t *testing.T) {
		_, err := ca.Open(dir, ca.Options{})
		if !errors.Is(err, ca.ErrPassphrase) || !strings.Contains(err.Error(), "is encrypted") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("without a passphrase keys are PKCS#8 and setpay KEM blocks", func(t *testing.T) {
		_, dir := newCA(t, ca.Options{Suites: []protocol.Suite{protocol.SuiteNIST}})
		b, _ := os.ReadFile(filepath.Join(dir, "nist", "merchant-ca-ke.key"))
		if !bytes.HasPrefix(b, []byte("-----BEGIN SETPAY DHKEM P256 PRIVATE KEY-----")) {
			t.Errorf("KEM key file:\n%s", b)
		}
		b, _ = os.ReadFile(filepath.Join(dir, "nist", "root.key"))
		if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Errorf("root key file:\n%s", b)
		}
	})
}

func TestInitRefusesANonEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ca.Init(dir, ca.Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("got %v", err)
	}
	if _, err := ca.Open(t.TempDir(), ca.Options{}); err == nil {
		t.Fatal("Open of an empty directory succeeded")
	}
}

func TestAFailedInitLeavesNothing(t *testing.T) {
	t.Run("in a directory it created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ca")
		// No PostgreSQL listens on port 1: the first authority fails to start.
		err := ca.Init(dir, ca.Options{DB: ca.DBOptions{Type: "postgresql", DataSource: "postgresql://setpay@127.0.0.1:1/", Database: "setpay_{suite}_{ca}"}})
		if err == nil || !strings.Contains(err.Error(), "starting the pq root authority") {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is left behind: %v", dir, err)
		}
	})
	t.Run("in an empty directory it was given", func(t *testing.T) {
		dir := t.TempDir()
		if err := ca.Init(dir, ca.Options{DB: ca.DBOptions{Type: "mysql"}}); err == nil {
			t.Fatal("a mysql database without a DataSource was accepted")
		}
		if err := ca.Init(dir, ca.Options{Hosts: []string{"a b"}}); err == nil {
			t.Fatal("a host name with a space was accepted")
		}
		err := ca.Init(dir, ca.Options{DB: ca.DBOptions{Type: "postgresql", DataSource: "postgresql://setpay@127.0.0.1:1/"}})
		if err == nil {
			t.Fatal("Init succeeded without a database")
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%d entries left behind", len(ents))
		}
	})
}

func TestOpenChecksTheBrand(t *testing.T) {
	_, dir := newCA(t, ca.Options{Brand: "Alpha", Suites: []protocol.Suite{protocol.SuitePQ}})
	if _, err := ca.Open(dir, ca.Options{Brand: "Beta"}); err == nil || !strings.Contains(err.Error(), "brand") {
		t.Fatalf("got %v", err)
	}
}

func TestIssueIsSafeForConcurrentUse(t *testing.T) {
	c, _ := newCA(t, ca.Options{})
	tr := trustOf(t, c)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			s := protocol.Suites[i%2]
			h := c.Hierarchy(s)
			kpub, _ := kemKey(s, byte(i))
			for _, r := range []ca.IssueRequest{
				{Type: protocol.CertGatewaySignature, Subject: pkix.Name{CommonName: "gw"}, Public: sigKey(t, s, byte(i)).Public()},
				{Type: protocol.CertGatewayKeyExchange, Subject: pkix.Name{CommonName: "gw"}, Public: kpub},
			} {
				der, err := h.Gateway.Issue(context.Background(), r)
				if err == nil {
					_, err = tr.Verify(chainOf(der, h.Gateway), protocol.ThumbprintOf(der), r.Type, s)
				}
				if err != nil {
					errs <- err
				}
			}
			if _, err := h.BCI(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(recs); n != 2*11+32 {
		t.Errorf("%d records, want %d", n, 2*11+32)
	}
}
