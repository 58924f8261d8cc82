// Package mtls is the mutual TLS of every setpay link: TLS 1.3, each side
// presenting a setpay TLS certificate (types 12-15) from the embedded CA and
// checking the other's.
//
// Go's TLS stack cannot verify setpay certificates itself: their
// certificate-type extension is critical and unknown to crypto/x509. So the
// handshake asks for the peer's certificate without verifying it
// (tls.RequireAnyClientCert on servers, InsecureSkipVerify on clients) and
// VerifyConnection, which runs inside the handshake, checks it with
// protocol.Trust.Verify: chain to a trusted root through the SET hierarchy,
// validity, revocation and the certificate type, which is the peer's role.
// A peer that fails is refused before any request is read or sent.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/setpay/setpay/protocol"
)

// Trusts returns the trust stores a peer certificate may verify under: one
// per suite the party runs. It is called for every handshake, so a
// revocation update applies to the next connection.
type Trusts func() []*protocol.Trust

// VerifyPeer checks a TLS peer's certificate chain (leaf first, as the
// handshake gives it): the leaf must be a setpay TLS certificate of one of
// the accepted types that verifies under one of trusts. It returns the
// parsed leaf.
func VerifyPeer(trusts []*protocol.Trust, chain []*x509.Certificate, accept ...protocol.CertType) (*protocol.Cert, error) {
	if len(chain) == 0 {
		return nil, errors.New("mtls: the peer sent no certificate")
	}
	leaf, err := protocol.ParseCertificate(chain[0].Raw)
	if err != nil {
		return nil, fmt.Errorf("mtls: peer certificate: %w", err)
	}
	if !slices.Contains(accept, leaf.Type) {
		return nil, fmt.Errorf("mtls: the peer presented a %s certificate; accepted here: %s", leaf.Type, typeList(accept))
	}
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	var errs []error
	for _, t := range trusts {
		c, err := t.Verify(raw, leaf.Thumb, leaf.Type, 0)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("mtls: no trusted roots")
	}
	return nil, fmt.Errorf("mtls: peer certificate: %w", errors.Join(errs...))
}

func typeList(ts []protocol.CertType) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t.String()
	}
	return s
}

// Server returns the TLS configuration of a server presenting certs that
// requires a client certificate of one of the accepted types.
func Server(certs []tls.Certificate, trusts Trusts, keyLog io.Writer, accept ...protocol.CertType) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: certs,
		ClientAuth:   tls.RequireAnyClientCert,
		KeyLogWriter: keyLog,
		NextProtos:   []string{"h2", "http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := VerifyPeer(trusts(), cs.PeerCertificates, accept...)
			return err
		},
	}
}

// Client returns the TLS configuration of a client presenting cert (nil:
// none, as before a party's first registration) that accepts a server
// certificate of one of the accepted types.
func Client(cert *tls.Certificate, trusts Trusts, keyLog io.Writer, accept ...protocol.CertType) *tls.Config {
	var certs []tls.Certificate
	if cert != nil {
		certs = []tls.Certificate{*cert}
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       certs,
		InsecureSkipVerify: true, // replaced by VerifyConnection, see the package documentation
		KeyLogWriter:       keyLog,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := VerifyPeer(trusts(), cs.PeerCertificates, accept...)
			return err
		},
	}
}

// Peer returns the client certificate of a server-side connection, checked
// again against the trust in force: a connection outlives revocations, so
// a handler calls Peer for every request, not only the handshake
// (VerifyConnection) checks it. Trust.Verify remembers verified chains, so
// the check costs a lookup.
func Peer(cs *tls.ConnectionState, trusts Trusts, accept ...protocol.CertType) (*protocol.Cert, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil, errors.New("mtls: no client certificate")
	}
	return VerifyPeer(trusts(), cs.PeerCertificates, accept...)
}

// EnvKeyLog is the environment variable naming the key log file.
const EnvKeyLog = "SSLKEYLOGFILE"

// KeyLogFromEnv opens the file named by SSLKEYLOGFILE for appending (0600)
// and warns on warn that it defeats TLS; it returns nil, nil when the
// variable is unset. The file receives every connection's secrets in NSS
// key log format, so that Wireshark can decrypt a capture: for teaching
// and debugging only, never in production.
func KeyLogFromEnv(warn io.Writer) (io.WriteCloser, error) {
	name := os.Getenv(EnvKeyLog)
	if name == "" {
		return nil, nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvKeyLog, err)
	}
	fmt.Fprintf(warn, "warning: %s is set: TLS secrets are written to %s; anyone with that file can read this party's traffic\n", EnvKeyLog, name)
	return f, nil
}
