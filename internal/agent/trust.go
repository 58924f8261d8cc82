package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// TrustStore holds a party's Trust for each suite it runs, and keeps their
// revocation state current from the CA server (its BCI and the CRLs the
// BCI lists).
type TrustStore struct {
	mu     sync.RWMutex
	trusts map[protocol.Suite]*protocol.Trust
}

// NewTrustStore returns a store anchored at roots (DER) per suite, with
// the clock now (nil: time.Now).
func NewTrustStore(roots map[protocol.Suite][][]byte, now func() time.Time) (*TrustStore, error) {
	ts := &TrustStore{trusts: map[protocol.Suite]*protocol.Trust{}}
	for s, r := range roots {
		t, err := protocol.NewTrust(r...)
		if err != nil {
			return nil, fmt.Errorf("%s roots: %w", s, err)
		}
		t.Now = now
		ts.trusts[s] = t
	}
	return ts, nil
}

// Get returns the Trust of suite s, nil if the party does not run s.
func (ts *TrustStore) Get(s protocol.Suite) *protocol.Trust {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.trusts[s]
}

// All returns every suite's Trust, pq first (an mtls.Trusts).
func (ts *TrustStore) All() []*protocol.Trust {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	var out []*protocol.Trust
	for _, s := range protocol.Suites {
		if t := ts.trusts[s]; t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Suites returns the suites of the store, pq first.
func (ts *TrustStore) Suites() []protocol.Suite {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	var out []protocol.Suite
	for _, s := range protocol.Suites {
		if ts.trusts[s] != nil {
			out = append(out, s)
		}
	}
	return out
}

// crlNames are the CRL files of the CA server, one per CA of a hierarchy.
var crlNames = []string{"root", "brand", "cardholder-ca", "merchant-ca", "gateway-ca"}

// Refresh fetches each suite's BCI, CRLs and CA certificates from the CA
// server at caURL and installs them (protocol.Trust.UpdateRevocation, which
// verifies them and refuses a rollback).
func (ts *TrustStore) Refresh(ctx context.Context, c *http.Client, caURL string) error {
	for _, s := range ts.Suites() {
		base := fmt.Sprintf("%s/ca/%s/", caURL, s)
		bciDER, err := get(ctx, c, base+"bci")
		if err != nil {
			return err
		}
		bci, err := protocol.Decode[protocol.BCI](bciDER)
		if err != nil {
			return fmt.Errorf("%sbci: %w", base, err)
		}
		var crls [][]byte
		for _, n := range crlNames {
			crl, err := get(ctx, c, base+n+".crl")
			if err != nil {
				return err
			}
			crls = append(crls, crl)
		}
		chainPEM, err := get(ctx, c, base+"chain.pem")
		if err != nil {
			return err
		}
		certs, err := keyfile.DecodeCerts(chainPEM)
		if err != nil {
			return fmt.Errorf("%schain.pem: %w", base, err)
		}
		if err := ts.Get(s).UpdateRevocation(bci, crls, certs); err != nil {
			return fmt.Errorf("%s revocation: %w", s, err)
		}
	}
	return nil
}

// RefreshEvery calls Refresh every interval until ctx is done, logging
// failures (the Trust keeps the state it had).
func (ts *TrustStore) RefreshEvery(ctx context.Context, interval time.Duration, c *http.Client, caURL string, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := ts.Refresh(ctx, c, caURL); err != nil && ctx.Err() == nil {
				log.Warn("revocation refresh failed", "err", err)
			}
		}
	}
}

func get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}
