// Package keyfile stores the private keys and certificates of every setpay
// party (the CA and the agents) in one format: PEM files, keys 0600 in 0700
// directories, encrypted PKCS#8 when a passphrase is given. It also derives
// fresh keys from a random source that can be fixed, so that a seeded run
// writes identical files.
package keyfile

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
	"strings"

	"github.com/cloudflare/circl/kem"
	"go.step.sm/crypto/pemutil"

	"github.com/setpay/setpay/protocol"
)

// File permissions.
const (
	PermKey  = 0o600
	PermCert = 0o644
	PermDir  = 0o700
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
	panic("keyfile: KEM of invalid suite")
}

// ErrPassphrase is returned (wrapped) when a private key cannot be
// decrypted: the passphrase is wrong or missing.
var ErrPassphrase = errors.New("wrong or missing passphrase")

// Store reads and writes key files.
type Store struct {
	// Passphrase encrypts the keys written and decrypts those read; empty:
	// keys are written in the clear and encrypted keys cannot be read.
	Passphrase []byte
	// Rand is the source of the encryption's salt and IV; it must be set
	// when Passphrase is.
	Rand io.Reader
}

// WriteKey writes a private key (a crypto.Signer, or a kem.PrivateKey of
// suite s) to name (which must not exist), 0600, encrypted with the
// passphrase if there is one.
func (st Store) WriteKey(name string, s protocol.Suite, key any) error {
	var block *pem.Block
	var err error
	pass := st.Passphrase
	switch k := key.(type) {
	case kem.PrivateKey:
		raw, err := k.MarshalBinary()
		if err != nil {
			return fmt.Errorf("keyfile: %w", err)
		}
		name := kemPEMName(s)
		block = &pem.Block{Type: pemKEMPrefix + name + pemKEMSuffix, Bytes: raw}
		if len(pass) > 0 {
			block, err = pemutil.EncryptPKCS8PrivateKey(st.Rand, raw, pass, pemutil.DefaultEncCipher)
			if err != nil {
				return fmt.Errorf("keyfile: %w", err)
			}
			block.Type = pemEncryptedKEM + name + pemKEMSuffix
		}
	case crypto.Signer:
		block, err = pemutil.Serialize(k, pemutil.WithPKCS8(true))
		if err != nil {
			return fmt.Errorf("keyfile: %w", err)
		}
		if len(pass) > 0 {
			block, err = pemutil.EncryptPKCS8PrivateKey(st.Rand, block.Bytes, pass, pemutil.DefaultEncCipher)
			if err != nil {
				return fmt.Errorf("keyfile: %w", err)
			}
		}
	default:
		return fmt.Errorf("keyfile: cannot store a %T", key)
	}
	return WriteFile(name, pem.EncodeToMemory(block), PermKey)
}

// readBlock reads the one PEM block of a key file and decrypts it if it is
// encrypted. It returns the block type (the unencrypted one), the key bytes
// and whether they were encrypted.
func (st Store) readBlock(name string) (string, []byte, bool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", nil, false, fmt.Errorf("keyfile: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		return "", nil, false, fmt.Errorf("keyfile: %s: want one PEM private key", name)
	}
	typ := block.Type
	encrypted := false
	switch {
	case typ == pemEncPKCS8:
		typ, encrypted = pemPKCS8, true
	case strings.HasPrefix(typ, pemEncryptedKEM) && len(typ) > len(pemEncryptedKEM):
		typ, encrypted = pemKEMPrefix+typ[len(pemEncryptedKEM):], true
	}
	if !encrypted {
		return typ, block.Bytes, false, nil
	}
	if len(st.Passphrase) == 0 {
		return "", nil, true, fmt.Errorf("%w: %s is encrypted", ErrPassphrase, name)
	}
	raw, err := pemutil.DecryptPKCS8PrivateKey(block.Bytes, st.Passphrase)
	if err != nil {
		// A wrong passphrase mostly shows as bad padding; the rest is caught
		// when the key does not parse or does not match its certificate.
		return "", nil, true, fmt.Errorf("%w: %s does not decrypt", ErrPassphrase, name)
	}
	return typ, raw, true, nil
}

