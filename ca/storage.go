package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/cloudflare/circl/kem"
	"go.step.sm/crypto/pemutil"

	"github.com/setpay/setpay/protocol"
)

// File layout of a CA directory, per suite (DIR/<suite>/):
//
//	root.pem root.key                 the root CA
//	brand.pem brand.key               the brand CA
//	cardholder-ca.pem .key            the role CAs (also merchant-ca, gateway-ca)
//	cardholder-ca-sig.pem .key        a role CA's registration signature certificate
//	cardholder-ca-ke.pem .key         a role CA's registration key-exchange certificate
//	ca-tls.pem ca-tls.key             the CA server's TLS certificate (issued by the brand CA)
//	chain.pem                         brand CA and role CA certificates (the intermediates)
//	db/<ca>.db                        one bbolt database per authority (root, brand, role CAs)
const (
	fileChain = "chain.pem"
	fileTLS   = "ca-tls"
	dirDB     = "db"
	suffixSig = "-sig"
	suffixKE  = "-ke"
	permKey   = 0o600
	permCert  = 0o644
	permDir   = 0o700
)

// PEM block types of the KEM private keys, which have no PKCS#8 form in
// pemutil: the block holds the scheme's private key bytes (32 bytes for both
// X-Wing and DHKEM(P-256)). Encrypted, the block holds a PKCS#5 PBES2
// EncryptedPrivateKeyInfo (pemutil.EncryptPKCS8PrivateKey) whose plaintext is
// those bytes.
const (
	pemKEMPrefix    = "SETPAY "
	pemKEMSuffix    = " PRIVATE KEY"
	pemEncryptedKEM = "SETPAY ENCRYPTED "
	pemPKCS8        = "PRIVATE KEY"
	pemEncPKCS8     = "ENCRYPTED PRIVATE KEY"
)

func kemPEMName(s protocol.Suite) string {
	switch s {
	case protocol.SuitePQ:
		return "XWING"
	case protocol.SuiteNIST:
		return "DHKEM P256"
	}
	panic("ca: KEM of invalid suite")
}

// ErrPassphrase is returned (wrapped) by [Open] when a private key cannot be
// decrypted: the passphrase is wrong or missing.
var ErrPassphrase = errors.New("ca: wrong or missing passphrase")

// lockedReader makes a random source safe for concurrent use: a seeded
// reader given in Options usually is not.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadFull(l.r, p)
}

// randBytes reads n bytes from the CA's random source.
func (c *CA) randBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return nil, fmt.Errorf("ca: random source: %w", err)
	}
	return b, nil
}

// newSigningKey derives a signature key of suite s from the random source:
// Ed25519 (pq) or ECDSA P-256 (nist). Go 1.26 ignores the reader of
// ecdsa.GenerateKey, so keys come from ed25519.NewKeyFromSeed and
// ecdsa.ParseRawPrivateKey, which are deterministic.
func (c *CA) newSigningKey(s protocol.Suite) (crypto.Signer, error) {
	switch s {
	case protocol.SuitePQ:
		seed, err := c.randBytes(ed25519.SeedSize)
		if err != nil {
			return nil, err
		}
		return ed25519.NewKeyFromSeed(seed), nil
	case protocol.SuiteNIST:
		return c.newP256Key()
	}
	return nil, fmt.Errorf("ca: invalid suite %d", s)
}

