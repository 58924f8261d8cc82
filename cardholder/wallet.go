package cardholder

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// fileCard is the wallet's card record, 0600.
const fileCard = "card.json"

// Wallet is the cardholder's wallet, a directory DIR: the credentials of
// each suite the cardholder registered for (agent.Credentials, DIR/<suite>/)
// and the card record (DIR/card.json, 0600): the PAN, its expiry and, per
// suite, the CardSecret and PANSecret of the registration. Only the
// cardholder and, sealed in the PI, the gateway ever see these.
type Wallet struct {
	Dir   string
	Card  CardRecord
	Creds map[protocol.Suite]*agent.Credentials
	Trust *agent.TrustStore
}

// CardRecord is the content of card.json.
type CardRecord struct {
	PAN     string                  `json:"pan"`
	Expiry  string                  `json:"expiry"` // YYYYMM
	Brand   string                  `json:"brand"`
	Secrets map[string]SuiteSecrets `json:"secrets"` // by suite name
}

// SuiteSecrets are the card secrets of one registration.
type SuiteSecrets struct {
	CardSecret string `json:"cardSecret"` // hex
	PANSecret  string `json:"panSecret"`  // hex
}

// RegisterParams are what a cardholder registration needs beyond the
// agent.Registration fields it fills itself.
type RegisterParams struct {
	agent.Registration
	Keys keyfile.Store
}

// Register registers the cardholder for a card with the CA (the card's
// issuer confirms the PAN, expiry and activation code) and saves the issued
// credentials and the card record in dir.
func Register(ctx context.Context, dir string, p *RegisterParams) (*Wallet, error) {
	p.Role = protocol.RoleCardholder
	out, err := agent.Register(ctx, &p.Registration)
	if err != nil {
		return nil, err
	}
	if err := keyfile.MkdirAll(dir); err != nil {
		return nil, err
	}
	if err := agent.SaveCredentials(dir, p.Keys, out.Credentials, out.Keys); err != nil {
		return nil, err
	}
	rec := CardRecord{PAN: p.PAN.Digits(), Expiry: p.Expiry, Brand: p.Brand, Secrets: map[string]SuiteSecrets{}}
	if old, err := readCard(dir); err == nil && old.PAN == rec.PAN {
		rec.Secrets = old.Secrets
	}
	rec.Secrets[p.Suite.String()] = SuiteSecrets{CardSecret: hex.EncodeToString(out.CardSecret[:]), PANSecret: hex.EncodeToString(out.PANSecret[:])}
	if err := writeCard(dir, &rec); err != nil {
		return nil, err
	}
	return Open(dir, p.Keys, p.Now)
}

func readCard(dir string) (*CardRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileCard))
	if err != nil {
		return nil, err
	}
	var rec CardRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", fileCard, err)
	}
	return &rec, nil
}

func writeCard(dir string, rec *CardRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, fileCard+".new")
	os.Remove(tmp)
	if err := keyfile.WriteFile(tmp, append(b, '\n'), keyfile.PermKey); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, fileCard))
}

// Open opens the wallet in dir.
func Open(dir string, keys keyfile.Store, now func() time.Time) (*Wallet, error) {
	rec, err := readCard(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no wallet in %s: register first", dir)
		}
		return nil, err
	}
	w := &Wallet{Dir: dir, Card: *rec, Creds: map[protocol.Suite]*agent.Credentials{}}
	roots := map[protocol.Suite][][]byte{}
	for name := range rec.Secrets {
		s, err := protocol.ParseSuite(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fileCard, err)
		}
		c, err := agent.LoadCredentials(dir, keys, s)
		if err != nil {
			return nil, err
		}
		w.Creds[s], roots[s] = c, c.Roots
	}
	if len(w.Creds) == 0 {
		return nil, fmt.Errorf("no credentials in %s: register first", dir)
	}
	if w.Trust, err = agent.NewTrustStore(roots, now); err != nil {
		return nil, err
	}
	return w, nil
}

// Suites returns the suites the wallet holds credentials of, pq first.
func (w *Wallet) Suites() []protocol.Suite { return w.Trust.Suites() }

// card returns the card record for suite s as the protocol uses it.
func (w *Wallet) card(s protocol.Suite) (protocol.Card, error) {
	pan, err := protocol.NewPAN(w.Card.PAN)
	if err != nil {
		return protocol.Card{}, fmt.Errorf("%s: %w", fileCard, err)
	}
	c := protocol.Card{PAN: pan, CardExpiry: w.Card.Expiry}
	sec := w.Card.Secrets[s.String()]
	if w.Creds[s].Sig == nil {
		return c, nil // no signature certificate: both secrets are zero
	}
	for _, x := range []struct {
		hex string
		out *protocol.Secret
	}{{sec.CardSecret, &c.CardSecret}, {sec.PANSecret, &c.PANSecret}} {
		b, err := hex.DecodeString(x.hex)
		if err != nil || len(b) != len(x.out) {
			return c, fmt.Errorf("%s: a %s secret is not %d hex-encoded bytes", fileCard, s, len(x.out))
		}
		copy(x.out[:], b)
	}
	return c, nil
}
