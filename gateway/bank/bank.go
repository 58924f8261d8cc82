package bank

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Network is the bank network as the gateway sees it: one request, one
// response, in the bank's own format (see [Message]).
type Network interface {
	// Exchange sends one request and returns the bank's response. An error
	// means no response came: the request may or may not have been
	// processed, and repeating it is safe (see the package documentation on
	// duplicates).
	Exchange(ctx context.Context, req []byte) ([]byte, error)
}

var _ Network = (*Bank)(nil)

// Options configure a [Bank]. The zero value is usable.
type Options struct {
	// Now is the bank's clock (default time.Now): card expiry, hold and
	// capture times, the velocity window.
	Now func() time.Time
	// Rand is the source of authorization ids (default crypto/rand.Reader).
	// A fixed reader makes runs reproduce.
	Rand io.Reader
	// VelocityLimit is how many authorizations the issuer approves per card
	// within VelocityWindow (default 10).
	VelocityLimit int
	// VelocityWindow is the span VelocityLimit counts over (default 1 h).
	VelocityWindow time.Duration
}

// Bank is the simulated bank network behind the gateway: an issuer keeping
// card accounts (credit limit, holds, postings) and an acquirer recording
// captures per merchant, in one SQLite database. It serves one request at a
// time; it is safe for concurrent use.
type Bank struct {
	db   *sql.DB
	opts Options
	mu   sync.Mutex // serializes Exchange (and so the reads of opts.Rand)
}

// schemaVersion is PRAGMA user_version of a database this package made.
const schemaVersion = 1

// schema holds the accounts, every answered authorization (its hold and, if
// captured, its posting), and the answered captures and reversals. Times are
// Unix nanoseconds.
const schema = `
CREATE TABLE accounts (
	pan                   TEXT PRIMARY KEY,
	expiry                TEXT NOT NULL,    -- YYYYMM
	currency              INTEGER NOT NULL,
	credit_limit          INTEGER NOT NULL,
	per_transaction_limit INTEGER NOT NULL, -- 0: none
	status                TEXT NOT NULL
) STRICT;
CREATE TABLE authorizations (
	merchant    TEXT NOT NULL,
	rrn         TEXT NOT NULL,
	fingerprint BLOB NOT NULL,    -- of the request, to tell a retry from a conflict
	response    BLOB NOT NULL,    -- the 0110 sent, returned again to a retry
	pan         TEXT NOT NULL,
	code        TEXT NOT NULL,
	auth_id     TEXT NOT NULL,    -- "" unless approved
	amount      INTEGER NOT NULL,
	currency    INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('declined', 'open', 'captured', 'reversed')),
	captured    INTEGER NOT NULL DEFAULT 0, -- posted amount once captured
	PRIMARY KEY (merchant, rrn)
) STRICT;
CREATE INDEX authorizations_by_pan ON authorizations (pan, at);
CREATE TABLE captures (
	merchant    TEXT NOT NULL,
	rrn         TEXT NOT NULL,
	fingerprint BLOB NOT NULL,
	response    BLOB NOT NULL,
	auth_id     TEXT NOT NULL,
	amount      INTEGER NOT NULL,
	currency    INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (merchant, rrn)
) STRICT;
CREATE TABLE reversals (
	merchant    TEXT NOT NULL,
	rrn         TEXT NOT NULL,
	fingerprint BLOB NOT NULL,
	response    BLOB NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (merchant, rrn)
) STRICT;
`

// Open opens the bank database at path, creating it if needed. The database
// runs in WAL mode with synchronous=FULL, so an answer the bank has sent
// survives a crash, and waits up to 5 s for a lock another process holds.
func Open(path string, opts Options) (*Bank, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || strings.HasPrefix(path, ":") {
		return nil, errors.New("bank: database path must be a plain file name (no '?', '#', 'file:' or ':memory:')")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.VelocityLimit <= 0 {
		opts.VelocityLimit = 10
	}
	if opts.VelocityWindow <= 0 {
		opts.VelocityWindow = time.Hour
	}
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("bank: open database: %w", err)
	}
	// One connection: requests are serialized anyway, and every statement
	// sees the same pragmas.
	db.SetMaxOpenConns(1)
	b := &Bank{db: db, opts: opts}
	if err := b.init(); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// init checks the journal mode and creates the schema of a new database.
func (b *Bank) init() error {
	ctx := context.Background()
	var mode string
	if err := b.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("bank: open database: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("bank: open database: journal mode is %q, want wal", mode)
	}
	return b.inTx(ctx, "open database", func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return err
		}
		switch v {
		case schemaVersion:
			return nil
		case 0:
		default:
			return fmt.Errorf("schema version %d, want %d", v, schemaVersion)
		}
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(schemaVersion))
		return err
	})
}

