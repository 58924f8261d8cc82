package gateway

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/setpay/setpay/protocol"
)

// What the external tests (package gateway_test: they run the gateway in an
// agenttest rig, which imports this package) read and change in the ledger.

// LedgerState returns the ledger's state of the authorization of xid
// (pending, approved, declined), "" if there is none.
func LedgerState(t testing.TB, g *Gateway, xid protocol.XID) string {
	t.Helper()
	var state string
	err := g.ledger.db.QueryRow(`SELECT state FROM authorizations WHERE xid = ?`, xid[:]).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// SetLedger changes the authorization of xid in the ledger to state and
// merchant; state "" deletes it.
func SetLedger(t testing.TB, g *Gateway, xid protocol.XID, state, merchant string) {
	t.Helper()
	var err error
	if state == "" {
		_, err = g.ledger.db.Exec(`DELETE FROM authorizations WHERE xid = ?`, xid[:])
	} else {
		_, err = g.ledger.db.Exec(`UPDATE authorizations SET state = ?, merchant = ? WHERE xid = ?`, state, merchant, xid[:])
	}
	if err != nil {
		t.Fatal(err)
	}
}

// LedgerRows counts the rows of each table of the ledger.
func LedgerRows(t testing.TB, g *Gateway) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"answers", "authorizations", "captures"} {
		var n int
		if err := g.ledger.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// XIDLockUsers returns how many requests hold or wait for the lock of xid.
func XIDLockUsers(g *Gateway, xid protocol.XID) int {
	g.xidMu.Lock()
	defer g.xidMu.Unlock()
	if l := g.xidLock[xid]; l != nil {
		return l.users
	}
	return 0
}
