package agent

import (
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// Credentials are a party's keys and certificates for one suite, as the
// CA issued them.
//
// On disk they live in DIR/<suite>/:
//
//	root.pem          the trusted root of the suite
//	sig.pem sig.key   the signature certificate chain and key (absent for a
//	                  cardholder registered without a signature certificate)
//	ke.pem ke.key     the key-exchange certificate chain and key (merchant, gateway)
//	tls.pem tls.key   the TLS certificate chain and key
//
// Every file is 0600 in 0700 directories (package keyfile); keys are
// encrypted when the store has a passphrase.
type Credentials struct {
	Suite protocol.Suite
	Roots [][]byte
	Sig   *protocol.SigningKey
	KE    *protocol.KeyExchangeKey
	TLS   tls.Certificate
}

// Keys are the private keys of a registration, saved with the issued
// certificates.
type Keys struct {
	Sig crypto.Signer  // nil: no signature certificate
	KE  kem.PrivateKey // nil: no key-exchange certificate
	TLS crypto.Signer
}

// NewCredentials pairs issued certificate chains with their keys.
func NewCredentials(s protocol.Suite, roots [][]byte, issued *protocol.Issued, k Keys) (*Credentials, error) {
	c := &Credentials{Suite: s, Roots: roots}
	var err error
	if k.Sig != nil {
		if c.Sig, err = protocol.NewSigningKey(k.Sig, issued.Signature); err != nil {
			return nil, err
		}
	}
	if k.KE != nil {
		if c.KE, err = protocol.NewKeyExchangeKey(k.KE, issued.KeyExchange); err != nil {
			return nil, err
		}
	}
	if len(issued.TLS) == 0 {
		return nil, errors.New("no TLS certificate issued")
	}
	c.TLS = tls.Certificate{Certificate: issued.TLS, PrivateKey: k.TLS}
	return c, nil
}

func suiteDir(dir string, s protocol.Suite) string { return filepath.Join(dir, s.String()) }

// SaveCredentials writes c with its keys to DIR/<suite>/, replacing what
// was there only once everything is written.
func SaveCredentials(dir string, st keyfile.Store, c *Credentials, k Keys) error {
	final := suiteDir(dir, c.Suite)
	tmp := final + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := keyfile.MkdirAll(tmp); err != nil {
		return err
	}
	// Certificates are public, but a wallet is written 0600 throughout.
	writeCerts := func(name string, certs ...[]byte) error {
		return keyfile.WriteFile(filepath.Join(tmp, name), keyfile.EncodeCerts(certs...), keyfile.PermKey)
	}
	write := func(name string, chain [][]byte, key any) error {
		if err := writeCerts(name+".pem", chain...); err != nil {
			return err
		}
		return st.WriteKey(filepath.Join(tmp, name+".key"), c.Suite, key)
	}
	if err := writeCerts("root.pem", c.Roots...); err != nil {
		return err
	}
	if c.Sig != nil {
		if err := write("sig", c.Sig.Chain, k.Sig); err != nil {
			return err
		}
	}
	if c.KE != nil {
		if err := write("ke", c.KE.Chain, k.KE); err != nil {
			return err
		}
	}
	if err := write("tls", c.TLS.Certificate, k.TLS); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// LoadCredentials reads the credentials of suite s from DIR/<suite>/.
func LoadCredentials(dir string, st keyfile.Store, s protocol.Suite) (*Credentials, error) {
	d := suiteDir(dir, s)
	if _, err := os.Stat(filepath.Join(d, "tls.pem")); err != nil {
		return nil, fmt.Errorf("no %s credentials in %s (register first): %w", s, dir, err)
	}
	c := &Credentials{Suite: s}
	var err error
	if c.Roots, err = keyfile.ReadCerts(filepath.Join(d, "root.pem")); err != nil {
		return nil, err
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(d, name+".pem"))
		return err == nil
	}
	signer := func(name string) ([][]byte, crypto.Signer, error) {
		chain, err := keyfile.ReadCerts(filepath.Join(d, name+".pem"))
		if err != nil {
			return nil, nil, err
		}
		k, err := st.ReadSigner(filepath.Join(d, name+".key"), chain[0])
		return chain, k, err
	}
	if exists("sig") {
		chain, k, err := signer("sig")
		if err != nil {
			return nil, err
		}
		if c.Sig, err = protocol.NewSigningKey(k, chain); err != nil {
			return nil, fmt.Errorf("%s/sig.pem: %w", d, err)
		}
	}
	if exists("ke") {
		chain, err := keyfile.ReadCerts(filepath.Join(d, "ke.pem"))
		if err != nil {
			return nil, err
		}
		k, err := st.ReadKEM(filepath.Join(d, "ke.key"), s)
		if err != nil {
			return nil, err
		}
		if c.KE, err = protocol.NewKeyExchangeKey(k, chain); err != nil {
			return nil, fmt.Errorf("%s/ke.pem: %w", d, err)
		}
	}
	chain, k, err := signer("tls")
	if err != nil {
		return nil, err
	}
	c.TLS = tls.Certificate{Certificate: chain, PrivateKey: k}
	return c, nil
}
