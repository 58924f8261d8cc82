package keyfile_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

func seeded(b byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{b}) }

// selfSigned returns a certificate of key, for the key-matching checks.
func selfSigned(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1e9, 0)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestKeysRoundTrip(t *testing.T) {
	for _, pass := range [][]byte{nil, []byte("correct horse")} {
		st := keyfile.Store{Passphrase: pass, Rand: seeded(1)}
		dir := t.TempDir()
		for _, s := range protocol.Suites {
			sig, err := keyfile.NewSigningKey(seeded(2), s)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, s.String()+"-sig.key")
			if err := st.WriteKey(name, s, sig); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(name); fi.Mode().Perm() != keyfile.PermKey {
				t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
			}
			pub, kem, err := keyfile.NewKEMKey(seeded(3), s)
			if err != nil {
				t.Fatal(err)
			}
			kname := filepath.Join(dir, s.String()+"-ke.key")
			if err := st.WriteKey(kname, s, kem); err != nil {
				t.Fatal(err)
			}
			got, err := st.ReadKEM(kname, s)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().Equal(pub) {
				t.Errorf("%s: KEM key changed through the file", s)
			}
			// Another suite's KEM block is refused.
			if _, err := st.ReadKEM(kname, 3-s); err == nil {
				t.Errorf("%s KEM key read as %s", s, 3-s)
			}
			if pass != nil {
				if _, err := (keyfile.Store{Passphrase: []byte("wrong")}).ReadKEM(kname, s); !errors.Is(err, keyfile.ErrPassphrase) {
					t.Errorf("wrong passphrase: %v, want ErrPassphrase", err)
				}
				if _, err := (keyfile.Store{}).ReadKEM(kname, s); !errors.Is(err, keyfile.ErrPassphrase) {
					t.Errorf("no passphrase: %v, want ErrPassphrase", err)
				}
			}
		}
	}
}

func TestReadSignerChecksTheCertificate(t *testing.T) {
	st := keyfile.Store{}
	dir := t.TempDir()
	k1 := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	k2 := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	name := filepath.Join(dir, "k.key")
	if err := st.WriteKey(name, protocol.SuitePQ, k1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReadSigner(name, selfSigned(t, k1)); err != nil {
		t.Fatalf("matching certificate: %v", err)
	}
	if _, err := st.ReadSigner(name, selfSigned(t, k2)); err == nil {
		t.Error("a key was accepted for another key's certificate")
	}
	if err := st.WriteKey(name, protocol.SuitePQ, k1); err == nil {
		t.Error("WriteKey overwrote an existing key file")
	}
}

func TestNewSigningKeyIsDeterministic(t *testing.T) {
	for _, s := range protocol.Suites {
		a, _ := keyfile.NewSigningKey(seeded(9), s)
		b, _ := keyfile.NewSigningKey(seeded(9), s)
		if !a.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.Public()) {
			t.Errorf("%s: the same seed gave two keys", s)
		}
	}
}

func TestDecodeCerts(t *testing.T) {
	der := selfSigned(t, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	two := append(keyfile.EncodeCerts(der), keyfile.EncodeCerts(der)...)
	got, err := keyfile.DecodeCerts(two)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], der) {
		t.Fatalf("two certificates: %d, %v", len(got), err)
	}
	for name, in := range map[string][]byte{
		"empty":           nil,
		"not PEM":         []byte("hello"),
		"trailing junk":   append(keyfile.EncodeCerts(der), "junk"...),
		"a key block":     []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		"cert then a key": append(keyfile.EncodeCerts(der), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"...),
	} {
		if _, err := keyfile.DecodeCerts(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeCerts(f *testing.F) {
	f.Add(keyfile.EncodeCerts([]byte{0x30, 0x03, 0x02, 0x01, 0x01}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := keyfile.DecodeCerts(b)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		if err == nil && !bytes.Equal(keyfile.EncodeCerts(certs...), b) {
			// PEM may carry headers or other line lengths; re-decoding the
			// canonical form must give the same certificates.
			again, err := keyfile.DecodeCerts(keyfile.EncodeCerts(certs...))
			if err != nil || len(again) != len(certs) {
				t.Fatalf("canonical form does not decode: %v", err)
			}
		}
	})
}
