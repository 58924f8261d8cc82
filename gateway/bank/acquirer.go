package bank

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// This file is the acquirer: captures (0220) and the record of what each
// merchant is paid.

// capture answers a 0220: the recorded answer to a retry, else it turns
// the open hold of the authorization (merchant id, RRN) into a posting of
// the captured amount (the rest of the hold is released), records the
// capture for the merchant and the answer. Answers other than "00" change
// nothing and are not recorded.
func (b *Bank) capture(ctx context.Context, tx *sql.Tx, req *Message) ([]byte, error) {
	if resp, err := recorded(ctx, tx, "captures", req); resp != nil || err != nil {
		return resp, err
	}
	f := req.Fields
	amount := atoi(f[FieldAmount])
	h, code, err := findHold(ctx, tx, req)
	switch {
	case err != nil:
		return nil, err
	case code != "":
	case h.state != "open": // reversed
		code = CodeInvalidTransaction
	case amount <= 0 || amount > h.amount:
		code = CodeInvalidAmount
	}
	if code != "" {
		return respond(req, code, "")
	}
	_, err = tx.ExecContext(ctx, `UPDATE authorizations SET state = 'captured', captured = ? WHERE merchant = ? AND rrn = ?`,
		amount, f[FieldMerchantID], f[FieldRRN])
	if err != nil {
		return nil, err
	}
	resp, err := respond(req, CodeApproved, "")
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO captures (merchant, rrn, fingerprint, response, auth_id, amount, currency, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		f[FieldMerchantID], f[FieldRRN], fingerprint(req), resp, h.authID, amount, atoi(f[FieldCurrency]), b.opts.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Capture is one capture the acquirer accepted: what it pays the merchant.
type Capture struct {
	MerchantID string
	RRN        string // the authorization's
	AuthID     string
	Amount     int64 // minor units
	Currency   int
	At         time.Time // when the acquirer accepted it (the bank's clock)
}

// Captures returns the captures accepted for a merchant, oldest first.
func (b *Bank) Captures(ctx context.Context, merchantID string) ([]Capture, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT rrn, auth_id, amount, currency, at FROM captures
		WHERE merchant = ? ORDER BY at, rrn`, merchantID)
	if err != nil {
		return nil, fmt.Errorf("bank: captures: %w", err)
	}
	defer rows.Close()
	var cs []Capture
	for rows.Next() {
		c := Capture{MerchantID: merchantID}
		var at int64
		if err := rows.Scan(&c.RRN, &c.AuthID, &c.Amount, &c.Currency, &at); err != nil {
			return nil, fmt.Errorf("bank: captures: %w", err)
		}
		c.At = time.Unix(0, at).UTC()
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bank: captures: %w", err)
	}
	return cs, nil
}

// CapturedTotal returns the sum of a merchant's captures in minor units (of
// whatever currencies; a merchant normally has one).
func (b *Bank) CapturedTotal(ctx context.Context, merchantID string) (int64, error) {
	var total int64
	err := b.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0) FROM captures WHERE merchant = ?`, merchantID).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("bank: captured total: %w", err)
	}
	return total, nil
}
