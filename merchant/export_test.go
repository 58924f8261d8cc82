package merchant

import "testing"

// What the external tests (package merchant_test: they run the merchant in
// an agenttest rig, which imports this package) read in the order store.

// OrderState returns the state of order id, "" if there is none.
func OrderState(t testing.TB, m *Merchant, id string) string {
	t.Helper()
	o, err := m.store.get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if o == nil {
		return ""
	}
	return o.State
}

// BatchStates counts the capture batches by state (sent, done).
func BatchStates(t testing.TB, m *Merchant) map[string]int {
	t.Helper()
	rows, err := m.store.db.Query(`SELECT state, COUNT(*) FROM batches GROUP BY state`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			t.Fatal(err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
