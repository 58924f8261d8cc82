package bank

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/setpay/setpay/protocol"
)

// Account statuses.
const (
	StatusActive  = "active"  // the default
	StatusBlocked = "blocked" // declined with 62 (restricted card)
	StatusFraud   = "fraud"   // declined with 59 (suspected fraud)
	// StatusReview is the CA's registration status for an account whose
	// registration waits on the issuer; for payments it is active.
	StatusReview = "review"
)

// Account is a card account of the issuer. Its JSON form is the one of the
// accounts file the CA's registration issuer reads (ca.Account), with the
// credit fields added; fields the bank does not know (activationCode) are
// ignored.
type Account struct {
	PAN                 string `json:"pan"`
	Expiry              string `json:"expiry"`                        // YYYYMM; valid through the end of that month
	Currency            int    `json:"currency,omitempty"`            // ISO 4217 numeric; 0 means 978 (EUR)
	CreditLimit         int64  `json:"creditLimit"`                   // minor units
	PerTransactionLimit int64  `json:"perTransactionLimit,omitempty"` // minor units; 0: none
	Status              string `json:"status,omitempty"`              // a Status constant; "" means active
}

// check validates a and fills its defaults. Errors never show the PAN.
func (a *Account) check() error {
	if _, err := protocol.NewPAN(a.PAN); err != nil {
		return err
	}
	if (fieldDef{chars: numeric, min: 6, max: 6}).check(0, a.Expiry) != nil || a.Expiry[4:] < "01" || a.Expiry[4:] > "12" {
		return errors.New("expiry is not YYYYMM")
	}
	if a.Currency == 0 {
		a.Currency = 978
	}
	if a.Currency < 1 || a.Currency > 999 {
		return errors.New("currency is not an ISO 4217 numeric code")
	}
	if a.CreditLimit < 0 || a.PerTransactionLimit < 0 {
		return errors.New("limits must not be negative")
	}
	if a.Status == "" {
		a.Status = StatusActive
	}
	return checkStatus(a.Status)
}

func checkStatus(s string) error {
	switch s {
	case StatusActive, StatusBlocked, StatusFraud, StatusReview:
		return nil
	}
	return fmt.Errorf("status %q is not active, blocked, fraud or review", s)
}

// PutAccounts adds accounts, or updates those it already has (matched by
// PAN): expiry, currency, limits and status are replaced, the holds and
// postings kept. All are checked before any is stored; errors name the
// account by its position (from 1), never by its PAN.
func (b *Bank) PutAccounts(ctx context.Context, accounts ...Account) error {
	for i := range accounts {
		if err := accounts[i].check(); err != nil {
			return fmt.Errorf("bank: account %d: %w", i+1, err)
		}
	}
	return b.inTx(ctx, "put accounts", func(tx *sql.Tx) error {
		for _, a := range accounts {
			_, err := tx.ExecContext(ctx, `INSERT INTO accounts (pan, expiry, currency, credit_limit, per_transaction_limit, status)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (pan) DO UPDATE SET expiry = excluded.expiry, currency = excluded.currency,
					credit_limit = excluded.credit_limit, per_transaction_limit = excluded.per_transaction_limit,
					status = excluded.status`,
				a.PAN, a.Expiry, a.Currency, a.CreditLimit, a.PerTransactionLimit, a.Status)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// LoadAccounts reads a JSON array of [Account] from a file and puts them
// with PutAccounts.
func (b *Bank) LoadAccounts(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bank: %w", err)
	}
	var accounts []Account
	if err := json.Unmarshal(data, &accounts); err != nil {
		// json errors name types and offsets, not values.
		return fmt.Errorf("bank: %s: %w", path, err)
	}
	return b.PutAccounts(ctx, accounts...)
}

// ErrUnknownAccount is returned by [Bank.Account] and [Bank.SetStatus] for a
// PAN the issuer has no account for.
var ErrUnknownAccount = errors.New("bank: no such account")

// SetStatus changes the status of an account (a Status constant).
func (b *Bank) SetStatus(ctx context.Context, pan protocol.PAN, status string) error {
	if err := checkStatus(status); err != nil {
		return fmt.Errorf("bank: %w", err)
	}
	var n int64
	err := b.inTx(ctx, "set status", func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE accounts SET status = ? WHERE pan = ?`, status, pan.Digits())
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		return ErrUnknownAccount
	}
	return err
}

// Balance is an account's standing.
type Balance struct {
	Account       // the account's data (PAN empty: the caller has it)
	Held    int64 // open holds
	Posted  int64 // captured amounts
}

// Available is the credit left: the limit less open holds and postings.
func (b Balance) Available() int64 { return b.CreditLimit - b.Held - b.Posted }

// Account returns the standing of the account of pan.
func (b *Bank) Account(ctx context.Context, pan protocol.PAN) (Balance, error) {
	var bal Balance
	err := b.db.QueryRowContext(ctx, `SELECT expiry, currency, credit_limit, per_transaction_limit, status
		FROM accounts WHERE pan = ?`, pan.Digits()).
		Scan(&bal.Expiry, &bal.Currency, &bal.CreditLimit, &bal.PerTransactionLimit, &bal.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{}, ErrUnknownAccount
	}
	if err != nil {
		return Balance{}, fmt.Errorf("bank: account: %w", err)
	}
	if bal.Held, bal.Posted, err = balance(ctx, b.db, pan.Digits()); err != nil {
		return Balance{}, fmt.Errorf("bank: account: %w", err)
	}
	return bal, nil
}

// Hold is an approved authorization neither captured nor reversed.
type Hold struct {
	MerchantID string
	RRN        string
	AuthID     string
	Amount     int64 // minor units
	Currency   int
	At         time.Time // when the issuer approved it (the bank's clock)
}

// Holds returns every open hold, ordered by merchant id and RRN.
func (b *Bank) Holds(ctx context.Context) ([]Hold, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT merchant, rrn, auth_id, amount, currency, at FROM authorizations
		WHERE state = 'open' ORDER BY merchant, rrn`)
	if err != nil {
		return nil, fmt.Errorf("bank: holds: %w", err)
	}
	defer rows.Close()
	var hs []Hold
	for rows.Next() {
		var h Hold
		var at int64
		if err := rows.Scan(&h.MerchantID, &h.RRN, &h.AuthID, &h.Amount, &h.Currency, &at); err != nil {
			return nil, fmt.Errorf("bank: holds: %w", err)
		}
		h.At = time.Unix(0, at).UTC()
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bank: holds: %w", err)
	}
	return hs, nil
}
