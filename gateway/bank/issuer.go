package bank

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// This file is the issuer: authorizations (0100) and their reversals
// (0400).

// authorize answers a 0100: the recorded answer to a retry, else a decision
// that is recorded with the response and, if approved, the hold.
func (b *Bank) authorize(ctx context.Context, tx *sql.Tx, req *Message) ([]byte, error) {
	if resp, err := recorded(ctx, tx, "authorizations", req); resp != nil || err != nil {
		return resp, err
	}
	now := b.opts.Now()
	code, err := b.decide(ctx, tx, req, now)
	if err != nil {
		return nil, err
	}
	var authID string
	state := "declined"
	if code == CodeApproved {
		if authID, err = b.newAuthID(); err != nil {
			return nil, err
		}
		state = "open"
	}
	resp, err := respond(req, code, authID)
	if err != nil {
		return nil, err
	}
	f := req.Fields
	_, err = tx.ExecContext(ctx, `INSERT INTO authorizations
		(merchant, rrn, fingerprint, response, pan, code, auth_id, amount, currency, at, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f[FieldMerchantID], f[FieldRRN], fingerprint(req), resp, f[FieldPAN], code, authID,
		atoi(f[FieldAmount]), atoi(f[FieldCurrency]), now.UnixNano(), state)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// decide returns the issuer's response code for a new 0100, checking in
// this order: processing code, account known, status, expiry, currency,
// amount, per-transaction limit, velocity, available credit.
func (b *Bank) decide(ctx context.Context, tx *sql.Tx, req *Message, now time.Time) (string, error) {
	f := req.Fields
	if f[FieldProcessingCode] != processingPurchase {
		return CodeInvalidTransaction, nil
	}
	pan := f[FieldPAN]
	var a Account
	err := tx.QueryRowContext(ctx, `SELECT expiry, currency, credit_limit, per_transaction_limit, status
		FROM accounts WHERE pan = ?`, pan).Scan(&a.Expiry, &a.Currency, &a.CreditLimit, &a.PerTransactionLimit, &a.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return CodeInvalidCardNumber, nil
	}
	if err != nil {
		return "", err
	}
	switch a.Status {
	case StatusBlocked:
		return CodeRestrictedCard, nil
	case StatusFraud:
		return CodeSuspectedFraud, nil
	}
	if f[FieldExpiry] != a.Expiry[2:] || expired(a.Expiry, now) {
		return CodeExpiredCard, nil
	}
	if atoi(f[FieldCurrency]) != int64(a.Currency) {
		return CodeInvalidTransaction, nil
	}
	amount := atoi(f[FieldAmount])
	if amount <= 0 {
		return CodeInvalidAmount, nil
	}
	if a.PerTransactionLimit > 0 && amount > a.PerTransactionLimit {
		return CodeExceedsAmountLimit, nil
	}
	var recent int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM authorizations WHERE pan = ? AND code = ? AND at > ?`,
		pan, CodeApproved, now.Add(-b.opts.VelocityWindow).UnixNano()).Scan(&recent)
	if err != nil {
		return "", err
	}
	if recent >= b.opts.VelocityLimit {
		return CodeExceedsFrequencyLimit, nil
	}
	held, posted, err := balance(ctx, tx, pan)
	if err != nil {
		return "", err
	}
	if amount > a.CreditLimit-held-posted {
		return CodeInsufficientFunds, nil
	}
	return CodeApproved, nil
}

// expired reports whether a card with expiry YYYYMM has expired at now: it
// is valid through the last moment of its expiry month, UTC.
func expired(expiry string, now time.Time) bool {
	y, m := atoi(expiry[:4]), atoi(expiry[4:])
	end := time.Date(int(y), time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC)
	return !now.Before(end)
}

// balance returns an account's open holds and posted (captured) amounts.
func balance(ctx context.Context, q queryer, pan string) (held, posted int64, err error) {
	err = q.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN state = 'open' THEN amount ELSE 0 END), 0),
		COALESCE(SUM(captured), 0)
		FROM authorizations WHERE pan = ?`, pan).Scan(&held, &posted)
	return held, posted, err
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reverse answers a 0400: the recorded answer to a retry, else it releases
// the open hold of the authorization (merchant id, RRN) and records the
// answer. Answers other than "00" change nothing and are not recorded.
func (b *Bank) reverse(ctx context.Context, tx *sql.Tx, req *Message) ([]byte, error) {
	if resp, err := recorded(ctx, tx, "reversals", req); resp != nil || err != nil {
		return resp, err
	}
	h, code, err := findHold(ctx, tx, req)
	switch {
	case err != nil:
		return nil, err
	case code != "":
	case h.state != "open": // captured: too late to reverse
		code = CodeInvalidTransaction
	case atoi(req.Fields[FieldAmount]) != h.amount:
		code = CodeInvalidAmount
	}
	if code != "" {
		return respond(req, code, "")
	}
	f := req.Fields
	_, err = tx.ExecContext(ctx, `UPDATE authorizations SET state = 'reversed' WHERE merchant = ? AND rrn = ?`,
		f[FieldMerchantID], f[FieldRRN])
	if err != nil {
		return nil, err
	}
	resp, err := respond(req, CodeApproved, "")
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO reversals (merchant, rrn, fingerprint, response, at) VALUES (?, ?, ?, ?, ?)`,
		f[FieldMerchantID], f[FieldRRN], fingerprint(req), resp, b.opts.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// hold is an approved authorization as capture and reversal see it.
type hold struct {
	authID string
	amount int64
	state  string // open, captured or reversed
}

// findHold looks up the approved authorization a capture or reversal names.
// It returns a response code instead when the request cannot apply to it:
// "25" when there is none (or it was declined, or the authorization id
// differs), "12" for a wrong processing code or currency.
func findHold(ctx context.Context, tx *sql.Tx, req *Message) (hold, string, error) {
	f := req.Fields
	if f[FieldProcessingCode] != processingPurchase {
		return hold{}, CodeInvalidTransaction, nil
	}
	var h hold
	var currency int64
	err := tx.QueryRowContext(ctx, `SELECT auth_id, amount, currency, state FROM authorizations
		WHERE merchant = ? AND rrn = ? AND state != 'declined'`,
		f[FieldMerchantID], f[FieldRRN]).Scan(&h.authID, &h.amount, &currency, &h.state)
	if errors.Is(err, sql.ErrNoRows) {
		return hold{}, CodeUnableToLocateOriginal, nil
	}
	if err != nil {
		return hold{}, "", err
	}
	if id, ok := f[FieldAuthID]; ok && id != h.authID {
		return hold{}, CodeUnableToLocateOriginal, nil
	}
	if atoi(f[FieldCurrency]) != currency {
		return hold{}, CodeInvalidTransaction, nil
	}
	return h, "", nil
}
