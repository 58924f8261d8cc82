package agent

import (
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite" // the "sqlite" driver: pure Go
)

// OpenDB opens (creating it if needed) the SQLite database at path for a
// ledger: WAL journal, synchronous=FULL (a committed transaction survives
// a crash of the process or the machine), foreign keys on, and a busy
// timeout. schema (CREATE ... IF NOT EXISTS statements) is applied.
func OpenDB(path, schema string) (*sql.DB, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One writer at a time is what SQLite allows; one connection keeps
	// transactions from failing with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: schema: %w", path, err)
	}
	return db, nil
}