// ReadSigner reads a PKCS#8 signature key and checks that it is the key of
// the certificate certDER.
func (st Store) ReadSigner(name string, certDER []byte) (crypto.Signer, error) {
	typ, raw, enc, err := st.readBlock(name)
	if err != nil {
		return nil, err
	}
	if typ != pemPKCS8 {
		return nil, fmt.Errorf("keyfile: %s: a %q block, want a PKCS#8 private key", name, typ)
	}
	k, err := x509.ParsePKCS8PrivateKey(raw)
	if err != nil {
		return nil, keyError(name, enc, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keyfile: %s: not a signature key", name)
	}
	x, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("keyfile: certificate of %s: %w", name, err)
	}
	pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(x.PublicKey) {
		return nil, keyError(name, enc, errors.New("key does not match its certificate"))
	}
	return s, nil
}

// ReadKEM reads a KEM private key of suite s (its public key is checked
// against the certificate when it is paired with it by
// protocol.NewKeyExchangeKey).
func (st Store) ReadKEM(name string, s protocol.Suite) (kem.PrivateKey, error) {
	typ, raw, enc, err := st.readBlock(name)
	if err != nil {
		return nil, err
	}
	if want := pemKEMPrefix + kemPEMName(s) + pemKEMSuffix; typ != want {
		return nil, fmt.Errorf("keyfile: %s: a %q block, want %q", name, typ, want)
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
	return fmt.Errorf("keyfile: %s: %w", name, err)
}

// WriteFile creates name (which must not exist) with perm and writes b.
func WriteFile(name string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keyfile: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keyfile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	return nil
}

// MkdirAll creates dir and its parents 0700, and makes dir itself 0700.
func MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, PermDir); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	if err := os.Chmod(dir, PermDir); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	return nil
}

// WriteCerts writes certificates (DER) to name as PEM.
func WriteCerts(name string, certs ...[]byte) error {
	return WriteFile(name, EncodeCerts(certs...), PermCert)
}

// EncodeCerts returns certificates (DER) as PEM.
func EncodeCerts(certs ...[]byte) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return b.Bytes()
}

// ReadCert reads the single PEM certificate of name and returns its DER.
func ReadCert(name string) ([]byte, error) {
	certs, err := ReadCerts(name)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("keyfile: %s: want one PEM certificate", name)
	}
	return certs[0], nil
}

// ReadCerts reads a file of one or more PEM certificates and returns their
// DER, in order.
func ReadCerts(name string) ([][]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	certs, err := DecodeCerts(b)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %s: %w", filepath.Base(name), err)
	}
	return certs, nil
}

// DecodeCerts decodes one or more PEM certificates, and nothing else, to
// their DER.
func DecodeCerts(b []byte) ([][]byte, error) {
	var out [][]byte
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %q block, want certificates", block.Type)
		}
		out = append(out, block.Bytes)
	}
	if len(out) == 0 || len(bytes.TrimSpace(b)) != 0 {
		return nil, errors.New("want PEM certificates and nothing else")
	}
	return out, nil
}

// NewSigningKey derives a signature key of suite s from rand: Ed25519 (pq)
// or ECDSA P-256 (nist). Go 1.26 ignores the reader of ecdsa.GenerateKey,
// so keys come from ed25519.NewKeyFromSeed and ecdsa.ParseRawPrivateKey,
// which are deterministic.
func NewSigningKey(rand io.Reader, s protocol.Suite) (crypto.Signer, error) {
	switch s {
	case protocol.SuitePQ:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(rand, seed); err != nil {
			return nil, fmt.Errorf("keyfile: random source: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	case protocol.SuiteNIST:
		return NewP256Key(rand)
	}
	return nil, fmt.Errorf("keyfile: invalid suite %d", s)
}

// NewP256Key derives an ECDSA P-256 key from rand, reading again in the
// (negligible) case that 32 bytes are not a valid scalar.
func NewP256Key(rand io.Reader) (*ecdsa.PrivateKey, error) {
	b := make([]byte, 32)
	for range 64 {
		if _, err := io.ReadFull(rand, b); err != nil {
			return nil, fmt.Errorf("keyfile: random source: %w", err)
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("keyfile: random source gives no valid P-256 scalar")
}

// NewKEMKey derives a key-exchange key pair of suite s from rand.
func NewKEMKey(rand io.Reader, s protocol.Suite) (kem.PublicKey, kem.PrivateKey, error) {
	sch := s.KEM()
	seed := make([]byte, sch.SeedSize())
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("keyfile: random source: %w", err)
	}
	pub, priv := sch.DeriveKeyPair(seed)
	return pub, priv, nil
}
