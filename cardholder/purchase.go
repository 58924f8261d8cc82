package cardholder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// Shopper buys from merchants with a wallet.
type Shopper struct {
	Wallet *Wallet
	// Suite is the suite the cardholder offers (0: every suite the wallet
	// holds, pq first); it presents that suite's TLS certificate.
	Suite protocol.Suite
	// KeyLog receives the TLS secrets (SSLKEYLOGFILE); nil: none.
	KeyLog io.Writer
	// Wire records the messages exchanged with merchants; nil: none.
	Wire *agent.WireLog
	// Unsigned pays without the cardholder certificate: the PReq carries
	// no dual signature and the PI no PANSecret, as for a cardholder that
	// has no certificate. Merchants may refuse it (CodeCertRequired).
	Unsigned bool
	// Rand and Now can be fixed for reproducible runs.
	Rand io.Reader
	Now  func() time.Time

	client *http.Client
}

// Receipt is the outcome of a purchase the merchant answered with a PRes.
type Receipt struct {
	Agreed  merchant.Agreed
	Suite   protocol.Suite
	Status  protocol.PurchStatus
	AuthAmt *protocol.Amount       // approved
	Reason  protocol.DeclineReason // declined
	// Messages are the purchase messages as sent and received (DER
	// MessageWrappers): PInitReq, PInitRes, PReq, PRes.
	Messages [][]byte
}

func (s *Shopper) suites() []protocol.Suite {
	if s.Suite != 0 {
		return []protocol.Suite{s.Suite}
	}
	return s.Wallet.Suites()
}

func (s *Shopper) http() (*http.Client, error) {
	if s.client != nil {
		return s.client, nil
	}
	c := s.Wallet.Creds[s.suites()[0]]
	if c == nil {
		return nil, fmt.Errorf("the wallet has no %s credentials", s.suites()[0])
	}
	s.client = &http.Client{Timeout: 60 * time.Second, Transport: s.Wire.Transport(&http.Transport{
		TLSClientConfig:   mtls.Client(&c.TLS, s.Wallet.Trust.All, s.KeyLog, protocol.CertMerchantTLS),
		ForceAttemptHTTP2: true,
	})}
	return s.client, nil
}

// Close closes idle connections.
func (s *Shopper) Close() {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
}

// Catalogue fetches the merchant's catalogue.
func (s *Shopper) Catalogue(ctx context.Context, merchantURL string) (*merchant.Catalogue, error) {
	var c merchant.Catalogue
	return &c, s.json(ctx, http.MethodGet, merchantURL+"/catalogue", nil, http.StatusOK, &c)
}

// Status fetches the merchant's status of an order the cardholder placed.
func (s *Shopper) Status(ctx context.Context, merchantURL, order string) (*merchant.Status, error) {
	var st merchant.Status
	return &st, s.json(ctx, http.MethodGet, merchantURL+"/orders/"+order, nil, http.StatusOK, &st)
}

