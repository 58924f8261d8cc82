package ca

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/setpay/setpay/internal/keyfile"
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
)

// ErrPassphrase is returned (wrapped) by [Open] when a private key cannot be
// decrypted: the passphrase is wrong or missing.
var ErrPassphrase = keyfile.ErrPassphrase

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

// keys is the CA's key store: its passphrase, and its random source for
// the encryption's salt and IV (so that a seeded source gives identical
// files).
func (c *CA) keys() keyfile.Store { return keyfile.Store{Passphrase: c.o.Passphrase, Rand: c.rand} }

// suiteDir returns DIR/<suite>.
func (c *CA) suiteDir(s protocol.Suite) string { return filepath.Join(c.dir, s.String()) }
