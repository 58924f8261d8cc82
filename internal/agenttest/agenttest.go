// Package agenttest runs a whole setpay deployment inside one test process,
// for the tests of the gateway, merchant and cardholder packages:
//
//   - an embedded CA (suite pq), initialised with a seeded random source at
//     the fixed time [Now], serving registrations on loopback HTTPS;
//   - a gateway registered with it, with a simulated bank (package
//     gateway/bank) behind a [BankLink] that can fail on demand;
//   - merchants registered with it ([Rig.AddMerchant]; [New] adds the
//     first), talking to the gateway through a [Tap] that records what they
//     send and can make the gateway unreachable or lose its answers;
//   - cardholders registered with it ([Rig.NewCardholder]) with a
//     cardholder.Shopper and a mutual-TLS client of their own.
//
// Every party runs on the clock [Now]; the CA and the registrations draw
// from seeded random sources, the agents at run time from crypto/rand. The
// gateway and merchants log into a [Buffer] each, which tests read.
//
// Helpers in keys.go open the sealed messages a test captures with the
// parties' keys, so that a test can check what the gateway or merchant
// answered, and build variants of genuine requests.
package agenttest

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/gateway"
	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// Now is the time every party of a rig runs at.
var Now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Registration data of the rig's CA.
const (
	// Suite is the only suite of the rig's CA.
	Suite = protocol.SuitePQ
	// Expiry is the expiry of every card.
	Expiry = "202912"
	// CardCode is the activation code of every card account.
	CardCode = "482-913"
	// GatewayID is the gateway's id on the CA's enrollment list.
	GatewayID = "G-0001"
	// AcquirerBIN is the acquirer of every merchant.
	AcquirerBIN = "400000"

	merchantCode = "m-7730"
	gatewayCode  = "g-1208"
)

// MerchantIDs are the merchants enrolled at the CA, which
// [Rig.AddMerchant] may register; [New] registers the first.
var MerchantIDs = []string{"M-0001", "M-0002", "M-0003", "M-0004"}

// Cards is how many card accounts the issuer (and the bank) know: PAN(0)
// to PAN(Cards-1).
const Cards = 40

// DefaultCreditLimit is the credit limit of every card account unless
// Options.CreditLimit says otherwise: 1,000,000.00.
const DefaultCreditLimit = 1_000_000_00

// PAN returns the card number of card account i: 16 digits, Luhn-valid.
func PAN(i int) string {
	s := fmt.Sprintf("40000012345%04d", i)
	return s + string(rune('0'+luhnDigit(s)))
}