func (s *Shopper) json(ctx context.Context, method, url string, body any, want int, out any) error {
	c, err := s.http()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// Buy agrees the order with the merchant and pays for it: PInitReq,
// PInitRes (checked), PReq (dual-signed when the wallet has a signature
// certificate; the PI sealed to the gateway the merchant names), PRes
// (checked). A merchant's refusal is returned as an *agent.RemoteError
// with its code. While the merchant answers CodeUnavailable (its gateway
// does not answer), the same PReq is sent again a few times.
func (s *Shopper) Buy(ctx context.Context, merchantURL string, o merchant.OrderRequest) (*Receipt, error) {
	rnd := agent.LockedRand(s.Rand)
	now := agent.Clock(s.Now)
	var agreed merchant.Agreed
	if err := s.json(ctx, http.MethodPost, merchantURL+"/orders", o, http.StatusCreated, &agreed); err != nil {
		return nil, err
	}
	c, err := s.http()
	if err != nil {
		return nil, err
	}
	rec := &Receipt{Agreed: agreed}
	url := merchantURL + "/orders/" + agreed.Order + "/set"
	send := func(der []byte) (*protocol.Wrapper, error) {
		rec.Messages = append(rec.Messages, der)
		w, in, err := agent.PostDER(ctx, c, url, der)
		if in != nil {
			rec.Messages = append(rec.Messages, in)
		}
		return w, err
	}

	brand, bin := s.Wallet.Card.Brand, s.Wallet.Card.PAN[:6]
	lidC := make([]byte, 8)
	if _, err := io.ReadFull(rnd, lidC); err != nil {
		return nil, err
	}
	lidC = fmt.Appendf(nil, "C-%x", lidC)
	pinitReq, err := protocol.NewPInitReq(rnd, lidC, "en", brand, bin, s.suites(), nil)
	if err != nil {
		return nil, err
	}
	w, err := send(protocol.NewWrapper(pinitReq, now().UTC().Truncate(time.Second), nil, &pinitReq.RRPID).Marshal())
	if err != nil {
		return rec, err
	}
	pinitRes, err := protocol.Expect[*protocol.PInitRes](w)
	if err != nil {
		return rec, err
	}
	su := pinitRes.Data.Suite
	trust := s.Wallet.Trust.Get(su)
	if trust == nil {
		return rec, &protocol.CheckError{Code: protocol.CodeDowngrade, Detail: "the merchant chose a suite the cardholder did not offer"}
	}
	terms, err := protocol.VerifyPInitRes(trust, pinitReq, pinitRes, nil)
	if err != nil {
		return rec, err
	}
	rec.Suite = su
	card, err := s.Wallet.card(su)
	if err != nil {
		return rec, err
	}
	key := s.Wallet.Creds[su].Sig
	if s.Unsigned {
		key, card.CardSecret, card.PANSecret = nil, protocol.Secret{}, protocol.Secret{}
	}
	p := &protocol.PReqParams{Terms: terms, ChallC: pinitReq.ChallC, BrandID: brand, BIN: bin, OD: []byte(agreed.Description),
		PurchAmt: protocol.Amount{Currency: uint16(agreed.Currency), Value: agreed.Amount}, Card: card, Key: key, Rand: rnd}
	for _, b := range [][]byte{p.RRPID[:], p.ODSalt[:], p.EXNonce[:]} {
		if _, err := io.ReadFull(rnd, b); err != nil {
			return rec, err
		}
	}
	preq, err := protocol.NewPReq(p)
	if err != nil {
		return rec, err
	}
	preqDER := protocol.NewWrapper(preq.PReq, now().UTC().Truncate(time.Second), &preq.PReq.OIData.TransIDs, &p.RRPID).Marshal()
	for attempt, wait := 1, 200*time.Millisecond; ; attempt, wait = attempt+1, wait*2 {
		w, err = send(preqDER)
		if agent.Code(err) != protocol.CodeUnavailable || attempt == 4 {
			break
		}
		select {
		case <-ctx.Done():
			return rec, ctx.Err()
		case <-time.After(wait):
		}
	}
	if err != nil {
		return rec, err
	}
	pres, err := protocol.Expect[*protocol.PRes](w)
	if err != nil {
		return rec, err
	}
	d, err := protocol.VerifyPRes(trust, terms, &preq.PReq.OIData, pres, nil)
	if err != nil {
		return rec, err
	}
	rec.Status, rec.AuthAmt, rec.Reason = d.Status, d.AuthAmt, d.Reason
	return rec, nil
}

// ErrDeclined is matched (errors.Is) by a Receipt's error when the issuer
// declined.
var ErrDeclined = errors.New("declined by the card issuer")

// Err returns nil for an approved purchase, and an error wrapping
// ErrDeclined that names the reason for a declined one.
func (r *Receipt) Err() error {
	switch r.Status {
	case protocol.PurchApproved:
		return nil
	case protocol.PurchDeclined:
		return fmt.Errorf("%w: %s", ErrDeclined, r.Reason)
	}
	return fmt.Errorf("purchase status %d", r.Status)
}
