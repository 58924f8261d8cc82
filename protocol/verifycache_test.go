package protocol_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
)

// TestVerifyCacheKeepsEveryCheck: a chain Trust.Verify verified before is
// still judged afresh where it can change: a revocation installed after
// (CRL and BCI, or the Revoked hook), the clock moving past a certificate's
// dates; and other inputs (another type, another suite, a missing
// intermediate) are not answered from the cache.
func TestVerifyCacheKeepsEveryCheck(t *testing.T) {
	for _, s := range Suites {
		p := pkiFor(s)
		now := testpki.Epoch
		tr, err := NewTrust(p.Root.Cert)
		if err != nil {
			t.Fatal(err)
		}
		tr.Now = func() time.Time { return now }
		k := p.Cardholder
		for range 2 { // the second one from the cache
			if c := verifyCode(tr, k); c != 0 {
				t.Fatalf("%s: a valid chain: code %d", s, c)
			}
		}
		if _, err := tr.Verify(k.Chain, k.Cert.Thumb, CertMerchantSignature, s); CodeOf(err) != CodeCertRole {
			t.Errorf("%s: the cached chain as another type: %v, want CodeCertRole", s, err)
		}
		if _, err := tr.Verify(k.Chain, k.Cert.Thumb, k.Cert.Type, 3-s); CodeOf(err) != CodeCertKeyType {
			t.Errorf("%s: the cached chain under another suite: %v, want CodeCertKeyType", s, err)
		}
		if _, err := tr.Verify(k.Chain[:1], k.Cert.Thumb, k.Cert.Type, s); CodeOf(err) != CodeCertChain {
			t.Errorf("%s: without its intermediates: %v, want CodeCertChain", s, err)
		}

		// Revoked through the hook, then through a CRL and BCI.
		serial := k.Cert.X509.SerialNumber
		tr.Revoked = func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(serial) == 0 }
		if c := verifyCode(tr, k); c != CodeCertRevoked {
			t.Errorf("%s: revoked by the hook after a cached verification: code %d", s, c)
		}
		tr.Revoked = nil
		crl := p.CRL(p.CCA, 1, serial)
		if err := tr.UpdateRevocation(p.BCI(5, crl), [][]byte{crl}, nil); err != nil {
			t.Fatal(err)
		}
		if c := verifyCode(tr, k); c != CodeCertRevoked {
			t.Errorf("%s: revoked by a CRL after a cached verification: code %d", s, c)
		}

		// The merchant's chain, cached, then the clock past its end.
		m := p.Merchant.Sig
		if c := verifyCode(tr, m); c != 0 {
			t.Fatalf("%s: merchant: code %d", s, c)
		}
		now = m.Cert.X509.NotAfter.Add(time.Second)
		if c := verifyCode(tr, m); c != CodeCertExpired {
			t.Errorf("%s: expired after a cached verification: code %d", s, c)
		}
		now = testpki.Epoch
		if c := verifyCode(tr, m); c != 0 {
			t.Errorf("%s: valid again at the epoch: code %d", s, c)
		}
	}
}
