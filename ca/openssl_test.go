package ca_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/protocol"
)

// openssl returns the path of the openssl command. Outside CI a machine
// without it skips the test; under CI (CI=true) its absence fails the test,
// and .ci/run installs it.
func openssl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed; .ci/run installs it")
		}
		t.Skip("openssl is not installed (CI=true makes this a failure)")
	}
	return p
}

// run runs openssl and returns its combined output.
func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func writePEM(t *testing.T, name, typ string, ders ...[]byte) string {
	t.Helper()
	var b bytes.Buffer
	for _, d := range ders {
		pem.Encode(&b, &pem.Block{Type: typ, Bytes: d})
	}
	if err := os.WriteFile(name, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestOpenSSLVerifiesChains checks the hierarchy with an independent X.509
// implementation. openssl does not know setpay's certificate-type extension,
// which every setpay certificate carries marked critical (RFC 5280 requires
// a verifier to reject a certificate with an unknown critical extension), so
// the chains are verified with -ignore_critical: what openssl checks is
// everything else (signatures, names, validity, basic constraints, key
// usage of the CAs, path length).
func TestOpenSSLVerifiesChains(t *testing.T) {
	bin := openssl(t)
	if out, err := run(t, bin, "version"); err != nil {
		t.Fatal(out, err)
	} else {
		t.Log(strings.TrimSpace(out))
	}
	c, dir := newCA(t, ca.Options{})
	tmp := t.TempDir()
	ctx := context.Background()
	for _, s := range c.Suites() {
		h := c.Hierarchy(s)
		d := filepath.Join(dir, s.String())
		root, chain := filepath.Join(d, "root.pem"), filepath.Join(d, "chain.pem")
		verify := func(t *testing.T, leaf string, extra ...string) (string, error) {
			t.Helper()
			args := append([]string{"verify", "-ignore_critical", "-CAfile", root, "-untrusted", chain}, extra...)
			return run(t, bin, append(args, leaf)...)
		}
		kpub, _ := kemKey(s, 7)
		issued := map[string]struct {
			a      *ca.Authority
			issuer string
			r      ca.IssueRequest
		}{
			"cardholder": {h.Cardholder, "cardholder-ca", ca.IssueRequest{Type: protocol.CertCardholderSignature, Subject: pkix.Name{CommonName: "cardholder"},
				Public: sigKey(t, s, 7).Public(), Extensions: []pkix.Extension{protocol.AccountHashExtension(accountHash)}}},
			"merchant-ke": {h.Merchant, "merchant-ca", ca.IssueRequest{Type: protocol.CertMerchantKeyExchange, Subject: pkix.Name{CommonName: "shop"},
				Public: kpub, Extensions: []pkix.Extension{protocol.MerchantDataExtension(merchantData)}}},
			"gateway-tls": {h.Gateway, "gateway-ca", ca.IssueRequest{Type: protocol.CertGatewayTLS, Subject: pkix.Name{CommonName: "gw"},
				Public: sigKey(t, protocol.SuiteNIST, 7).Public(), DNSNames: []string{"gateway.example"}}},
		}
		type leaf struct{ file, issuer string }
		leaves := map[string]leaf{}
		for name, is := range issued {
			der, err := is.a.Issue(ctx, is.r)
			if err != nil {
				t.Fatal(err)
			}
			leaves[name] = leaf{writePEM(t, filepath.Join(tmp, s.String()+"-"+name+".pem"), "CERTIFICATE", der), filepath.Join(d, is.issuer+".pem")}
		}
		for _, f := range []string{"root", "brand", "cardholder-ca", "merchant-ca", "gateway-ca", "ca-tls",
			"cardholder-ca-sig", "merchant-ca-sig", "gateway-ca-sig", "cardholder-ca-ke", "merchant-ca-ke", "gateway-ca-ke"} {
			leaves[f] = leaf{filepath.Join(d, f+".pem"), filepath.Join(d, strings.TrimSuffix(f, "-ke")+".pem")}
		}
		for name, l := range leaves {
			xwing := s == protocol.SuitePQ && strings.HasSuffix(name, "-ke")
			t.Run(s.String()+" "+name, func(t *testing.T) {
				out, err := verify(t, l.file)
				if err == nil && strings.Contains(out, ": OK") {
					return
				}
				if !xwing {
					t.Fatalf("openssl verify: %v\n%s", err, out)
				}
				// OpenSSL 3.0 cannot load an X-Wing key and stops at the
				// leaf (X509_self_signed needs its key). Check what it
				// can: the issuer's chain with openssl verify, and the
				// leaf's signature with the issuer's key that openssl
				// extracts itself.
				if !strings.Contains(out, "unable to get certs public key") {
					t.Fatalf("openssl verify of an X-Wing certificate: %v\n%s", err, out)
				}
				xwingSignature(t, bin, tmp, l.file, l.issuer, verify)
			})
		}
	}
	t.Run("a revoked certificate is revoked for openssl -crl_check", func(t *testing.T) {
		h := c.Hierarchy(protocol.SuiteNIST)
		d := filepath.Join(dir, "nist")
		der, err := h.Merchant.Issue(ctx, ca.IssueRequest{Type: protocol.CertMerchantTLS, Subject: pkix.Name{CommonName: "shop"},
			Public: sigKey(t, protocol.SuiteNIST, 8).Public()})
		if err != nil {
			t.Fatal(err)
		}
		leaf := writePEM(t, filepath.Join(tmp, "revoked.pem"), "CERTIFICATE", der)
		x, _ := x509.ParseCertificate(der)
		if err := c.Revoke(ctx, x.SerialNumber, ca.ReasonKeyCompromise, ""); err != nil {
			t.Fatal(err)
		}
		crl, err := h.Merchant.CRL()
		if err != nil {
			t.Fatal(err)
		}
		crlFile := writePEM(t, filepath.Join(tmp, "merchant-ca.crl"), "X509 CRL", crl)
		if out, err := run(t, bin, "crl", "-in", crlFile, "-CAfile", filepath.Join(d, "merchant-ca.pem"), "-noout"); err != nil ||
			!strings.Contains(out, "verify OK") {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		out, err := run(t, bin, "verify", "-ignore_critical", "-crl_check", "-CRLfile", crlFile,
			"-CAfile", filepath.Join(d, "root.pem"), "-untrusted", filepath.Join(d, "chain.pem"), leaf)
		if err == nil || !strings.Contains(out, "certificate revoked") {
			t.Fatalf("openssl verify -crl_check: %v\n%s", err, out)
		}
	})
}

// xwingSignature checks an X-Wing certificate with openssl without loading
// its key: its issuer verifies, and openssl verifies the certificate's
// signature over its TBSCertificate with the issuer's key.
func xwingSignature(t *testing.T, bin, tmp, leaf, issuerFile string, verify func(*testing.T, string, ...string) (string, error)) {
	t.Helper()
	b, err := os.ReadFile(leaf)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	if out, err := verify(t, issuerFile); err != nil || !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify of the issuer: %v\n%s", err, out)
	}
	pub := filepath.Join(tmp, "issuer-pub.pem")
	out, err := run(t, bin, "x509", "-in", issuerFile, "-pubkey", "-noout", "-out", pub)
	if err != nil {
		t.Fatal(out, err)
	}
	// Split the certificate: TBSCertificate, signatureAlgorithm, signature.
	in := cryptobyte.String(p.Bytes)
	var cert, tbs, alg cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbs, cbasn1.SEQUENCE) ||
		!cert.ReadASN1(&alg, cbasn1.SEQUENCE) {
		t.Fatal("malformed certificate")
	}
	var bs cryptobyte.String
	if !cert.ReadASN1(&bs, cbasn1.BIT_STRING) || len(bs) < 1 || bs[0] != 0 {
		t.Fatal("malformed signature")
	}
	sig := bs[1:] // after the count of unused bits
	tbsFile := filepath.Join(tmp, "tbs.der")
	sigFile := filepath.Join(tmp, "sig.bin")
	if err := os.WriteFile(tbsFile, tbs, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, bin, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", tbsFile, "-sigfile", sigFile)
	if err != nil || !strings.Contains(out, "Signature Verified Successfully") {
		t.Fatalf("openssl pkeyutl -verify of the X-Wing certificate's signature: %v\n%s", err, out)
	}
}
