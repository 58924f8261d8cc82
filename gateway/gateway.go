package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

// Files of the gateway's data directory, beside its credentials
// (agent.Credentials: DIR/<suite>/).
const (
	fileLedger   = "gateway.db"
	fileTokenKey = "token.key"
)

// Config configures a [Gateway].
type Config struct {
	// Dir is the gateway's data directory: its credentials (one
	// subdirectory per suite it registered for), its ledger and its CapToken
	// key.
	Dir  string
	Keys keyfile.Store
	// Bank is the bank network the gateway translates to.
	Bank bank.Network
	// Policy bounds the amount a merchant may ask to authorize.
	Policy protocol.AmountPolicy
	// Rand and Now can be fixed for reproducible runs; nil:
	// crypto/rand.Reader and time.Now.
	Rand io.Reader
	Now  func() time.Time
	Log  *slog.Logger
}

// Gateway is the payment gateway: it verifies merchants' AuthReq and
// CapReq (the protocol checks are protocol.VerifyAuthReq and
// protocol.VerifyCapReq), asks the bank, and answers.
type Gateway struct {
	cfg    Config
	rand   io.Reader
	now    func() time.Time
	log    *slog.Logger
	creds  map[protocol.Suite]*agent.Credentials
	keys   map[protocol.Suite]*protocol.GatewayKeys
	trust  *agent.TrustStore
	ledger *ledger

	xidMu   sync.Mutex
	xidLock map[protocol.XID]*xidLock
	capMu   sync.Mutex
}