// luhnDigit returns the check digit that makes s followed by it pass Luhn.
func luhnDigit(s string) int {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 0 { // doubled: the check digit will be at position 0
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}

// Options configure a rig.
type Options struct {
	// Merchant configures the first merchant; the rig sets Dir, Keys,
	// Gateway, Now and Log (see Rig.AddMerchant).
	Merchant merchant.Config
	// Policy is the gateway's amount policy.
	Policy protocol.AmountPolicy
	// VelocityLimit is the bank's approvals per card per hour (0: 1000).
	VelocityLimit int
	// CreditLimit is every card account's limit (0: DefaultCreditLimit).
	CreditLimit int64
}

// Rig is a running deployment. Its fields are set by New; tests read them
// and call the parties directly or over HTTPS.
type Rig struct {
	t testing.TB

	// CA is the CA, CAURL its server.
	CA    *ca.CA
	CAURL string
	// Roots is the CA's root certificate (DER) of Suite.
	Roots [][]byte
	// Bank is the simulated bank, Link the gateway's connection to it.
	Bank *bank.Bank
	Link *BankLink
	// Gateway is the running gateway.
	Gateway *Gateway
	// Merchant is the first merchant, MerchantIDs[0].
	Merchant *Merchant

	mu        sync.Mutex
	seq       uint64
	cards     int
	merchants map[string]bool
}

// Gateway is a running gateway.
type Gateway struct {
	*gateway.Gateway
	// Dir is its data directory, URL its server (behind Tap).
	Dir, URL string
	// Log holds its log (text, debug level).
	Log *Buffer
	// Tap stands between the merchants and the gateway.
	Tap *Tap
}

// Merchant is a running merchant.
type Merchant struct {
	*merchant.Merchant
	// ID is its merchant id, Dir its data directory, URL its server.
	ID, Dir, URL string
	// Log holds its log (text, debug level).
	Log *Buffer
}

// New starts a rig: the CA and its server, the gateway with its bank, and
// the first merchant. Everything stops when the test ends.
func New(t testing.TB, o Options) *Rig {
	t.Helper()
	r := &Rig{t: t, merchants: map[string]bool{}}
	r.startCA()

	// The bank, with every card account.
	b, err := bank.Open(filepath.Join(t.TempDir(), "bank.db"), bank.Options{Now: clock, Rand: r.rand(),
		VelocityLimit: orDefault(o.VelocityLimit, 1000), VelocityWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	limit := o.CreditLimit
	if limit == 0 {
		limit = DefaultCreditLimit
	}
	var accounts []bank.Account
	for i := range Cards {
		accounts = append(accounts, bank.Account{PAN: PAN(i), Expiry: Expiry, CreditLimit: limit})
	}
	if err := b.PutAccounts(context.Background(), accounts...); err != nil {
		t.Fatal(err)
	}
	r.Bank, r.Link = b, &BankLink{Bank: b}

	// The gateway.
	gw := &Gateway{Dir: t.TempDir(), Log: new(Buffer)}
	r.register(gw.Dir, protocol.RoleGateway, protocol.Identity{ID: GatewayID}, gatewayCode)
	g, err := gateway.Open(gateway.Config{Dir: gw.Dir, Keys: keyfile.Store{}, Bank: r.Link, Policy: o.Policy, Now: clock,
		Log: newLogger(gw.Log, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	gw.Gateway = g
	r.refresh(g.Trust(), g.TLSCertificate())
	gw.Tap = &Tap{next: g.Handler()}
	gw.URL = Serve(t, gw.Tap, g.TLSConfig(nil), newLogger(gw.Log, "gateway"))
	r.Gateway = gw

	r.Merchant = r.AddMerchant(MerchantIDs[0], o.Merchant)
	return r
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func clock() time.Time { return Now }

// rand returns a fresh seeded random source, a different one at each call.
func (r *Rig) rand() io.Reader {
	r.mu.Lock()
	r.seq++
	var seed [32]byte
	copy(seed[:], "agenttest")
	binary.BigEndian.PutUint64(seed[24:], r.seq)
	r.mu.Unlock()
	return agent.LockedRand(rand.NewChaCha8(seed))
}

func newLogger(w io.Writer, party string) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("party", party)
}

// startCA initialises the CA, enrolls the gateway and the merchants, and
// serves it.
func (r *Rig) startCA() {
	t := r.t
	dir := t.TempDir()
	o := ca.Options{Suites: []protocol.Suite{Suite}, Rand: rand.NewChaCha8([32]byte{'a', 'g', 'e', 'n', 't', 't', 'e', 's', 't'}), Now: clock}
	if err := ca.Init(dir, o); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	var accounts []ca.Account
	for i := range Cards {
		accounts = append(accounts, ca.Account{PAN: PAN(i), Expiry: Expiry, ActivationCode: CardCode})
	}
	issuer, err := ca.NewAccountIssuer(accounts)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := ca.NewRegistrar(c, issuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(); c.Close() })
	enroll := []ca.Enrollment{{Role: protocol.RoleGateway, ID: GatewayID, Name: "Test Gateway", ActivationCode: gatewayCode}}
	for _, id := range MerchantIDs {
		enroll = append(enroll, ca.Enrollment{Role: protocol.RoleMerchant, ID: id, Name: "Shop " + id, AcquirerBIN: AcquirerBIN, ActivationCode: merchantCode})
	}
	for _, e := range enroll {
		if err := reg.Enroll(e); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := ca.NewServer(c, reg, ca.ServerOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("CA server: %v", err)
		}
	})
	r.CA, r.CAURL = c, "https://"+srv.Addr()
	r.Roots = [][]byte{c.Hierarchy(Suite).Root.Cert}
}

// Trust returns a fresh Trust of the rig's roots at Now.
func (r *Rig) Trust() *protocol.Trust {
	t, err := protocol.NewTrust(r.Roots...)
	if err != nil {
		r.t.Fatal(err)
	}
	t.Now = clock
	return t
}

// caClient is an HTTPS client of the CA server presenting cert (nil: none).
func (r *Rig) caClient(cert *tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: mtls.Client(cert, func() []*protocol.Trust { return []*protocol.Trust{r.Trust()} }, nil, protocol.CertCATLS),
		ForceAttemptHTTP2: true}
	r.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// registration is the common part of a registration with the rig's CA.
func (r *Rig) registration(role protocol.Role, code string) agent.Registration {
	return agent.Registration{CA: r.CAURL, Client: r.caClient(nil), Role: role, Suite: Suite, Roots: r.Roots,
		Brand: ca.DefaultBrand, Rand: r.rand(), Now: clock, ActivationCode: code}
}

// register registers a merchant or the gateway and saves its credentials
// in dir.
func (r *Rig) register(dir string, role protocol.Role, id protocol.Identity, code string) {
	r.t.Helper()
	reg := r.registration(role, code)
	reg.Identity = id
	out, err := agent.Register(context.Background(), &reg)
	if err != nil {
		r.t.Fatalf("registering %s %s: %v", role, id.ID, err)
	}
	if err := agent.SaveCredentials(dir, keyfile.Store{}, out.Credentials, out.Keys); err != nil {
		r.t.Fatal(err)
	}
}

// refresh installs the CA's revocation state in a party's trust store, as
// the agents' commands do when they start.
func (r *Rig) refresh(ts *agent.TrustStore, cert tls.Certificate) {
	r.t.Helper()
	if err := ts.Refresh(context.Background(), r.caClient(&cert), r.CAURL); err != nil {
		r.t.Fatalf("revocation refresh: %v", err)
	}
}

// AddMerchant registers merchant id (one of MerchantIDs, each at most
// once per rig), opens it with cfg and serves it (cfg.Wire, if set, also
// records what cardholders send and receive). The rig sets cfg.Dir
// (a fresh directory), Keys, Gateway (the rig's gateway), Now and Log.
func (r *Rig) AddMerchant(id string, cfg merchant.Config) *Merchant {
	t := r.t
	t.Helper()
	r.mu.Lock()
	taken := r.merchants[id]
	r.merchants[id] = true
	r.mu.Unlock()
	if taken {
		t.Fatalf("merchant %s is already registered in this rig", id)
	}
	m := &Merchant{ID: id, Dir: t.TempDir(), Log: new(Buffer)}
	r.register(m.Dir, protocol.RoleMerchant, protocol.Identity{ID: id, AcquirerBIN: AcquirerBIN}, merchantCode)
	cfg.Dir, cfg.Keys, cfg.Gateway, cfg.Now = m.Dir, keyfile.Store{}, r.Gateway.URL, clock
	cfg.Log = newLogger(m.Log, "merchant")
	mm, err := merchant.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mm.Close() })
	m.Merchant = mm
	r.refresh(mm.Trust(), mm.TLSCertificate())
	m.URL = Serve(t, cfg.Wire.Handler(mm.Handler()), mm.TLSConfig(nil), cfg.Log) // as setpay merchant serve does
	return m
}

// Serve serves h over TLS with tc on a free loopback port until the test
// ends, and returns its base URL.
func Serve(t testing.TB, h http.Handler, tc *tls.Config, log *slog.Logger) string {
	t.Helper()
	srv, err := agent.Listen("127.0.0.1:0", h, tc, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server %s: %v", srv.Addr(), err)
		}
	})
	return "https://" + srv.Addr()
}
