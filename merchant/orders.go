package merchant

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

// The merchant's order store (DIR/merchant.db, SQLite). It holds the order
// descriptions and what the merchant sent and received; never card data,
// which the merchant never receives (the PI reaches it sealed to the
// gateway and leaves it unopened).
const schema = `
CREATE TABLE IF NOT EXISTS orders (
	id          TEXT PRIMARY KEY,
	description TEXT NOT NULL,
	currency    INTEGER NOT NULL,
	amount      INTEGER NOT NULL,
	buyer       BLOB NOT NULL,       -- thumbprint of the buyer's TLS certificate
	state       TEXT NOT NULL,       -- see the state constants
	suite       INTEGER NOT NULL DEFAULT 0,
	xid         BLOB UNIQUE,
	pinitreq    BLOB,                -- hash of the PInitReq answered
	pinitres    BLOB,                -- the PInitRes sent (DER MessageWrapper)
	preq        BLOB,                -- hash of the PReq being answered
	authreq     BLOB,                -- the AuthReq sent (DER MessageWrapper), resent as is on a retry
	authreq_data BLOB,               -- its AuthReqData (DER), to check AuthRes
	oidata      BLOB,                -- the PReq's OIData (DER), to answer it with PRes
	authres_data BLOB,               -- the verified AuthResData (DER): the CapToken for capture
	pres        BLOB,                -- the answer to the PReq (DER MessageWrapper: PRes or Error)
	code        INTEGER NOT NULL DEFAULT 0, -- why the order failed, a protocol code
	reason      INTEGER NOT NULL DEFAULT 0, -- the issuer's decline reason
	auth_amount INTEGER NOT NULL DEFAULT 0,
	batch       INTEGER REFERENCES batches(id),
	captured    INTEGER NOT NULL DEFAULT 0,
	created     TEXT NOT NULL,
	updated     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_capture ON orders(state, suite);
CREATE TABLE IF NOT EXISTS batches (
	id       INTEGER PRIMARY KEY,
	suite    INTEGER NOT NULL,
	request  BLOB NOT NULL,          -- the CapReq sent (DER MessageWrapper), resent as is on a retry
	sent     BLOB NOT NULL,          -- its CapReqData (DER), to check CapRes
	state    TEXT NOT NULL,          -- sent, done
	created  TEXT NOT NULL,
	updated  TEXT NOT NULL
);
`

// Order states.
const (
	stateAgreed      = "agreed"      // agreed; no PInitReq yet
	stateInitiated   = "initiated"   // PInitRes sent
	stateAuthorizing = "authorizing" // AuthReq recorded and sent, no AuthRes yet
	stateAuthorized  = "authorized"  // approved; to capture
	stateDeclined    = "declined"    // the issuer declined
	stateRefused     = "refused"     // a check failed (the merchant's or the gateway's)
	stateCapturing   = "capturing"   // in a batch sent
	stateCaptured    = "captured"
	stateNotCaptured = "capture-refused"
)

type store struct {
	db  *sql.DB
	now func() time.Time
}

func openStore(path string, now func() time.Time) (*store, error) {
	db, err := agent.OpenDB(path, schema)
	if err != nil {
		return nil, err
	}
	return &store{db: db, now: now}, nil
}

func (st *store) close() error { return st.db.Close() }

func (st *store) stamp() string { return st.now().UTC().Format(time.RFC3339Nano) }

// order is one row of orders.
type order struct {
	ID          string
	Description string
	Amount      protocol.Amount
	Buyer       []byte
	State       string
	Suite       protocol.Suite
	XID         []byte
	PInitReq    []byte
	PInitRes    []byte
	PReq        []byte
	AuthReq     []byte
	AuthReqData []byte
	OIData      []byte
	AuthResData []byte
	PRes        []byte
	Code        int
	Reason      int
	AuthAmount  int64
	Batch       sql.NullInt64
	Captured    int64
}

const orderColumns = `id, description, currency, amount, buyer, state, suite, xid, pinitreq, pinitres, preq, authreq,
	authreq_data, oidata, authres_data, pres, code, reason, auth_amount, batch, captured`