// newP256Key derives an ECDSA P-256 key from the random source, reading again
// in the (negligible) case that 32 bytes are not a valid scalar.
func (c *CA) newP256Key() (*ecdsa.PrivateKey, error) {
	for range 64 {
		b, err := c.randBytes(32)
		if err != nil {
			return nil, err
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("ca: random source gives no valid P-256 scalar")
}

// newKEMKey derives a key-exchange key pair of suite s from the random source.
func (c *CA) newKEMKey(s protocol.Suite) (kem.PublicKey, kem.PrivateKey, error) {
	sch := s.KEM()
	seed, err := c.randBytes(sch.SeedSize())
	if err != nil {
		return nil, nil, err
	}
	pub, priv := sch.DeriveKeyPair(seed)
	return pub, priv, nil
}

// writeFile creates name (which must not exist) with perm and writes b.
func writeFile(name string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("ca: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// writeCerts writes certificates (DER) to name as PEM.
func writeCerts(name string, certs ...[]byte) error {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return writeFile(name, b.Bytes(), permCert)
}

// readCert reads the single PEM certificate of name and returns its DER.
func readCert(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("ca: %s: want one PEM certificate", name)
	}
	return block.Bytes, nil
}

// writeKey writes a private key (a crypto.Signer or a kem.PrivateKey of
// suite s) to name, 0600, encrypted with the passphrase if there is one. The salt and IV
// of the encryption come from the CA's random source, so that a seeded
// source gives identical files.
func (c *CA) writeKey(name string, s protocol.Suite, key any) error {
	var block *pem.Block
	var err error
	pass := c.o.Passphrase
	switch k := key.(type) {
	case kem.PrivateKey:
		raw, err := k.MarshalBinary()
		if err != nil {
			return fmt.Errorf("ca: %w", err)
		}
		name := kemPEMName(s)
		block = &pem.Block{Type: pemKEMPrefix + name + pemKEMSuffix, Bytes: raw}
		if len(pass) > 0 {
			block, err = pemutil.EncryptPKCS8PrivateKey(c.rand, raw, pass, pemutil.DefaultEncCipher)
			if err != nil {
				return fmt.Errorf("ca: %w", err)
			}
			block.Type = pemEncryptedKEM + name + pemKEMSuffix
		}
	case crypto.Signer:
		block, err = pemutil.Serialize(k, pemutil.WithPKCS8(true))
		if err != nil {
			return fmt.Errorf("ca: %w", err)
		}
		if len(pass) > 0 {
			block, err = pemutil.EncryptPKCS8PrivateKey(c.rand, block.Bytes, pass, pemutil.DefaultEncCipher)
			if err != nil {
				return fmt.Errorf("ca: %w", err)
			}
		}
	default:
		return fmt.Errorf("ca: cannot store a %T", key)
	}
	return writeFile(name, pem.EncodeToMemory(block), permKey)
}

// readKeyBlock reads the one PEM block of a key file and decrypts it if it is
// encrypted. It returns the block type (the unencrypted one), the key bytes
// and whether they were encrypted.
func (c *CA) readKeyBlock(name string) (string, []byte, bool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", nil, false, fmt.Errorf("ca: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		return "", nil, false, fmt.Errorf("ca: %s: want one PEM private key", name)
	}
	typ := block.Type
	encrypted := false
	switch {
	case typ == pemEncPKCS8:
		typ, encrypted = pemPKCS8, true
	case len(typ) > len(pemEncryptedKEM) && typ[:len(pemEncryptedKEM)] == pemEncryptedKEM:
		typ, encrypted = pemKEMPrefix+typ[len(pemEncryptedKEM):], true
	}
	if !encrypted {
		return typ, block.Bytes, false, nil
	}
	if len(c.o.Passphrase) == 0 {
		return "", nil, true, fmt.Errorf("%w: %s is encrypted", ErrPassphrase, name)
	}
	raw, err := pemutil.DecryptPKCS8PrivateKey(block.Bytes, c.o.Passphrase)
	if err != nil {
		// A wrong passphrase mostly shows as bad padding; the rest is caught
		// when the key does not parse or does not match its certificate.
		return "", nil, true, fmt.Errorf("%w: %s does not decrypt", ErrPassphrase, name)
	}
	return typ, raw, true, nil
}

// readSigner reads a PKCS#8 signature key and checks that it is the key of
// the certificate certDER.
func (c *CA) readSigner(name string, certDER []byte) (crypto.Signer, error) {
	typ, raw, enc, err := c.readKeyBlock(name)
	if err != nil {
		return nil, err
	}
	if typ != pemPKCS8 {
		return nil, fmt.Errorf("ca: %s: a %q block, want a PKCS#8 private key", name, typ)
	}
	k, err := x509.ParsePKCS8PrivateKey(raw)
	if err != nil {
		return nil, keyError(name, enc, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ca: %s: not a signature key", name)
	}
	x, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("ca: certificate of %s: %w", name, err)
	}
	pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(x.PublicKey) {
		return nil, keyError(name, enc, errors.New("key does not match its certificate"))
	}
	return s, nil
}

// readKEMKey reads a KEM private key of suite s (its public key is checked
// against the certificate when it is paired with it by
// protocol.NewKeyExchangeKey).
func (c *CA) readKEMKey(name string, s protocol.Suite) (kem.PrivateKey, error) {
	typ, raw, enc, err := c.readKeyBlock(name)
	if err != nil {
		return nil, err
	}
	if want := pemKEMPrefix + kemPEMName(s) + pemKEMSuffix; typ != want {
		return nil, fmt.Errorf("ca: %s: a %q block, want %q", name, typ, want)
	}
	k, err := s.KEM().UnmarshalBinaryPrivateKey(raw)
	if err != nil {
		return nil, keyError(name, enc, err)
	}
	return k, nil
}

// keyError reports a key that does not parse or match: if it was encrypted,
// most likely because the passphrase is wrong.
func keyError(name string, encrypted bool, err error) error {
	if encrypted {
		return fmt.Errorf("%w: %s: %v", ErrPassphrase, name, err)
	}
	return fmt.Errorf("ca: %s: %w", name, err)
}

// suiteDir returns DIR/<suite>.
func (c *CA) suiteDir(s protocol.Suite) string { return filepath.Join(c.dir, s.String()) }