// Open opens the gateway of cfg.Dir: the credentials of every suite it
// registered for, its ledger and its CapToken key (created on first use).
func Open(cfg Config) (*Gateway, error) {
	g := &Gateway{cfg: cfg, rand: agent.LockedRand(cfg.Rand), now: agent.Clock(cfg.Now), log: cfg.Log,
		creds: map[protocol.Suite]*agent.Credentials{}, keys: map[protocol.Suite]*protocol.GatewayKeys{}, xidLock: map[protocol.XID]*xidLock{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Bank == nil {
		return nil, errors.New("gateway: no bank")
	}
	tokenKey, err := g.tokenKey()
	if err != nil {
		return nil, err
	}
	roots := map[protocol.Suite][][]byte{}
	for _, s := range protocol.Suites {
		if _, err := os.Stat(filepath.Join(cfg.Dir, s.String())); err != nil {
			continue
		}
		c, err := agent.LoadCredentials(cfg.Dir, cfg.Keys, s)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if c.Sig == nil || c.KE == nil {
			return nil, fmt.Errorf("gateway: %s credentials lack a signature or key-exchange certificate", s)
		}
		g.creds[s] = c
		g.keys[s] = &protocol.GatewayKeys{Sig: c.Sig, KE: c.KE, TokenKey: tokenKey}
		roots[s] = c.Roots
	}
	if len(g.creds) == 0 {
		return nil, fmt.Errorf("gateway: no credentials in %s: register the gateway first", cfg.Dir)
	}
	if g.trust, err = agent.NewTrustStore(roots, cfg.Now); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.ledger, err = openLedger(filepath.Join(cfg.Dir, fileLedger), g.now); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return g, nil
}

// Close closes the ledger.
func (g *Gateway) Close() error { return g.ledger.close() }

// Trust is the gateway's trust store (to refresh revocation).
func (g *Gateway) Trust() *agent.TrustStore { return g.trust }

// Suites returns the suites the gateway serves, pq first.
func (g *Gateway) Suites() []protocol.Suite { return g.trust.Suites() }

// tokenKey reads the CapToken key, creating it on first use. Only the
// gateway holds it: a CapToken is sealed to the gateway itself.
func (g *Gateway) tokenKey() (protocol.Secret, error) {
	var k protocol.Secret
	name := filepath.Join(g.cfg.Dir, fileTokenKey)
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := io.ReadFull(g.rand, k[:]); err != nil {
			return k, err
		}
		if err := keyfile.MkdirAll(g.cfg.Dir); err != nil {
			return k, err
		}
		return k, keyfile.WriteFile(name, []byte(hex.EncodeToString(k[:])+"\n"), keyfile.PermKey)
	}
	if err != nil {
		return k, fmt.Errorf("gateway: %w", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != len(k) {
		return k, fmt.Errorf("gateway: %s is not %d hex-encoded bytes", name, len(k))
	}
	copy(k[:], raw)
	return k, nil
}

// TLSCertificate is the TLS certificate the gateway presents as a client
// (to the CA server): that of its first suite.
func (g *Gateway) TLSCertificate() tls.Certificate { return g.creds[g.Suites()[0]].TLS }

// TLSConfig is the gateway server's TLS: its TLS certificates, and only
// merchants' TLS certificates accepted as clients.
func (g *Gateway) TLSConfig(keyLog io.Writer) *tls.Config {
	var certs []tls.Certificate
	for _, s := range g.Suites() {
		certs = append(certs, g.creds[s].TLS)
	}
	return mtls.Server(certs, g.trust.All, keyLog, protocol.CertMerchantTLS)
}

// Handler serves the gateway's endpoints:
//
//	POST /auth            an AuthReq, answered with an AuthRes (or an Error)
//	POST /capture         a CapReq, answered with a CapRes (or an Error)
//	GET  /certs/{suite}   the gateway's key-exchange certificate chain (PEM),
//	                      which merchants give cardholders to seal PIs to
//
// The POSTs take and give DER MessageWrappers (agent.ContentType).
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", g.serve(g.Authorize))
	mux.HandleFunc("/capture", g.serve(g.Capture))
	mux.HandleFunc("GET /certs/{suite}", func(w http.ResponseWriter, r *http.Request) {
		s, err := protocol.ParseSuite(r.PathValue("suite"))
		c := g.creds[s]
		if err != nil || c == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(keyfile.EncodeCerts(c.KE.Chain...))
	})
	return mux
}

func (g *Gateway) serve(h func(ctx context.Context, peer *protocol.Cert, in []byte) []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		peer, err := mtls.Peer(r.TLS, g.trust.All, protocol.CertMerchantTLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		in, ok := agent.ReadMessage(w, r)
		if !ok {
			return
		}
		agent.WriteMessage(w, h(r.Context(), peer, in))
	}
}

// fail logs a refusal (never card data: protocol errors carry none) and
// returns the Error message to answer with, signed under suite s when the
// gateway has keys of it.
func (g *Gateway) fail(kind string, in []byte, s protocol.Suite, err error) []byte {
	code := protocol.CodeOf(err)
	if code == 0 {
		g.log.Error(kind+" failed", "err", err)
	} else {
		g.log.Info(kind+" refused", "code", int(code), "err", err)
	}
	var key *protocol.SigningKey
	if k := g.keys[s]; k != nil {
		key = k.Sig
	}
	return agent.ErrorReply(err, in, s, key, agent.Nonce(g.rand), g.now())
}

func hashOf(in []byte) []byte {
	h := sha256.Sum256(in)
	return h[:]
}

type xidLock struct {
	sync.Mutex
	users int
}

// lockXID serializes the handling of one transaction; the returned
// function unlocks it.
func (g *Gateway) lockXID(x protocol.XID) func() {
	g.xidMu.Lock()
	l := g.xidLock[x]
	if l == nil {
		l = new(xidLock)
		g.xidLock[x] = l
	}
	l.users++
	g.xidMu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		g.xidMu.Lock()
		if l.users--; l.users == 0 {
			delete(g.xidLock, x)
		}
		g.xidMu.Unlock()
	}
}

// sameMerchant reports whether the TLS client certificate and the
// certificate that signed a request belong to the same merchant: the CA
// gives all of a merchant's certificates the same subject, from the same
// merchant CA.
func sameMerchant(tlsPeer, signer *protocol.Cert) bool {
	return tlsPeer.X509.Subject.String() == signer.X509.Subject.String() &&
		string(tlsPeer.X509.RawIssuer) == string(signer.X509.RawIssuer)
}
