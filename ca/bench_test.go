package ca_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/protocol"
)

// BenchmarkIssue measures certificates per second through Authority.Issue
// (smallstep's embedded authority with a bbolt database) for each suite and
// key type, and through a bare x509.CreateCertificate with the same CA
// algorithm for comparison.
//
//	go test ./ca -run '^$' -bench Issue -benchtime 2s
func BenchmarkIssue(b *testing.B) {
	c, _ := newCA(b, ca.Options{})
	for _, s := range c.Suites() {
		h := c.Hierarchy(s)
		kpub, _ := kemKey(s, 1)
		for _, bc := range []struct {
			name string
			r    ca.IssueRequest
		}{
			{"signature", ca.IssueRequest{Type: protocol.CertGatewaySignature, Public: sigKey(b, s, 1).Public()}},
			{"key-exchange", ca.IssueRequest{Type: protocol.CertGatewayKeyExchange, Public: kpub}},
			{"TLS P-256", ca.IssueRequest{Type: protocol.CertGatewayTLS, Public: sigKey(b, protocol.SuiteNIST, 1).Public(), DNSNames: []string{"gw.example"}}},
		} {
			bc.r.Subject = pkix.Name{CommonName: "gateway"}
			b.Run(s.String()+"/"+bc.name+"/Authority.Issue", func(b *testing.B) {
				for b.Loop() {
					if _, err := h.Gateway.Issue(context.Background(), bc.r); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
			})
		}
		b.Run(s.String()+"/signature/x509.CreateCertificate", func(b *testing.B) {
			caKey := sigKey(b, s, 2)
			parent := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, NotBefore: epoch, NotAfter: epoch.AddDate(3, 0, 0),
				IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: []byte{1}}
			der, err := x509.CreateCertificate(nil, parent, parent, caKey.Public(), caKey)
			if err != nil {
				b.Fatal(err)
			}
			parent, _ = x509.ParseCertificate(der)
			pub := sigKey(b, s, 1).Public()
			var n int64
			for b.Loop() {
				n++
				t := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: "gateway"}, NotBefore: epoch,
					NotAfter: epoch.Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
					ExtraExtensions: []pkix.Extension{protocol.CertTypeExtension(protocol.CertGatewaySignature), protocol.BrandExtension("setpay")}}
				if _, err := x509.CreateCertificate(nil, t, parent, pub, caKey); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
