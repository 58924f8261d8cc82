package agent

import (
	"database/sql"
	"fmt"
	"os"

	_ "modernc.org/sqlite" // the "sqlite" driver: pure Go
)

// OpenDB opens (creating it if needed) the SQLite database at path for a
// ledger: WAL journal, synchronous=FULL (a committed transaction survives
// a crash of the process or the machine), foreign keys on, and a busy
// timeout. schema (CREATE ... IF NOT EXISTS statements) is applied.
func OpenDB(path, schema string) (*sql.DB, error) {
	if err := CreatePrivate(path); err != nil {
		return nil, err
	}
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

// CreatePrivate creates the file path 0600 if it does not exist, so that a
// database SQLite then opens (and its -wal and -shm files, which take the
// database's permissions) is readable by its party only.
func CreatePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
