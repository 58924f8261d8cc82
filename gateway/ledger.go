package gateway

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

// The gateway's ledger (DIR/gateway.db, SQLite): what it authorized and
// captured, and the answer it gave to every request, so that a retried or
// replayed request gets the recorded answer and changes nothing. It holds
// no card number and no order description (the gateway never receives the
// latter).
const schema = `
CREATE TABLE IF NOT EXISTS answers (
	hash     BLOB PRIMARY KEY,  -- SHA-256 of the request's DER MessageWrapper
	kind     TEXT NOT NULL,     -- AuthReq, CapReq
	response BLOB NOT NULL,     -- the DER MessageWrapper answered
	at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS authorizations (
	xid       BLOB PRIMARY KEY,
	merchant  TEXT NOT NULL,
	request   BLOB NOT NULL,    -- hash of the AuthReq
	rrn       TEXT NOT NULL,    -- the bank's retrieval reference number
	state     TEXT NOT NULL,    -- pending (asked the bank), approved, declined
	currency  INTEGER NOT NULL,
	amount    INTEGER NOT NULL, -- asked, then approved
	auth_code TEXT NOT NULL DEFAULT '',
	reason    INTEGER NOT NULL DEFAULT 0,
	created   TEXT NOT NULL,
	decided   TEXT
);
CREATE TABLE IF NOT EXISTS captures (
	xid      BLOB PRIMARY KEY REFERENCES authorizations(xid),
	merchant TEXT NOT NULL,
	batch    INTEGER NOT NULL,
	request  BLOB NOT NULL,     -- hash of the CapReq
	currency INTEGER NOT NULL,
	amount   INTEGER NOT NULL,
	at       TEXT NOT NULL
);
`

// Authorization states.
const (
	statePending  = "pending"
	stateApproved = "approved"
	stateDeclined = "declined"
)

type ledger struct {
	db  *sql.DB
	now func() time.Time
}

func openLedger(path string, now func() time.Time) (*ledger, error) {
	db, err := agent.OpenDB(path, schema)
	if err != nil {
		return nil, err
	}
	return &ledger{db: db, now: now}, nil
}

func (l *ledger) close() error { return l.db.Close() }

func (l *ledger) stamp() string { return l.now().UTC().Format(time.RFC3339Nano) }

// answer returns the recorded answer to the request of kind (AuthReq,
// CapReq) with hash h: the same bytes at another endpoint are not that
// request.
func (l *ledger) answer(ctx context.Context, kind string, h []byte) ([]byte, bool, error) {
	var resp []byte
	err := l.db.QueryRowContext(ctx, `SELECT response FROM answers WHERE hash = ? AND kind = ?`, h, kind).Scan(&resp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return resp, err == nil, err
}

// authRecord is one row of authorizations.
type authRecord struct {
	XID      protocol.XID
	Merchant string
	Request  []byte
	RRN      string
	State    string
	Amount   protocol.Amount
	AuthCode string
}

// beginAuth records that the gateway is about to ask the bank to authorize
// xid for the request with hash h. A row for xid from another request is
// refused (CodeReplay); one from the same request (a retry after a crash
// or a bank failure) is reused, so the bank is asked again with the same
// RRN, which its duplicate detection answers without a second hold.
func (l *ledger) beginAuth(ctx context.Context, r *authRecord) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var req []byte
	var state string
	err = tx.QueryRowContext(ctx, `SELECT request, state FROM authorizations WHERE xid = ?`, r.XID[:]).Scan(&req, &state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO authorizations (xid, merchant, request, rrn, state, currency, amount, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.XID[:], r.Merchant, r.Request, r.RRN, statePending, r.Amount.Currency, r.Amount.Value, l.stamp()); err != nil {
			return err
		}
	case err != nil:
		return err
	case string(req) != string(r.Request):
		return &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this XID was already authorized by another AuthReq"}
	}
	return tx.Commit()
}

// finishAuth records the bank's decision and the answer, in one
// transaction, and returns the answer in force (an earlier one if a
// concurrent retry recorded it first).
func (l *ledger) finishAuth(ctx context.Context, xid protocol.XID, h []byte, dec *protocol.AuthDecision, resp []byte) ([]byte, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if prev, ok, err := answerTx(ctx, tx, "AuthReq", h); err != nil || ok {
		return prev, err
	}
	state, amount := stateDeclined, int64(0)
	if dec.Result == protocol.AuthApproved {
		state, amount = stateApproved, dec.AuthAmt.Value
	}
	if _, err := tx.ExecContext(ctx, `UPDATE authorizations SET state = ?, amount = CASE WHEN ? = 'approved' THEN ? ELSE amount END,
		auth_code = ?, reason = ?, decided = ? WHERE xid = ?`, state, state, amount, dec.AuthCode, int(dec.Reason), l.stamp(), xid[:]); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO answers (hash, kind, response, at) VALUES (?, 'AuthReq', ?, ?)`, h, resp, l.stamp()); err != nil {
		return nil, err
	}
	return resp, tx.Commit()
}

func answerTx(ctx context.Context, tx *sql.Tx, kind string, h []byte) ([]byte, bool, error) {
	var resp []byte
	err := tx.QueryRowContext(ctx, `SELECT response FROM answers WHERE hash = ? AND kind = ?`, h, kind).Scan(&resp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return resp, err == nil, err
}

// authorization returns the record of xid, nil if there is none.
func (l *ledger) authorization(ctx context.Context, xid protocol.XID) (*authRecord, bool, error) {
	r := &authRecord{XID: xid}
	var captured sql.NullString
	err := l.db.QueryRowContext(ctx, `SELECT a.merchant, a.request, a.rrn, a.state, a.currency, a.amount, a.auth_code, c.at
		FROM authorizations a LEFT JOIN captures c ON c.xid = a.xid WHERE a.xid = ?`, xid[:]).
		Scan(&r.Merchant, &r.Request, &r.RRN, &r.State, &r.Amount.Currency, &r.Amount.Value, &r.AuthCode, &captured)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return r, captured.Valid, nil
}

// capture is one capture to record.
type capture struct {
	XID    protocol.XID
	Amount protocol.Amount
}

// recordCaptures records the captures of a CapReq and its answer in one
// transaction, and returns the answer in force.
func (l *ledger) recordCaptures(ctx context.Context, merchant string, batch int64, h []byte, caps []capture, resp []byte) ([]byte, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if prev, ok, err := answerTx(ctx, tx, "CapReq", h); err != nil || ok {
		return prev, err
	}
	for _, c := range caps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO captures (xid, merchant, batch, request, currency, amount, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.XID[:], merchant, batch, h, c.Amount.Currency, c.Amount.Value, l.stamp()); err != nil {
			return nil, fmt.Errorf("recording the capture: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO answers (hash, kind, response, at) VALUES (?, 'CapReq', ?, ?)`, h, resp, l.stamp()); err != nil {
		return nil, err
	}
	return resp, tx.Commit()
}