// Close closes the database.
func (b *Bank) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("bank: close database: %w", err)
	}
	return nil
}

// inTx runs f in one transaction and commits if f returns nil. Errors read
// "bank: op: ...".
func (b *Bank) inTx(ctx context.Context, op string, f func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("bank: %s: %w", op, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return fmt.Errorf("bank: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bank: %s: commit: %w", op, err)
	}
	return nil
}

// Exchange processes one request: it parses it, dispatches it by message
// type to the issuer (0100, 0400) or the acquirer (0220), and returns the
// response. The request's effects and its recorded response commit in one
// transaction, before the response is returned. A request that does not
// parse, or is not a request, gets an error (a *[FormatError] for the
// former) and changes nothing.
func (b *Bank) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	m, err := Parse(req)
	if err != nil {
		return nil, err
	}
	var handle func(context.Context, *sql.Tx, *Message) ([]byte, error)
	var op string
	switch m.MTI {
	case MTIAuthRequest:
		handle, op = b.authorize, "authorization"
	case MTICaptureAdvice:
		handle, op = b.capture, "capture"
	case MTIReversalRequest:
		handle, op = b.reverse, "reversal"
	default:
		return nil, fmt.Errorf("bank: %s is a response, not a request", m.MTI)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var resp []byte
	err = b.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		resp, err = handle(ctx, tx, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// respond builds the response to req: the request's fields but the card
// data (2, 14) and the terminal id (41), with the response code and, when
// authID is not "", the authorization id.
func respond(req *Message, code, authID string) ([]byte, error) {
	mti := map[string]string{
		MTIAuthRequest:     MTIAuthResponse,
		MTICaptureAdvice:   MTICaptureResponse,
		MTIReversalRequest: MTIReversalResponse,
	}[req.MTI]
	m := &Message{MTI: mti, Fields: map[int]string{FieldResponseCode: code}}
	for n, v := range req.Fields {
		switch n {
		case FieldPAN, FieldExpiry, FieldTerminalID:
		default:
			m.Fields[n] = v
		}
	}
	if authID != "" {
		m.Fields[FieldAuthID] = authID
	}
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", mti, err)
	}
	return b, nil
}

// fingerprint identifies what a request asks, apart from the fields that
// differ between a request and its retry (STAN, transmission time, terminal
// id). Values are length-prefixed, so distinct requests never collide short
// of SHA-256.
func fingerprint(m *Message) []byte {
	h := sha256.New()
	io.WriteString(h, m.MTI)
	for _, n := range sortedFields(m.Fields) {
		switch n {
		case FieldTransmissionTime, FieldSTAN, FieldTerminalID:
			continue
		}
		fmt.Fprintf(h, "|%d:%d:%s", n, len(m.Fields[n]), m.Fields[n])
	}
	return h.Sum(nil)
}

// recorded looks up the answer recorded for (merchant, RRN) in table. It
// returns the recorded response if req is a retry of the recorded request,
// a fresh "12" response (not recorded) if req asks something else under the
// same name, and nil if there is no record.
func recorded(ctx context.Context, tx *sql.Tx, table string, req *Message) ([]byte, error) {
	var fp, resp []byte
	err := tx.QueryRowContext(ctx, "SELECT fingerprint, response FROM "+table+" WHERE merchant = ? AND rrn = ?",
		req.Fields[FieldMerchantID], req.Fields[FieldRRN]).Scan(&fp, &resp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	case bytes.Equal(fp, fingerprint(req)):
		return resp, nil
	default:
		return respond(req, CodeInvalidTransaction, "")
	}
}

// authIDAlphabet is what authorization ids are made of.
const authIDAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// newAuthID draws six characters from opts.Rand, uniformly (bytes of 252
// and above are skipped).
func (b *Bank) newAuthID() (string, error) {
	var id [6]byte
	var buf [1]byte
	for i := 0; i < len(id); {
		if _, err := io.ReadFull(b.opts.Rand, buf[:]); err != nil {
			return "", fmt.Errorf("authorization id: %w", err)
		}
		if buf[0] >= 252 {
			continue
		}
		id[i] = authIDAlphabet[int(buf[0])%len(authIDAlphabet)]
		i++
	}
	return string(id[:]), nil
}

// atoi reads a numeric field Parse has checked (at most 12 digits).
func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
