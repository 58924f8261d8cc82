package agenttest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// This file is what the adversarial suite (internal/adversary) needs of a
// rig beyond what the agents' own tests use: the rig's CA as an attacker
// who registers, revokes and forges certificates sees it, and the paths of
// the parties' stores, which it reads (never writes) to check that an
// attack changed nothing.

// CAClient returns an HTTPS client of the rig's CA server presenting cert
// (nil: none).
func (r *Rig) CAClient(cert *tls.Certificate) *http.Client { return r.caClient(cert) }

// RefreshTrust installs the CA's current revocation state (its BCI and
// CRLs) in a party's trust store, fetched with the party's TLS
// certificate, as the agents do periodically.
func (r *Rig) RefreshTrust(ts *agent.TrustStore, cert tls.Certificate) { r.refresh(ts, cert) }

// Registration returns the parameters of a registration of role with the
// rig's CA (its URL, roots, brand and clock, a seeded random source, the
// role's activation code and a client presenting no certificate). For a
// cardholder it reserves the next unused card account (PAN and Expiry are
// set); for a merchant or gateway the caller sets Identity (MerchantIDs,
// AcquirerBIN; GatewayID).
func (r *Rig) Registration(role protocol.Role) agent.Registration {
	r.t.Helper()
	switch role {
	case protocol.RoleCardholder:
		r.mu.Lock()
		i := r.cards
		r.cards++
		r.mu.Unlock()
		if i >= Cards {
			r.t.Fatalf("the rig has only %d card accounts", Cards)
		}
		pan, err := protocol.NewPAN(PAN(i))
		if err != nil {
			r.t.Fatal(err)
		}
		reg := r.registration(role, CardCode)
		reg.PAN, reg.Expiry = pan, Expiry
		return reg
	case protocol.RoleMerchant:
		return r.registration(role, merchantCode)
	case protocol.RoleGateway:
		return r.registration(role, gatewayCode)
	}
	r.t.Fatalf("no registration for role %s", role)
	return agent.Registration{}
}

// CAKey returns the certificate and private key of the rig's CA of type t
// (protocol.CertRootCA, CertBrandCA, CertCardholderCA, CertMerchantCA or
// CertGatewayCA), read from the CA's directory: what an attacker holding
// the CA's key files signs with.
func (r *Rig) CAKey(t testing.TB, ct protocol.CertType) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	names := map[protocol.CertType]string{protocol.CertRootCA: "root", protocol.CertBrandCA: "brand",
		protocol.CertCardholderCA: "cardholder-ca", protocol.CertMerchantCA: "merchant-ca", protocol.CertGatewayCA: "gateway-ca"}
	name, ok := names[ct]
	if !ok {
		t.Fatalf("no CA of type %s", ct)
	}
	base := filepath.Join(r.CA.Dir(), Suite.String(), name)
	der, err := keyfile.ReadCert(base + ".pem")
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyfile.Store{}.ReadSigner(base+".key", der)
	if err != nil {
		t.Fatal(err)
	}
	return x, k
}

// SigningKey returns the private signature key of the party whose data
// directory (or wallet) is dir, read from its credentials.
func SigningKey(t testing.TB, dir string) crypto.Signer {
	t.Helper()
	d := filepath.Join(dir, Suite.String())
	chain, err := keyfile.ReadCerts(filepath.Join(d, "sig.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyfile.Store{}.ReadSigner(filepath.Join(d, "sig.key"), chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// StorePath returns the path of the merchant's order store (SQLite).
func (m *Merchant) StorePath() string { return filepath.Join(m.Dir, "merchant.db") }

// LedgerPath returns the path of the gateway's ledger (SQLite).
func (g *Gateway) LedgerPath() string { return filepath.Join(g.Dir, "gateway.db") }
