package merchant

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

const fileStore = "merchant.db"

// Config configures a [Merchant].
type Config struct {
	// Dir is the merchant's data directory: its credentials (one
	// subdirectory per suite) and its order store.
	Dir  string
	Keys keyfile.Store
	// Gateway is the payment gateway's base URL (https://host:port).
	Gateway string
	// Catalogue is what the merchant sells (nil: DefaultCatalogue), in
	// Currency (ISO 4217 numeric; 0: 978, euro).
	Catalogue []Item
	Currency  int
	// CustomOrders lets cardholders order by description and amount (the
	// demo does).
	CustomOrders bool
	// RequireCert refuses PReqs without a cardholder certificate
	// (CodeCertRequired).
	RequireCert bool
	// KeyLog receives the TLS secrets of the connections to the gateway
	// (SSLKEYLOGFILE); nil: none.
	KeyLog io.Writer
	// Wire records the messages exchanged with the gateway; nil: none.
	Wire *agent.WireLog
	// Rand and Now can be fixed for reproducible runs.
	Rand io.Reader
	Now  func() time.Time
	Log  *slog.Logger
}

// Merchant is the merchant agent: it agrees orders with cardholders, runs
// the purchase (PInitReq, PReq) with them, asks the gateway to authorize,
// and captures in batches.
type Merchant struct {
	cfg       Config
	rand      io.Reader
	now       func() time.Time
	log       *slog.Logger
	catalogue []Item
	creds     map[protocol.Suite]*agent.Credentials
	keys      map[protocol.Suite]*protocol.MerchantKeys
	trust     *agent.TrustStore
	store     *store
	gw        *http.Client
	// gwTransport is gw's transport, under cfg.Wire's recording if any
	// (which hides it from gw.CloseIdleConnections).
	gwTransport *http.Transport

	gwMu    sync.Mutex
	gwCerts map[protocol.Suite]*gatewayCert
	capMu   sync.Mutex
}

// gatewayCert is the gateway's key-exchange certificate of a suite, as the
// gateway serves it, verified.
type gatewayCert struct {
	chain [][]byte
	cert  *protocol.Cert
}

