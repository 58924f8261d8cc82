package mtls_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

// pki is one CA with the TLS certificates the tests present.
type pki struct {
	c     *ca.CA
	trust *protocol.Trust
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	if err := ca.Init(dir, ca.Options{Suites: []protocol.Suite{protocol.SuitePQ}}); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Open(dir, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &pki{c: c, trust: c.Trust()}
}

// cert issues a certificate of type typ (from its role CA) for a fresh key
// (P-256 for TLS, Ed25519 for signatures) and returns it as a tls.Certificate.
func (p *pki) cert(t *testing.T, typ protocol.CertType, name string) tls.Certificate {
	t.Helper()
	h := p.c.Hierarchy(protocol.SuitePQ)
	var a *ca.Authority
	switch typ.Issuer() {
	case protocol.CertCardholderCA:
		a = h.Cardholder
	case protocol.CertMerchantCA:
		a = h.Merchant
	case protocol.CertGatewayCA:
		a = h.Gateway
	default:
		t.Fatalf("no role CA issues %s", typ)
	}
	var key crypto.Signer
	var err error
	if typ.IsTLS() {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	var exts []pkix.Extension
	if typ == protocol.CertMerchantSignature {
		exts = append(exts, protocol.MerchantDataExtension(protocol.MerchantData{MerchantID: "M-1", Name: name, AcquirerBIN: "400000"}))
	}
	if typ == protocol.CertCardholderSignature {
		exts = append(exts, protocol.AccountHashExtension(protocol.Digest{1}))
	}
	der, err := a.Issue(context.Background(), ca.IssueRequest{Type: typ, Subject: pkix.Name{CommonName: name}, Public: key.Public(), Extensions: exts})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: append([][]byte{der}, a.Chain...), PrivateKey: key}
}

func trusts(ts ...*protocol.Trust) mtls.Trusts { return func() []*protocol.Trust { return ts } }

// serve runs an HTTPS server presenting server that accepts the given
// client types.
func serve(t *testing.T, p *pki, server tls.Certificate, accept ...protocol.CertType) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := mtls.Peer(r.TLS, trusts(p.trust), accept...)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		io.WriteString(w, peer.Type.String())
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.TLS = mtls.Server([]tls.Certificate{server}, trusts(p.trust), nil, accept...)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(url string, tc *tls.Config) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestMutualTLS: the server accepts exactly the client certificate types it
// names, from its CA, unrevoked; the client accepts exactly the server type
// it names.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	foreign := newPKI(t)
	gw := p.cert(t, protocol.CertGatewayTLS, "gateway")
	shop := p.cert(t, protocol.CertMerchantTLS, "shop")
	url := serve(t, p, gw, protocol.CertMerchantTLS)

	got, err := get(url, mtls.Client(&shop, trusts(p.trust), nil, protocol.CertGatewayTLS))
	if err != nil || got != protocol.CertMerchantTLS.String() {
		t.Fatalf("merchant TLS client: %q, %v; want accepted", got, err)
	}

	cardholder := p.cert(t, protocol.CertCardholderTLS, "cardholder")
	sig := p.cert(t, protocol.CertMerchantSignature, "shop")
	foreignShop := foreign.cert(t, protocol.CertMerchantTLS, "shop")
	refused := []struct {
		name string
		cert *tls.Certificate
	}{
		{"no client certificate", nil},
		{"a cardholder's TLS certificate (wrong role)", &cardholder},
		{"a merchant signature certificate (not a TLS certificate)", &sig},
		{"a merchant TLS certificate of another CA", &foreignShop},
	}
	for _, c := range refused {
		if got, err := get(url, mtls.Client(c.cert, trusts(p.trust), nil, protocol.CertGatewayTLS)); err == nil {
			t.Errorf("%s: accepted (%q), want the handshake refused", c.name, got)
		}
	}

	// The client refuses a server of another role, and one of another CA.
	if _, err := get(url, mtls.Client(&shop, trusts(p.trust), nil, protocol.CertMerchantTLS)); err == nil || !strings.Contains(err.Error(), "gateway TLS") {
		t.Errorf("client expecting a merchant server: %v, want refused naming the gateway TLS certificate", err)
	}
	if _, err := get(url, mtls.Client(&shop, trusts(foreign.trust), nil, protocol.CertGatewayTLS)); err == nil {
		t.Error("client trusting another CA accepted the server")
	}
}

// TestRevokedClient: a revoked client certificate is refused from the next
// handshake on.
func TestRevokedClient(t *testing.T) {
	p := newPKI(t)
	gw := p.cert(t, protocol.CertGatewayTLS, "gateway")
	shop := p.cert(t, protocol.CertMerchantTLS, "shop")
	leaf, _ := x509.ParseCertificate(shop.Certificate[0])
	var revoked *big.Int
	p.trust.Revoked = func(c *x509.Certificate) bool { return revoked != nil && c.SerialNumber.Cmp(revoked) == 0 }
	url := serve(t, p, gw, protocol.CertMerchantTLS)
	if _, err := get(url, mtls.Client(&shop, trusts(p.trust), nil, protocol.CertGatewayTLS)); err != nil {
		t.Fatal(err)
	}
	revoked = leaf.SerialNumber
	if _, err := get(url, mtls.Client(&shop, trusts(p.trust), nil, protocol.CertGatewayTLS)); err == nil {
		t.Error("a revoked client certificate was accepted")
	}
}

func TestVerifyPeerEmpty(t *testing.T) {
	if _, err := mtls.VerifyPeer(nil, nil, protocol.CertMerchantTLS); err == nil {
		t.Error("no certificate accepted")
	}
	if _, err := mtls.Peer(nil, trusts(), protocol.CertMerchantTLS); err == nil {
		t.Error("Peer of no connection state")
	}
}

// TestRevokedOnAnOpenConnection: a connection outlives a revocation; the
// next request on it is refused all the same.
func TestRevokedOnAnOpenConnection(t *testing.T) {
	p := newPKI(t)
	gw := p.cert(t, protocol.CertGatewayTLS, "gateway")
	shop := p.cert(t, protocol.CertMerchantTLS, "shop")
	leaf, _ := x509.ParseCertificate(shop.Certificate[0])
	var revoked *big.Int
	p.trust.Revoked = func(c *x509.Certificate) bool { return revoked != nil && c.SerialNumber.Cmp(revoked) == 0 }
	url := serve(t, p, gw, protocol.CertMerchantTLS)
	tr := &http.Transport{TLSClientConfig: mtls.Client(&shop, trusts(p.trust), nil, protocol.CertGatewayTLS)}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	status := func() int {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("before the revocation: %d", s)
	}
	revoked = leaf.SerialNumber
	if s := status(); s != http.StatusForbidden {
		t.Errorf("on the open connection after the revocation: %d, want 403", s)
	}
}
