package protocol_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
)

// This file checks Trust.UpdateRevocation: a BCI and the CRLs it lists
// revoke certificates (and, through a revoked CA, everything under it), and
// each check of the BCI and of the CRLs fails with CodeRevocationInfo and
// leaves the revocation state in force unchanged.

// verifyCode returns the code with which tr verifies the signing key's
// certificate (0: it verifies).
func verifyCode(tr *Trust, k *SigningKey) Code {
	_, err := tr.Verify(k.Chain, k.Cert.Thumb, k.Cert.Type, k.Suite())
	return CodeOf(err)
}

func verifyKECode(tr *Trust, k *KeyExchangeKey) Code {
	_, err := tr.Verify(k.Chain, k.Cert.Thumb, k.Cert.Type, k.Suite())
	return CodeOf(err)
}

func TestUpdateRevocation(t *testing.T) {
	for _, s := range Suites {
		p := pkiFor(s)
		t.Run(s.String()+"/a revoked leaf fails, the others verify", func(t *testing.T) {
			tr := trustAt(t, p)
			other := p.NewCardholder("another cardholder", p.Card, testpki.Options{})
			for _, k := range []*SigningKey{p.Cardholder, other, p.Merchant.Sig, p.Gateway.Sig} {
				if c := verifyCode(tr, k); c != 0 {
					t.Fatalf("before any BCI, %s: code %d", k.Cert.Type, c)
				}
			}
			crl := p.CRL(p.CCA, 1, p.Cardholder.Cert.X509.SerialNumber)
			brandCRL := p.CRL(p.Brand, 1)
			if err := tr.UpdateRevocation(p.BCI(1, crl, brandCRL), [][]byte{crl, brandCRL}, nil); err != nil {
				t.Fatal(err)
			}
			if c := verifyCode(tr, p.Cardholder); c != CodeCertRevoked {
				t.Fatalf("revoked cardholder: code %d", c)
			}
			for _, k := range []*SigningKey{other, p.Merchant.Sig, p.Gateway.Sig} {
				if c := verifyCode(tr, k); c != 0 {
					t.Fatalf("%s (%s): code %d", k.Cert.X509.Subject.CommonName, k.Cert.Type, c)
				}
			}
			if c := verifyCode(trustAt(t, p), p.Cardholder); c != 0 {
				t.Fatal("the revocation leaked into another Trust")
			}
		})
		t.Run(s.String()+"/a revoked role CA revokes everything under it", func(t *testing.T) {
			tr := trustAt(t, p)
			brandCRL := p.CRL(p.Brand, 1, p.MCA.X509.SerialNumber)
			if err := tr.UpdateRevocation(p.BCI(1, brandCRL), [][]byte{brandCRL}, nil); err != nil {
				t.Fatal(err)
			}
			if c := verifyCode(tr, p.Merchant.Sig); c != CodeCertRevoked {
				t.Fatalf("merchant signature under a revoked merchant CA: code %d", c)
			}
			if c := verifyKECode(tr, p.Merchant.KE); c != CodeCertRevoked {
				t.Fatalf("merchant key exchange under a revoked merchant CA: code %d", c)
			}
			mk := p.RegistrationKeys(p.MCA)
			if c := verifyCode(tr, mk.Sig); c != CodeCertRevoked {
				t.Fatalf("merchant CA registration certificate under a revoked merchant CA: code %d", c)
			}
			for _, k := range []*SigningKey{p.Cardholder, p.Gateway.Sig} {
				if c := verifyCode(tr, k); c != 0 {
					t.Fatalf("%s: code %d", k.Cert.Type, c)
				}
			}
		})
		t.Run(s.String()+"/a newer BCI replaces the one in force", func(t *testing.T) {
			tr := trustAt(t, p)
			u1 := p.CRL(p.CCA, 1, p.Cardholder.Cert.X509.SerialNumber)
			if err := tr.UpdateRevocation(p.BCI(1, u1), [][]byte{u1}, nil); err != nil {
				t.Fatal(err)
			}
			u2 := p.CRL(p.MCA, 2, p.Merchant.Sig.Cert.X509.SerialNumber)
			bci2 := p.BCI(2, u2)
			if err := tr.UpdateRevocation(bci2, [][]byte{u2}, nil); err != nil {
				t.Fatal(err)
			}
			if verifyCode(tr, p.Cardholder) != 0 || verifyCode(tr, p.Merchant.Sig) != CodeCertRevoked {
				t.Fatal("BCI 2 is not the one in force")
			}
			// The same BCI again is not a rollback.
			if err := tr.UpdateRevocation(bci2, [][]byte{u2}, nil); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(s.String()+"/a CRL of the root revokes a brand", func(t *testing.T) {
			tr := trustAt(t, p)
			rootCRL := p.CRL(p.Root, 1, p.Brand.X509.SerialNumber)
			if err := tr.UpdateRevocation(p.BCI(1, rootCRL), [][]byte{rootCRL}, nil); err != nil {
				t.Fatal(err)
			}
			if c := verifyCode(tr, p.Cardholder); c != CodeCertRevoked {
				t.Fatalf("cardholder under a revoked brand: code %d", c)
			}
		})
		t.Run(s.String()+"/a registration CA's BCI revokes its own old registration certificate", func(t *testing.T) {
			// The applicant installs the BCI the CA sent, then no longer
			// accepts the CA's revoked registration certificate.
			f := newRegFlow(t, s, RoleCardholder)
			crl := p.CRL(p.CCA, 1, f.ca.keys.Sig.Cert.X509.SerialNumber)
			f.ca.bci = p.BCI(1, crl)
			f.do(f.cardInit)
			if err := f.reg.Trust.UpdateRevocation(f.reg.BCI, [][]byte{crl}, nil); err != nil {
				t.Fatal(err)
			}
			g := newRegFlow(t, s, RoleCardholder)
			g.reg.Trust = f.reg.Trust
			if err := g.cardInit(); CodeOf(err) != CodeCertRevoked {
				t.Fatalf("got %v, want CodeCertRevoked", err)
			}
		})
	}
}

func otherSuite(s Suite) Suite {
	if s == SuitePQ {
		return SuiteNIST
	}
	return SuitePQ
}

// revCase breaks one check of UpdateRevocation: from the good update (a BCI
// numbered 6 that lists a merchant-CA CRL revoking the merchant), it returns
// the BCI, CRLs and certificates to install.
type revCase struct {
	name   string
	detail string // what the error says: the check that failed
	run    func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte)
}

// goodUpdate is the update the cases start from.
func goodUpdate(p *testpki.PKI) (BCIData, [][]byte) {
	crl := p.CRL(p.MCA, 2, p.Merchant.Sig.Cert.X509.SerialNumber)
	return p.BCIData(6, crl), [][]byte{crl}
}

// sign has the brand sign d.
func sign(p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
	return p.SignBCI(*d), crls, nil
}

var revocationChecksCases = []revCase{
	{"a BCI signed by a cardholder CA", "want a brand CA certificate", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci, err := NewBCI(p.CCA.Key, [][]byte{p.CCA.Cert, p.Brand.Cert}, *d)
		if err != nil {
			t.Fatal(err)
		}
		return bci, crls, nil
	}},
	{"a BCI signed by the brand CA of another hierarchy", "BCI signer: protocol: certificate chain invalid", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		foreign := testpki.New(p.Suite, "a foreign brand")
		return foreign.SignBCI(*d), crls, nil
	}},
	{"a BCI whose signer certificate is not sent", "BCI signer: protocol: certificate missing", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci := p.SignBCI(*d)
		bci.Certificates = bci.Certificates[1:]
		return bci, crls, nil
	}},
	{"a bad BCI signature", "BCI signature does not verify", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci := p.SignBCI(*d)
		bci.Signature.Value[len(bci.Signature.Value)/2] ^= 1
		return bci, crls, nil
	}},
	{"a BCI changed after signing", "BCI signature does not verify", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci := p.SignBCI(*d)
		bci.Data.Number++
		return bci, crls, nil
	}},
	{"a BCI signature claiming the other suite", "signature suite", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci := p.SignBCI(*d)
		bci.Signature.Suite = otherSuite(p.Suite)
		return bci, crls, nil
	}},
	{"a BCI of an unknown suite", "BCI suite suite(99)", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci := p.SignBCI(*d)
		bci.Data.Suite, bci.Signature.Suite = 99, 99
		return bci, crls, nil
	}},
	{"a BCI for another brand", "signed by the CA of brand", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.Brand = "OtherBrand"
		return sign(p, d, crls)
	}},
	{"a stale BCI (now after nextUpdate)", "BCI valid", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.ThisUpdate, d.NextUpdate = testpki.Epoch.Add(-48*time.Hour), testpki.Epoch.Add(-time.Second)
		return sign(p, d, crls)
	}},
	{"a BCI not valid yet (now before thisUpdate)", "BCI valid", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.ThisUpdate = testpki.Epoch.Add(time.Second)
		return sign(p, d, crls)
	}},
	{"a rollback (a lower number than the BCI in force)", "older than the one in force", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.Number = 4
		return sign(p, d, crls)
	}},
	{"a listed CRL that is missing", "is missing", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci, _, _ := sign(p, d, crls)
		return bci, nil, nil
	}},
	{"a listed CRL that is another than the one given", "is missing", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		bci, _, _ := sign(p, d, crls)
		return bci, [][]byte{p.CRL(p.MCA, 2)}, nil
	}},
	{"a CRL signed by another CA than the one listed", "verification failure", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.CRLs[0].Issuer = ThumbprintOf(p.CCA.Cert)
		return sign(p, d, crls)
	}},
	{"a CRL whose listed issuer is not sent", "no CA certificate", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.CRLs[0].Issuer[0] ^= 1
		return sign(p, d, crls)
	}},
	{"a CRL whose listed issuer is not a CA", "CRL issuer is a merchant signature certificate", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.CRLs[0].Issuer = p.Merchant.Sig.Cert.Thumb
		bci, _, _ := sign(p, d, crls)
		return bci, crls, p.Merchant.Sig.Chain
	}},
	{"a CRL of a CA of another hierarchy", "CRL issuer: protocol: certificate chain invalid", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		foreign := testpki.New(p.Suite, "a foreign brand")
		crl := foreign.CRL(foreign.MCA, 2, p.Merchant.Sig.Cert.X509.SerialNumber)
		d.CRLs[0] = CRLRef{Issuer: ThumbprintOf(foreign.MCA.Cert), Number: 2, CRL: ThumbprintOf(crl)}
		bci, _, _ := sign(p, d, crls)
		return bci, [][]byte{crl}, foreign.MCA.Chain
	}},
	{"a CRL that does not parse", "malformed", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		junk := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
		d.CRLs[0].CRL = ThumbprintOf(junk)
		return sign(p, d, [][]byte{junk})
	}},
	{"a CRL whose number differs from the listed one", "has not the number the BCI lists", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		d.CRLs[0].Number = 3
		return sign(p, d, crls)
	}},
	{"a CRL past its nextUpdate", "past its nextUpdate", func(t *testing.T, p *testpki.PKI, d *BCIData, crls [][]byte) (*BCI, [][]byte, [][]byte) {
		crl := p.CRLWith(p.MCA, &x509.RevocationList{Number: big.NewInt(2), ThisUpdate: testpki.Epoch.Add(-48 * time.Hour),
			NextUpdate: testpki.Epoch.Add(-time.Second)}, p.Merchant.Sig.Cert.X509.SerialNumber)
		nd := p.BCIData(6, crl)
		return sign(p, &nd, [][]byte{crl})
	}},
}