// Open opens the merchant of cfg.Dir.
func Open(cfg Config) (*Merchant, error) {
	m := &Merchant{cfg: cfg, rand: agent.LockedRand(cfg.Rand), now: agent.Clock(cfg.Now), log: cfg.Log, catalogue: cfg.Catalogue,
		creds: map[protocol.Suite]*agent.Credentials{}, keys: map[protocol.Suite]*protocol.MerchantKeys{}, gwCerts: map[protocol.Suite]*gatewayCert{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.catalogue == nil {
		m.catalogue = DefaultCatalogue
	}
	if m.cfg.Currency == 0 {
		m.cfg.Currency = 978
	}
	roots := map[protocol.Suite][][]byte{}
	for _, s := range protocol.Suites {
		if _, err := os.Stat(filepath.Join(cfg.Dir, s.String())); err != nil {
			continue
		}
		c, err := agent.LoadCredentials(cfg.Dir, cfg.Keys, s)
		if err != nil {
			return nil, fmt.Errorf("merchant: %w", err)
		}
		if c.Sig == nil || c.KE == nil {
			return nil, fmt.Errorf("merchant: %s credentials lack a signature or key-exchange certificate", s)
		}
		m.creds[s] = c
		m.keys[s] = &protocol.MerchantKeys{Sig: c.Sig, KE: c.KE}
		roots[s] = c.Roots
	}
	if len(m.creds) == 0 {
		return nil, fmt.Errorf("merchant: no credentials in %s: register the merchant first", cfg.Dir)
	}
	var err error
	if m.trust, err = agent.NewTrustStore(roots, cfg.Now); err != nil {
		return nil, fmt.Errorf("merchant: %w", err)
	}
	first := m.creds[m.Suites()[0]]
	m.gwTransport = &http.Transport{
		TLSClientConfig:     mtls.Client(&first.TLS, m.trust.All, cfg.KeyLog, protocol.CertGatewayTLS),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
	}
	m.gw = &http.Client{Timeout: 30 * time.Second, Transport: cfg.Wire.Transport(m.gwTransport)}
	if m.store, err = openStore(filepath.Join(cfg.Dir, fileStore), m.now); err != nil {
		return nil, fmt.Errorf("merchant: %w", err)
	}
	return m, nil
}

// Close closes the order store.
func (m *Merchant) Close() error {
	m.gwTransport.CloseIdleConnections()
	return m.store.close()
}

// Trust is the merchant's trust store (to refresh revocation).
func (m *Merchant) Trust() *agent.TrustStore { return m.trust }

// Suites returns the suites the merchant runs, pq first.
func (m *Merchant) Suites() []protocol.Suite { return m.trust.Suites() }

// ID returns the merchant id its certificates carry.
func (m *Merchant) ID() string { return m.creds[m.Suites()[0]].Sig.Cert.MerchantID() }

// TLSCertificate is the TLS certificate the merchant presents as a client
// (to the CA server): that of its first suite.
func (m *Merchant) TLSCertificate() tls.Certificate { return m.creds[m.Suites()[0]].TLS }

// TLSConfig is the merchant server's TLS: its TLS certificates, and only
// cardholders' TLS certificates accepted as clients.
func (m *Merchant) TLSConfig(keyLog io.Writer) *tls.Config {
	var certs []tls.Certificate
	for _, s := range m.Suites() {
		certs = append(certs, m.creds[s].TLS)
	}
	return mtls.Server(certs, m.trust.All, keyLog, protocol.CertCardholderTLS)
}

// Handler serves the merchant's endpoints to cardholders:
//
//	GET  /catalogue           the catalogue (JSON Catalogue)
//	POST /orders              agree an order (JSON OrderRequest in, Agreed out)
//	GET  /orders/{id}         the order's status (JSON Status), to its buyer only
//	POST /orders/{id}/set     the purchase: PInitReq -> PInitRes, PReq -> PRes
//	                          (DER MessageWrappers, agent.ContentType)
//
// An order belongs to the TLS certificate that agreed it.
func (m *Merchant) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /catalogue", func(w http.ResponseWriter, r *http.Request) {
		k := m.keys[m.Suites()[0]]
		writeJSON(w, http.StatusOK, Catalogue{Merchant: k.Sig.Cert.Merchant.Name, MerchantID: k.Sig.Cert.MerchantID(), Currency: m.cfg.Currency,
			Items: m.catalogue, CustomOrders: m.cfg.CustomOrders, RequireCert: m.cfg.RequireCert})
	})
	mux.HandleFunc("POST /orders", m.newOrder)
	mux.HandleFunc("GET /orders/{id}", m.orderStatus)
	mux.HandleFunc("/orders/{id}/set", func(w http.ResponseWriter, r *http.Request) {
		peer, err := mtls.Peer(r.TLS, m.trust.All, protocol.CertCardholderTLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		in, ok := agent.ReadMessage(w, r)
		if !ok {
			return
		}
		agent.WriteMessage(w, m.Purchase(r.Context(), r.PathValue("id"), peer.Thumb[:], in))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (m *Merchant) newOrder(w http.ResponseWriter, r *http.Request) {
	peer, err := mtls.Peer(r.TLS, m.trust.All, protocol.CertCardholderTLS)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	var req OrderRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "the body must be a JSON order request: "+err.Error(), http.StatusBadRequest)
		return
	}
	desc, amount, err := m.agree(&req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	id := make([]byte, 6)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	o := &order{ID: "O-" + hex.EncodeToString(id), Description: desc, Amount: protocol.Amount{Currency: uint16(m.cfg.Currency), Value: amount}, Buyer: peer.Thumb[:]}
	if err := m.store.insert(r.Context(), o); err != nil {
		m.log.Error("storing an order", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	m.log.Info("order agreed", "order", o.ID, "amount", amount)
	writeJSON(w, http.StatusCreated, Agreed{Order: o.ID, Description: desc, Currency: m.cfg.Currency, Amount: amount})
}

// Status is the answer to GET /orders/{id}.
type Status struct {
	Order    string `json:"order"`
	State    string `json:"state"`
	Amount   int64  `json:"amount"`
	Captured int64  `json:"captured"`
	Code     int    `json:"code,omitempty"`
}

func (m *Merchant) orderStatus(w http.ResponseWriter, r *http.Request) {
	peer, err := mtls.Peer(r.TLS, m.trust.All, protocol.CertCardholderTLS)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	o, err := m.store.get(r.Context(), r.PathValue("id"))
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if o == nil || string(o.Buyer) != string(peer.Thumb[:]) {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, Status{Order: o.ID, State: o.State, Amount: o.Amount.Value, Captured: o.Captured, Code: o.Code})
}

// gatewayCert returns the gateway's verified key-exchange certificate of
// suite s, fetched from the gateway on first use.
func (m *Merchant) gatewayCert(ctx context.Context, s protocol.Suite) (*gatewayCert, error) {
	m.gwMu.Lock()
	defer m.gwMu.Unlock()
	if g := m.gwCerts[s]; g != nil {
		if _, err := m.trust.Get(s).Verify(g.chain, g.cert.Thumb, protocol.CertGatewayKeyExchange, s); err == nil {
			return g, nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.cfg.Gateway+"/certs/"+s.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.gw.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway certificates: %s", resp.Status)
	}
	chain, err := keyfile.DecodeCerts(b)
	if err != nil {
		return nil, fmt.Errorf("gateway certificates: %w", err)
	}
	c, err := m.trust.Get(s).Verify(chain, protocol.ThumbprintOf(chain[0]), protocol.CertGatewayKeyExchange, s)
	if err != nil {
		return nil, fmt.Errorf("gateway certificate: %w", err)
	}
	g := &gatewayCert{chain: chain, cert: c}
	m.gwCerts[s] = g
	return g, nil
}

// fail logs a refusal and returns the Error to answer the cardholder with,
// signed under suite s or, for an order that has no suite yet, the
// merchant's first.
func (m *Merchant) fail(in []byte, s protocol.Suite, err error) []byte {
	code := agent.Code(err)
	if code == 0 {
		m.log.Error("purchase failed", "err", err)
	} else {
		m.log.Info("purchase refused", "code", int(code), "err", err)
	}
	var re *agent.RemoteError
	if errors.As(err, &re) {
		err = &protocol.CheckError{Code: re.Data.Code, Detail: "gateway: " + re.Data.Detail}
	}
	if m.keys[s] == nil {
		s = m.Suites()[0]
	}
	return agent.ErrorReply(err, in, s, m.keys[s].Sig, agent.Nonce(m.rand), m.now())
}