func scanOrder(row interface{ Scan(...any) error }) (*order, error) {
	o := &order{}
	err := row.Scan(&o.ID, &o.Description, &o.Amount.Currency, &o.Amount.Value, &o.Buyer, &o.State, &o.Suite, &o.XID,
		&o.PInitReq, &o.PInitRes, &o.PReq, &o.AuthReq, &o.AuthReqData, &o.OIData, &o.AuthResData, &o.PRes, &o.Code, &o.Reason,
		&o.AuthAmount, &o.Batch, &o.Captured)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return o, err
}

// errNoOrder is the error of an order that does not exist or is not the
// caller's.
var errNoOrder = &protocol.CheckError{Code: protocol.CodeUnknownTrans, Detail: "no such order"}

func (st *store) insert(ctx context.Context, o *order) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO orders (id, description, currency, amount, buyer, state, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, o.ID, o.Description, o.Amount.Currency, o.Amount.Value, o.Buyer, stateAgreed, st.stamp(), st.stamp())
	return err
}

func (st *store) get(ctx context.Context, id string) (*order, error) {
	return scanOrder(st.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id))
}

// update sets columns of an order if it is still in state from; it
// reports whether it was.
func (st *store) update(ctx context.Context, id, from string, set map[string]any) (bool, error) {
	q := `UPDATE orders SET updated = ?`
	args := []any{st.stamp()}
	for _, col := range []string{"state", "suite", "xid", "pinitreq", "pinitres", "preq", "authreq", "authreq_data", "oidata",
		"authres_data", "pres", "code", "reason", "auth_amount"} {
		if v, ok := set[col]; ok {
			q += `, ` + col + ` = ?`
			args = append(args, v)
		}
	}
	q += ` WHERE id = ? AND state = ?`
	args = append(args, id, from)
	res, err := st.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// toCapture returns up to n authorized orders of suite s not yet in a
// batch, oldest first.
func (st *store) toCapture(ctx context.Context, s protocol.Suite, n int) ([]*order, error) {
	return st.orders(ctx, `WHERE state = ? AND suite = ? ORDER BY updated, id LIMIT ?`, stateAuthorized, s, n)
}

// inState returns the orders in state, oldest first.
func (st *store) inState(ctx context.Context, state string) ([]*order, error) {
	return st.orders(ctx, `WHERE state = ? ORDER BY updated, id`, state)
}

func (st *store) orders(ctx context.Context, where string, args ...any) ([]*order, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// batch is one row of batches.
type batch struct {
	ID      int64
	Suite   protocol.Suite
	Request []byte
	Sent    []byte
}

// newBatch records a capture batch and moves its orders to capturing, in
// one transaction, before the batch is sent.
func (st *store) newBatch(ctx context.Context, b *batch, orders []string) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO batches (id, suite, request, sent, state, created, updated) VALUES (?, ?, ?, ?, 'sent', ?, ?)`,
		b.ID, b.Suite, b.Request, b.Sent, st.stamp(), st.stamp()); err != nil {
		return err
	}
	for _, id := range orders {
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET state = ?, batch = ?, updated = ? WHERE id = ? AND state = ?`,
			stateCapturing, b.ID, st.stamp(), id, stateAuthorized); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// nextBatchID returns the id of the next batch.
func (st *store) nextBatchID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	err := st.db.QueryRowContext(ctx, `SELECT MAX(id) FROM batches`).Scan(&id)
	return id.Int64 + 1, err
}

// openBatches returns the batches sent without a recorded answer.
func (st *store) openBatches(ctx context.Context) ([]*batch, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT id, suite, request, sent FROM batches WHERE state = 'sent' ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*batch
	for rows.Next() {
		b := &batch{}
		if err := rows.Scan(&b.ID, &b.Suite, &b.Request, &b.Sent); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// finishBatch records the CapRes results of a batch, in one transaction.
func (st *store) finishBatch(ctx context.Context, id int64, items []protocol.CapResItem) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, it := range items {
		state := stateCaptured
		if it.Code != 0 {
			state = stateNotCaptured
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET state = ?, captured = ?, code = ?, updated = ? WHERE xid = ? AND batch = ?`,
			state, it.CapAmt.Value, int(it.Code), st.stamp(), it.XID[:], id); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = 'done', updated = ? WHERE id = ?`, st.stamp(), id); err != nil {
		return err
	}
	return tx.Commit()
}