func TestUpdateRevocationChecks(t *testing.T) {
	for _, s := range Suites {
		p := pkiFor(s)
		// inForce is the state every case starts from: BCI 5, which revokes
		// the cardholder.
		inForce := p.CRL(p.CCA, 1, p.Cardholder.Cert.X509.SerialNumber)
		bci5 := p.BCI(5, inForce)
		state := func(t *testing.T, tr *Trust) (cardholder, merchant Code) {
			t.Helper()
			return verifyCode(tr, p.Cardholder), verifyCode(tr, p.Merchant.Sig)
		}
		setup := func(t *testing.T) *Trust {
			tr := trustAt(t, p)
			if err := tr.UpdateRevocation(bci5, [][]byte{inForce}, nil); err != nil {
				t.Fatal(err)
			}
			if c, m := state(t, tr); c != CodeCertRevoked || m != 0 {
				t.Fatalf("BCI 5: cardholder code %d, merchant code %d", c, m)
			}
			return tr
		}
		t.Run(s.String()+"/the good update replaces the state in force", func(t *testing.T) {
			tr := setup(t)
			d, crls := goodUpdate(p)
			bci, crls, certs := sign(p, &d, crls)
			if err := tr.UpdateRevocation(bci, crls, certs); err != nil {
				t.Fatal(err)
			}
			if c, m := state(t, tr); c != 0 || m != CodeCertRevoked {
				t.Fatalf("BCI 6: cardholder code %d, merchant code %d", c, m)
			}
		})
		for _, tc := range revocationChecksCases {
			t.Run(s.String()+"/"+tc.name, func(t *testing.T) {
				tr := setup(t)
				d, crls := goodUpdate(p)
				bci, crls, certs := tc.run(t, p, &d, crls)
				err := tr.UpdateRevocation(bci, crls, certs)
				if got := CodeOf(err); got != CodeRevocationInfo {
					t.Fatalf("got %v (code %d), want CodeRevocationInfo", err, got)
				}
				if !strings.Contains(err.Error(), tc.detail) {
					t.Fatalf("failed another check than meant: %v", err)
				}
				if c, m := state(t, tr); c != CodeCertRevoked || m != 0 {
					t.Fatalf("a failed update changed the state in force: cardholder code %d, merchant code %d", c, m)
				}
			})
		}
	}
}

