package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/setpay/setpay/cardholder"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// Cardholder is a registered cardholder.
type Cardholder struct {
	r *Rig
	// Card is the index of its card account (PAN(Card)).
	Card   int
	PAN    string
	Wallet *cardholder.Wallet
	// Shopper buys with the wallet (at Now); one goroutine at a time.
	Shopper *cardholder.Shopper
	// Client is a mutual-TLS client of merchants presenting the wallet's
	// TLS certificate, for requests Shopper does not make.
	Client *http.Client

	unsigned bool
}

// CardholderOptions configure a cardholder's registration.
type CardholderOptions struct {
	// Unsigned makes the cardholder's Shopper pay without its certificate
	// (cardholder.Shopper.Unsigned): no dual signature.
	Unsigned bool
}

// NewCardholder registers a cardholder for the next unused card account
// and opens its wallet in a fresh directory.
func (r *Rig) NewCardholder(o CardholderOptions) *Cardholder {
	t := r.t
	t.Helper()
	dir := t.TempDir()
	i, w, err := r.RegisterCardholder(dir)
	if err != nil {
		t.Fatalf("registering card %d: %v", i, err)
	}
	c := &Cardholder{r: r, Card: i, PAN: PAN(i), Wallet: w, unsigned: o.Unsigned}
	c.Shopper = c.NewShopper()
	tr := &http.Transport{TLSClientConfig: mtls.Client(&w.Creds[Suite].TLS, w.Trust.All, nil, protocol.CertMerchantTLS), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c.Client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	return c
}

// RegisterCardholder registers a cardholder for the next unused card
// account and saves the wallet in dir. It returns the card's index.
func (r *Rig) RegisterCardholder(dir string) (int, *cardholder.Wallet, error) {
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
	reg := r.registration(protocol.RoleCardholder, CardCode)
	reg.PAN, reg.Expiry = pan, Expiry
	w, err := cardholder.Register(context.Background(), dir, &cardholder.RegisterParams{Registration: reg, Keys: keyfile.Store{}})
	return i, w, err
}

// NewShopper returns another Shopper of the wallet (one per goroutine).
func (c *Cardholder) NewShopper() *cardholder.Shopper {
	sh := &cardholder.Shopper{Wallet: c.Wallet, Now: clock, Unsigned: c.unsigned}
	c.r.t.Cleanup(sh.Close)
	return sh
}

// Buy buys o from m with c.Shopper.
func (c *Cardholder) Buy(m *Merchant, o merchant.OrderRequest) (*cardholder.Receipt, error) {
	return c.Shopper.Buy(context.Background(), m.URL, o)
}

// Agree posts an order request to m. It returns the agreed order, or the
// HTTP status and body of a refusal.
func (c *Cardholder) Agree(m *Merchant, o merchant.OrderRequest) (merchant.Agreed, int, string) {
	c.r.t.Helper()
	var a merchant.Agreed
	b, err := json.Marshal(o)
	if err != nil {
		c.r.t.Fatal(err)
	}
	resp, err := c.Client.Post(m.URL+"/orders", "application/json", bytes.NewReader(b))
	if err != nil {
		c.r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.r.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		return a, resp.StatusCode, string(body)
	}
	if err := json.Unmarshal(body, &a); err != nil {
		c.r.t.Fatalf("POST /orders: %v", err)
	}
	return a, resp.StatusCode, ""
}

// MustAgree is Agree that fails the test on a refusal.
func (c *Cardholder) MustAgree(m *Merchant, o merchant.OrderRequest) merchant.Agreed {
	c.r.t.Helper()
	a, code, body := c.Agree(m, o)
	if code != http.StatusCreated {
		c.r.t.Fatalf("POST /orders %+v: %d %s", o, code, body)
	}
	return a
}

// Get fetches path from m and returns the status and body.
func (c *Cardholder) Get(m *Merchant, path string) (int, []byte) {
	c.r.t.Helper()
	resp, err := c.Client.Get(m.URL + path)
	if err != nil {
		c.r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.r.t.Fatal(err)
	}
	return resp.StatusCode, body
}

// Send posts a purchase message (DER) for order to m, as Shopper.Buy
// does, and returns the reply's DER (an Error included). Only transport
// failures fail the test.
func (c *Cardholder) Send(m *Merchant, order string, der []byte) []byte {
	c.r.t.Helper()
	_, in, err := agent.PostDER(context.Background(), c.Client, m.URL+"/orders/"+order+"/set", der)
	if in == nil {
		c.r.t.Fatalf("POST /orders/%s/set: %v", order, err)
	}
	return in
}

// PInitReq returns a fresh PInitReq of the cardholder (DER), as Shopper.Buy
// makes it.
func (c *Cardholder) PInitReq() []byte {
	c.r.t.Helper()
	lid := make([]byte, 8)
	rnd := c.r.rand()
	io.ReadFull(rnd, lid)
	req, err := protocol.NewPInitReq(rnd, fmt.Appendf(nil, "C-%x", lid), "en", c.Wallet.Card.Brand, c.PAN[:6], c.Wallet.Suites(), nil)
	if err != nil {
		c.r.t.Fatal(err)
	}
	return protocol.NewWrapper(req, Now, nil, &req.RRPID).Marshal()
}
