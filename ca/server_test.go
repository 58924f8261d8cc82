package ca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/protocol"
)

// startServer serves r's CA on loopback until the test ends.
func startServer(t *testing.T, r *rig) *ca.Server {
	t.Helper()
	srv, err := ca.NewServer(r.c, r.reg, ca.ServerOptions{Addr: "127.0.0.1:0", StepAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// client is an HTTPS client that checks the server's certificate as a
// setpay CA TLS certificate with r's Trust (crypto/x509 cannot verify it:
// the certificate-type extension is critical) and presents cert, if any.
func (r *rig) client(cert *tls.Certificate) *http.Client {
	trust := r.trust()
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			var chain [][]byte
			for _, c := range cs.PeerCertificates {
				chain = append(chain, c.Raw)
			}
			if _, err := trust.Verify(chain, protocol.ThumbprintOf(chain[0]), protocol.CertCATLS, 0); err != nil {
				return err
			}
			return cs.PeerCertificates[0].VerifyHostname("127.0.0.1")
		},
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	r.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func get(t *testing.T, c *http.Client, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func post(t *testing.T, c *http.Client, url, ctype string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := c.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// httpSend posts m to /register and returns the reply's message.
func (r *rig) httpSend(c *http.Client, base string, m protocol.Message) protocol.Message {
	r.t.Helper()
	resp, err := c.Post(base+"/register", ca.ContentTypeSetpay, bytes.NewReader(protocol.NewWrapper(m, regNow, nil, nil).Marshal()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ca.ContentTypeSetpay {
		r.t.Fatalf("POST /register: %s (%s): %q", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	w, err := protocol.Parse(b)
	if err != nil {
		r.t.Fatalf("reply to %s does not parse: %v", m.Type(), err)
	}
	return w.Message
}

// cardholderOverHTTPS registers a cardholder through the server and
// returns the issued certificates with the signature and TLS keys.
func (r *rig) cardholderOverHTTPS(c *http.Client, base string, s protocol.Suite) (*protocol.Issued, crypto.Signer, crypto.Signer) {
	r.t.Helper()
	a := r.applicant(protocol.RoleCardholder, s)
	req, err := a.CardCInitReq(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	res, ok := r.httpSend(c, base, req).(*protocol.CardCInitRes)
	if !ok {
		r.t.Fatal("CardCInitReq not answered with CardCInitRes")
	}
	if err := a.CheckCardCInitRes(res, nil); err != nil {
		r.t.Fatal(err)
	}
	pan, err := protocol.NewPAN(testPAN)
	if err != nil {
		r.t.Fatal(err)
	}
	rf, err := a.RegFormReq(pan, protocol.RequestInitial)
	if err != nil {
		r.t.Fatal(err)
	}
	form, ok := r.httpSend(c, base, rf).(*protocol.RegFormRes)
	if !ok {
		r.t.Fatal("RegFormReq not answered with RegFormRes")
	}
	if _, err := a.CheckRegFormRes(form); err != nil {
		r.t.Fatal(err)
	}
	acct := &protocol.AccountData{PAN: pan, CardExpiry: testExpiry}
	io.ReadFull(r.rnd, acct.CardSecret[:])
	io.ReadFull(r.rnd, acct.EXNonce[:])
	sig, tlsKey := r.signingKey(s), r.signingKey(protocol.SuiteNIST)
	cr, err := a.CertReq(protocol.CertReqParams{RequestType: protocol.RequestInitial, Account: acct,
		FormValues:   []protocol.FormValue{{Name: ca.FieldActivationCode, Value: testCode}},
		SignatureKey: sig, TLSKey: tlsKey.Public()})
	if err != nil {
		r.t.Fatal(err)
	}
	out, err := a.CheckCertRes(r.httpSend(c, base, cr))
	if err != nil {
		r.t.Fatal(err)
	}
	if out == nil {
		r.t.Fatal("registration pending, want issued")
	}
	return out, sig, tlsKey
}

// TestServerRegistration: a cardholder registers over HTTPS, then uses its
// TLS certificate as a client certificate; a signature certificate
// presented as a client certificate is refused with 403.
func TestServerRegistration(t *testing.T) {
	r := newRig(t)
	srv := startServer(t, r)
	base := "https://" + srv.Addr()
	c := r.client(nil)
	out, sig, tlsKey := r.cardholderOverHTTPS(c, base, protocol.SuitePQ)
	if _, err := r.c.Trust().Verify(out.TLS, protocol.ThumbprintOf(out.TLS[0]), protocol.CertCardholderTLS, 0); err != nil {
		t.Fatalf("issued TLS certificate: %v", err)
	}

	// The cardholder's TLS certificate is accepted as a client certificate.
	withTLS := r.client(&tls.Certificate{Certificate: out.TLS, PrivateKey: tlsKey})
	if code, _, _ := get(t, withTLS, base+"/ca/pq/roots.pem"); code != http.StatusOK {
		t.Errorf("with a cardholder TLS client certificate: %d, want 200", code)
	}
	// Its signature certificate is not a TLS certificate: the handshake
	// succeeds (the certificate is checked per request), the request gets
	// 403.
	withSig := r.client(&tls.Certificate{Certificate: out.Signature, PrivateKey: sig})
	if code, _, body := get(t, withSig, base+"/ca/pq/roots.pem"); code != http.StatusForbidden {
		t.Errorf("with a cardholder signature client certificate: %d %q, want 403", code, body)
	}
	if code, _ := post(t, withSig, base+"/register", ca.ContentTypeSetpay, []byte{0x30, 0}); code != http.StatusForbidden {
		t.Errorf("POST /register with a signature client certificate: %d, want 403", code)
	}
}

// TestServerRevocationFiles fetches the roots, chain, every CRL and the BCI
// of each suite and checks them as a relying party would.
func TestServerRevocationFiles(t *testing.T) {
	r := newRig(t)
	srv := startServer(t, r)
	base := "https://" + srv.Addr()
	c := r.client(nil)
	for _, s := range r.c.Suites() {
		h := r.c.Hierarchy(s)
		code, hdr, b := get(t, c, fmt.Sprintf("%s/ca/%s/roots.pem", base, s))
		if code != http.StatusOK || hdr.Get("Content-Type") != "application/x-pem-file" {
			t.Fatalf("%s roots.pem: %d %s", s, code, hdr.Get("Content-Type"))
		}
		if p, rest := pem.Decode(b); p == nil || !bytes.Equal(p.Bytes, h.Root.Cert) || len(bytes.TrimSpace(rest)) != 0 {
			t.Errorf("%s roots.pem is not the root certificate", s)
		}
		_, _, b = get(t, c, fmt.Sprintf("%s/ca/%s/chain.pem", base, s))
		var chain [][]byte
		for p, rest := pem.Decode(b); p != nil; p, rest = pem.Decode(rest) {
			chain = append(chain, p.Bytes)
		}
		want := [][]byte{h.Brand.Cert, h.Cardholder.Cert, h.Merchant.Cert, h.Gateway.Cert}
		if len(chain) != len(want) {
			t.Fatalf("%s chain.pem has %d certificates, want %d", s, len(chain), len(want))
		}
		for i := range want {
			if !bytes.Equal(chain[i], want[i]) {
				t.Errorf("%s chain.pem certificate %d differs", s, i)
			}
		}

		var crls [][]byte
		for _, a := range h.Authorities() {
			name := map[protocol.CertType]string{protocol.CertRootCA: "root", protocol.CertBrandCA: "brand",
				protocol.CertCardholderCA: "cardholder-ca", protocol.CertMerchantCA: "merchant-ca", protocol.CertGatewayCA: "gateway-ca"}[a.Type]
			code, hdr, b := get(t, c, fmt.Sprintf("%s/ca/%s/%s.crl", base, s, name))
			if code != http.StatusOK || hdr.Get("Content-Type") != "application/pkix-crl" {
				t.Fatalf("%s %s.crl: %d %s", s, name, code, hdr.Get("Content-Type"))
			}
			crl, err := x509.ParseRevocationList(b)
			if err != nil {
				t.Fatalf("%s %s.crl: %v", s, name, err)
			}
			issuer, err := x509.ParseCertificate(a.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if err := crl.CheckSignatureFrom(issuer); err != nil {
				t.Errorf("%s %s.crl signature: %v", s, name, err)
			}
			crls = append(crls, b)
		}

		code, hdr, b = get(t, c, fmt.Sprintf("%s/ca/%s/bci", base, s))
		if code != http.StatusOK || hdr.Get("Content-Type") != ca.ContentTypeSetpay {
			t.Fatalf("%s bci: %d %s", s, code, hdr.Get("Content-Type"))
		}
		bci, err := protocol.Decode[protocol.BCI](b)
		if err != nil {
			t.Fatalf("%s BCI: %v", s, err)
		}
		trust := r.trust()
		if err := trust.UpdateRevocation(bci, crls, nil); err != nil {
			t.Errorf("%s: the served BCI and CRLs do not check: %v", s, err)
		}
	}
}

// TestServerHTTPErrors: methods, sizes, media types and unknown paths.
func TestServerHTTPErrors(t *testing.T) {
	r := newRig(t)
	srv := startServer(t, r)
	base := "https://" + srv.Addr()
	c := r.client(nil)
	for _, path := range []string{"/ca/xx/roots.pem", "/ca/pq/nope.crl", "/ca/pq/issuer.crl", "/ca/pq/other", "/nothing"} {
		if code, _, _ := get(t, c, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if code, _, _ := get(t, c, base+"/register"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /register: %d, want 405", code)
	}
	if code, _ := post(t, c, base+"/ca/pq/bci", ca.ContentTypeSetpay, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ca/pq/bci: %d, want 405", code)
	}
	if code, _ := post(t, c, base+"/register", "application/json", []byte("{}")); code != http.StatusUnsupportedMediaType {
		t.Errorf("POST /register as JSON: %d, want 415", code)
	}
	if code, _ := post(t, c, base+"/register", ca.ContentTypeSetpay, make([]byte, protocol.MaxMessageSize+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /register of %d bytes: %d, want 413", protocol.MaxMessageSize+1, code)
	}
	// Garbage is answered by the registrar with an Error message.
	code, b := post(t, c, base+"/register", ca.ContentTypeSetpay, []byte("garbage"))
	if code != http.StatusOK {
		t.Fatalf("POST /register of garbage: %d", code)
	}
	if w, err := protocol.Parse(b); err != nil {
		t.Errorf("reply to garbage does not parse: %v", err)
	} else if _, ok := w.Message.(*protocol.Error); !ok {
		t.Errorf("garbage answered with %s, want an Error", w.Message.Type())
	}
}

// TestServerStepAPI: smallstep's read-only endpoints over the cardholder CA
// of the first suite.
func TestServerStepAPI(t *testing.T) {
	r := newRig(t)
	srv := startServer(t, r)
	base := "https://" + srv.StepAddr()
	c := r.client(nil)
	h := r.c.Hierarchy(r.c.Suites()[0])
	before := r.issuedCount()

	code, _, b := get(t, c, base+"/health")
	var health struct{ Status string }
	if code != http.StatusOK || json.Unmarshal(b, &health) != nil || health.Status != "ok" {
		t.Errorf("/health: %d %q", code, b)
	}

	pemsOf := func(path string) [][]byte {
		t.Helper()
		code, _, b := get(t, c, base+path)
		if code/100 != 2 {
			t.Fatalf("%s: %d %q", path, code, b)
		}
		var resp struct {
			Crts []string `json:"crts"`
		}
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var out [][]byte
		for _, s := range resp.Crts {
			p, _ := pem.Decode([]byte(s))
			if p == nil {
				t.Fatalf("%s: %q is not PEM", path, s)
			}
			out = append(out, p.Bytes)
		}
		return out
	}
	if roots := pemsOf("/roots"); len(roots) != 1 || !bytes.Equal(roots[0], h.Root.Cert) {
		t.Errorf("/roots: %d certificates, want the root", len(roots))
	}
	if ints := pemsOf("/intermediates"); len(ints) != 1 || !bytes.Equal(ints[0], h.Cardholder.Cert) {
		t.Errorf("/intermediates: %d certificates, want the cardholder CA", len(ints))
	}

	code, hdr, b := get(t, c, base+"/crl")
	want, err := h.Cardholder.CRL()
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/pkix-crl" || !bytes.Equal(b, want) {
		t.Errorf("/crl: %d %s, %d bytes; want the cardholder CA's CRL", code, hdr.Get("Content-Type"), len(b))
	}
	if code, _, b := get(t, c, base+"/version"); code != http.StatusOK || !strings.Contains(string(b), "version") {
		t.Errorf("/version: %d %q", code, b)
	}
	// No provisioner: signing is refused.
	code, b = post(t, c, base+"/sign", "application/json", []byte(`{"csr":"","ott":"x"}`))
	if code/100 == 2 {
		t.Errorf("/sign: %d %q, want a refusal", code, b)
	}
	if n := r.issuedCount() - before; n != 0 {
		t.Errorf("the CA issued %d certificates through the step API", n)
	}
}