func TestUpdateRevocationRejectsAStaleBCIByTheClock(t *testing.T) {
	p := pkiFor(SuitePQ)
	tr := trustAt(t, p)
	crl := p.CRL(p.CCA, 1, p.Cardholder.Cert.X509.SerialNumber)
	tr.Now = func() time.Time { return testpki.CRLNextUpdate.Add(time.Second) }
	if err := tr.UpdateRevocation(p.BCI(1, crl), [][]byte{crl}, nil); CodeOf(err) != CodeRevocationInfo {
		t.Fatalf("got %v, want CodeRevocationInfo", err)
	}
	tr.Now = func() time.Time { return testpki.Epoch }
	if c := verifyCode(tr, p.Cardholder); c != 0 {
		t.Fatalf("a stale BCI revoked the cardholder: code %d", c)
	}
}

// TestECDSANilRandIsRFC6979 checks what testpki's CRLs (and every setpay
// ECDSA signature) rely on: crypto/ecdsa signs with RFC 6979 nonces when
// given a nil random source. The vector is RFC 6979, A.2.5 (P-256,
// SHA-256, message "sample").
func TestECDSANilRandIsRFC6979(t *testing.T) {
	d, _ := hex.DecodeString("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("sample"))
	sig, err := key.Sign(nil, h[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("3046" +
		"022100EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716" +
		"022100F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
	if !bytes.Equal(sig, want) {
		t.Fatalf("ECDSA with a nil random source is not RFC 6979:\n got %x\nwant %x", sig, want)
	}
}

// TestTestPKIRevocationIsDeterministic: CRLs, BCIs and registration keys of
// two hierarchies from the same seed are byte-identical.
func TestTestPKIRevocationIsDeterministic(t *testing.T) {
	for _, s := range Suites {
		t.Run(s.String(), func(t *testing.T) {
			a, b := testpki.New(s, "determinism"), testpki.New(s, "determinism")
			serial := a.Cardholder.Cert.X509.SerialNumber
			crlA, crlB := a.CRL(a.CCA, 7, serial), b.CRL(b.CCA, 7, serial)
			if !bytes.Equal(crlA, crlB) || !bytes.Equal(crlA, a.CRL(a.CCA, 7, serial)) {
				t.Fatal("CRLs differ")
			}
			if !bytes.Equal(Encode(a.BCI(3, crlA)), Encode(b.BCI(3, crlB))) {
				t.Fatal("BCIs differ")
			}
			ka, kb := a.RegistrationKeys(a.PCA), b.RegistrationKeys(b.PCA)
			if !bytes.Equal(ka.Sig.Chain[0], kb.Sig.Chain[0]) || !bytes.Equal(ka.KE.Chain[0], kb.KE.Chain[0]) {
				t.Fatal("registration certificates differ")
			}
			if a.RegistrationKeys(a.PCA) != ka {
				t.Fatal("RegistrationKeys issued new certificates")
			}
			crl, err := x509.ParseRevocationList(crlA)
			if err != nil {
				t.Fatal(err)
			}
			if err := crl.CheckSignatureFrom(a.CCA.X509); err != nil {
				t.Fatal(err)
			}
			if crl.Number.Int64() != 7 || !crl.ThisUpdate.Equal(testpki.Epoch.Add(-time.Hour)) || !crl.NextUpdate.Equal(testpki.Epoch.AddDate(0, 0, 30)) ||
				len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(serial) != 0 {
				t.Fatal("CRL content differs from what was asked")
			}
			bci := a.BCI(3, crlA)
			if r := bci.Data.CRLs[0]; r.Issuer != ThumbprintOf(a.CCA.Cert) || r.Number != 7 || r.CRL != ThumbprintOf(crlA) {
				t.Fatal("BCI lists the CRL wrongly")
			}
		})
	}
}
