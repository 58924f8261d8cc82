package bank

import (
	"context"
	"path/filepath"
	"testing"
)

func TestDatabaseIsDurable(t *testing.T) {
	b, err := Open(filepath.Join(t.TempDir(), "bank.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	var mode string
	var sync, timeout int
	if err := b.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := b.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := b.db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 || timeout <= 0 {
		t.Fatalf("journal_mode %s, synchronous %d, busy_timeout %d; want wal, 2 (FULL), > 0", mode, sync, timeout)
	}
}

func TestOpenRejectsURIsAndMemory(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:bank.db", "bank.db?mode=ro"} {
		if b, err := Open(p, Options{}); err == nil {
			b.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}
