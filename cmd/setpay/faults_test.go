package main_test

// Fault tests: purchases while the gateway and the merchant are crashed
// (SIGKILL) and restarted, and while the link between the merchant and the
// gateway loses, delays, duplicates and reorders bytes; then the
// invariants of the three ledgers (merchant.db, gateway.db, bank.db): no
// authorization or capture applied twice, no hold without its
// authorization, the same captured total everywhere, every approval
// captured.
//
// The sizes below keep each test under a minute on a small CI machine. A
// longer run, locally:
//
//	SETPAY_FAULT_PURCHASES=500 go test ./cmd/setpay/ -run 'TestFault' -v -timeout 1h
//
// Every run logs its seed; SETPAY_FAULT_SEED=N replays a run's decisions
// (what is killed when, how each connection is mangled, the amounts).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	faultPurchases   = 40 // purchases per test (SETPAY_FAULT_PURCHASES)
	faultBuyers      = 3  // buys running at once
	faultBuyAttempts = 8  // buy runs per purchase, each a new order
	faultKillsPer    = 7  // one kill per this many purchases (at least faultMinKills)
	faultMinKills    = 4
	faultMaxDown     = 500 * time.Millisecond // a killed server stays down up to this long
	faultQuiesce     = 45 * time.Second       // the merchant settles everything within this
	faultCreditLimit = 1_000_000_00           // per card: never the reason of a decline
)

// faultCards are the cardholders of the fault tests (Luhn-valid).
var faultCards = []string{panVisa, panMC, panVisa2, panMC2}

// faultLossy is the lossy proxy's policy (per chunk).
var faultLossy = faultPolicy{Drop: 0.06, Reorder: 0.06, Delay: 0.2, MaxDelay: 100 * time.Millisecond, Duplicate: 0.1}

// faultSize returns the number of purchases and the seed of a run.
func faultSize(t *testing.T) (n int, seed uint64) {
	t.Helper()
	n = faultPurchases
	if s := os.Getenv("SETPAY_FAULT_PURCHASES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("SETPAY_FAULT_PURCHASES=%q: want a positive number", s)
		}
		n = v
	}
	seed = rand.Uint64()
	if s := os.Getenv("SETPAY_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SETPAY_FAULT_SEED=%q: want a number", s)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SETPAY_FAULT_SEED=%d), %d purchases", seed, seed, n)
	return n, seed
}

// newFaultWorld is newWorld for the fault tests: the gateway and the
// merchant refresh every second and the merchant captures (and resumes
// pending authorizations) every 200 ms; cards with a generous credit limit
// and no velocity limit to speak of. gatewayURL, if not nil, gives the
// merchant's --gateway from the gateway's address (to put a proxy between
// them).
func newFaultWorld(t *testing.T, pans []string, gatewayURL func(gwAddr string) string) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{dir: dir, caDir: filepath.Join(dir, "ca"), gwDir: filepath.Join(dir, "gateway"),
		mDir: filepath.Join(dir, "merchant"), wallets: map[string]string{}}
	w.root = filepath.Join(w.caDir, "pq", "root.pem")
	caAccounts, bankAccounts := []map[string]any{}, []map[string]any{}
	for _, pan := range pans {
		caAccounts = append(caAccounts, map[string]any{"pan": pan, "expiry": cardExpiry, "activationCode": cardCode})
		bankAccounts = append(bankAccounts, map[string]any{"pan": pan, "expiry": cardExpiry, "creditLimit": faultCreditLimit,
			"perTransactionLimit": 0, "currency": 978, "status": "active"})
	}
	caAccountsFile := filepath.Join(dir, "ca-accounts.json")
	bankAccountsFile := filepath.Join(dir, "bank-accounts.json")
	enrollFile := filepath.Join(dir, "enroll.json")
	writeJSON(t, caAccountsFile, caAccounts)
	writeJSON(t, bankAccountsFile, bankAccounts)
	writeJSON(t, enrollFile, []map[string]any{
		{"role": 3, "id": gatewayID, "name": "fault gateway", "activationCode": gatewayCode},
		{"role": 2, "id": merchantID, "name": "fault shop", "acquirerBIN": acquirerBIN, "activationCode": merchantCode},
	})

	mustRun(t, nil, "ca", "init", "--dir", w.caDir, "--suite", "pq")
	w.caArgs = []string{"ca", "serve", "--dir", w.caDir, "--step-addr", "", "--accounts", caAccountsFile, "--enroll", enrollFile}
	w.ca, w.caAddr = serve(t, "ca", dir, "127.0.0.1:0", w.caArgs...)

	mustRun(t, nil, "gateway", "register", "--dir", w.gwDir, "--ca", w.caURL(), "--roots", w.root, "--id", gatewayID, "--code", gatewayCode)
	w.gwArgs = []string{"gateway", "serve", "--dir", w.gwDir, "--ca", w.caURL(), "--accounts", bankAccountsFile,
		"--refresh", "1s", "--velocity-limit", "1000000"}
	w.gw, w.gwAddr = serve(t, "gateway", dir, "127.0.0.1:0", w.gwArgs...)

	gw := w.gwURL()
	if gatewayURL != nil {
		gw = gatewayURL(w.gwAddr)
	}
	mustRun(t, nil, "merchant", "register", "--dir", w.mDir, "--ca", w.caURL(), "--roots", w.root, "--id", merchantID,
		"--acquirer-bin", acquirerBIN, "--code", merchantCode)
	w.mArgs = []string{"merchant", "serve", "--dir", w.mDir, "--ca", w.caURL(), "--gateway", gw,
		"--custom-orders", "--capture-every", "200ms", "--refresh", "1s"}
	w.m, w.mAddr = serve(t, "merchant", dir, "127.0.0.1:0", w.mArgs...)

	for _, pan := range pans {
		w.register(t, pan)
	}
	return w
}

// tryRun is run for goroutines other than the test's: it fails nothing,
// and returns an error if the command could not run or timed out.
func tryRun(env []string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpayBin, args...)
	cmd.Env = baseEnv(env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("setpay %s: %v (timeout %s)", strings.Join(args, " "), err, commandTimeout)
	}
	return r, nil
}

// Outcomes of one buy run.
const (
	outApproved    = "approved"
	outDeclined    = "declined"
	outUnavailable = "unavailable" // "temporarily unavailable": retried (a new order)
	outConnection  = "connection"  // the merchant could not be reached or hung up: retried
	outOther       = "other"       // anything else: final, reported
)

// connectionErrors are what a buy prints when the merchant is down or
// drops the connection.
var connectionErrors = []string{"connection refused", "connection reset", "EOF", "broken pipe", "use of closed network connection",
	"server closed", "http2:", "Client.Timeout", "i/o timeout", "tls: "}

func classify(r result) string {
	out := r.stdout + r.stderr
	switch {
	case r.code == 0 && strings.Contains(r.stdout, "approved: EUR "):
		return outApproved
	case r.code == 1 && strings.Contains(r.stdout, "declined: "):
		return outDeclined
	case r.code != 0 && strings.Contains(out, "temporarily unavailable"):
		return outUnavailable
	}
	if r.code != 0 {
		for _, s := range connectionErrors {
			if strings.Contains(out, s) {
				return outConnection
			}
		}
	}
	return outOther
}

// purchase is one shopper's purchase: buy runs until one is approved or
// declined, a new order each time.
type purchase struct {
	n       int
	pan     string
	amount  string // "12.34"
	runs    []buyRun
	outcome string // of the last run; "gave up" after faultBuyAttempts retried runs
}

type buyRun struct {
	order   string // the order's description
	outcome string
	output  string // for outOther
}

// stream is a run of purchases by faultBuyers shoppers at once.
type stream struct {
	purchases []*purchase
	started   atomic.Int64 // purchases begun
	abort     atomic.Bool  // the test ended early: begin no more
	done      chan struct{}
}

// startStream starts n purchases (the card and amount of purchase i drawn
// from PCG(seed, i)); stream.done is closed when all have ended. If the
// test ends first, the purchases not begun are skipped and the test waits
// for the others.
func startStream(t *testing.T, w *world, name string, n int, seed uint64) *stream {
	s := &stream{done: make(chan struct{})}
	murl := w.mURL()
	wallets := map[string]string{}
	for pan, dir := range w.wallets {
		wallets[pan] = dir
	}
	for i := range n {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		cents := 100 + r.IntN(9900)
		s.purchases = append(s.purchases, &purchase{n: i, pan: faultCards[r.IntN(len(faultCards))],
			amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), outcome: "not run"})
	}
	next := make(chan *purchase)
	var wg sync.WaitGroup
	for range faultBuyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				if s.abort.Load() {
					continue
				}
				s.started.Add(1)
				p.buy(wallets[p.pan], murl, name)
			}
		}()
	}
	go func() {
		for _, p := range s.purchases {
			next <- p
		}
		close(next)
		wg.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.abort.Store(true)
		s.wait()
	})
	return s
}

func (p *purchase) buy(wallet, murl, name string) {
	for attempt := 1; attempt <= faultBuyAttempts; attempt++ {
		order := fmt.Sprintf("fault %s: purchase %d, run %d", name, p.n, attempt)
		r, err := tryRun(nil, "cardholder", "buy", "--dir", wallet, "--merchant", murl, "--order", order, "--amount", p.amount)
		run := buyRun{order: order, outcome: classify(r)}
		if err != nil {
			run.outcome = outOther
		}
		if run.outcome == outOther {
			run.output = fmt.Sprintf("%v\n%s", err, r)
		}
		p.runs = append(p.runs, run)
		p.outcome = run.outcome
		if run.outcome != outUnavailable && run.outcome != outConnection {
			return
		}
		time.Sleep(time.Duration(attempt) * 150 * time.Millisecond)
	}
	p.outcome = "gave up"
}

// waitStarted waits until n purchases have started; false if the stream
// ended first.
func (s *stream) waitStarted(n int64) bool {
	for s.started.Load() < n {
		select {
		case <-s.done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// wait waits for the stream to end (each buy run is bounded).
func (s *stream) wait() { <-s.done }

// report logs the purchases' outcomes and returns the approvals seen.
func (s *stream) report(t *testing.T) (runs, approved int, approvedOrders []string) {
	t.Helper()
	outcomes, runOutcomes := map[string]int{}, map[string]int{}
	others := 0
	for _, p := range s.purchases {
		outcomes[p.outcome]++
		for _, r := range p.runs {
			runs++
			runOutcomes[r.outcome]++
			if r.outcome == outApproved {
				approved++
				approvedOrders = append(approvedOrders, r.order)
			}
			if r.outcome == outOther && others < 5 {
				others++
				t.Logf("purchase %d, order %q: unexpected outcome:\n%s", p.n, r.order, r.output)
			}
		}
	}
	t.Logf("purchases: %v; buy runs: %v", sortedCounts(outcomes), sortedCounts(runOutcomes))
	return runs, approved, approvedOrders
}

func sortedCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// waitQuiescent polls merchant.db (bounded by faultQuiesce) until the
// merchant has settled everything: no order authorizing, authorized (not
// yet captured) or capturing, no batch sent without an answer. It reports
// what is left otherwise.
func waitQuiescent(t *testing.T, w *world) {
	t.Helper()
	const q = `SELECT (SELECT COUNT(*) FROM orders WHERE state IN ('authorizing', 'authorized', 'capturing')) +
		(SELECT COUNT(*) FROM batches WHERE state = 'sent')`
	deadline := time.Now().Add(faultQuiesce)
	for count(t, w.merchantDB(), q) != 0 {
		if time.Now().After(deadline) {
			db := openRO(t, w.merchantDB())
			defer db.Close()
			var left []string
			rows, err := db.Query(`SELECT id, state, updated FROM orders WHERE state IN ('authorizing', 'authorized', 'capturing')
				UNION ALL SELECT 'batch ' || id, state, updated FROM batches WHERE state = 'sent'`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, state, updated string
				if err := rows.Scan(&id, &state, &updated); err != nil {
					t.Fatal(err)
				}
				left = append(left, fmt.Sprintf("%s %s (since %s)", id, state, updated))
			}
			rows.Close()
			t.Errorf("the merchant did not settle within %s; left: %v\nmerchant log:\n%s", faultQuiesce, left, tail(w.m.log))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The ledgers' rows the invariants are about.
type (
	mOrder struct {
		id, desc, state      string
		xid                  []byte
		authAmount, captured int64
	}
	gwAuth struct {
		xid                  []byte
		merchant, rrn, state string
		amount               int64
	}
	gwCapture struct {
		xid      []byte
		merchant string
		amount   int64
	}
	bankAuth struct {
		merchant, rrn, code, state string
		amount, captured           int64
	}
	bankCapture struct {
		merchant, rrn string
		amount        int64
	}
)

func (o mOrder) String() string {
	return fmt.Sprintf("order %s (%q) %s, XID %x, authorized %d, captured %d", o.id, o.desc, o.state, o.xid, o.authAmount, o.captured)
}

func (a gwAuth) String() string {
	return fmt.Sprintf("%s XID %x RRN %s %s %d", a.merchant, a.xid, a.rrn, a.state, a.amount)
}

func (c gwCapture) String() string {
	return fmt.Sprintf("%s XID %x captured %d", c.merchant, c.xid, c.amount)
}

// ledgers is what the three databases hold, read after the parties stopped.
type ledgers struct {
	orders      []mOrder
	sentBatches int64
	gwAuths     []gwAuth
	gwCaps      []gwCapture
	bankAuths   []bankAuth
	bankCaps    []bankCapture
}

// scanAll runs query on the database at path (read-only) and calls scan
// for each row.
func scanAll(t *testing.T, path, query string, scan func(*sql.Rows) error) {
	t.Helper()
	db := openRO(t, path)
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %s: %v", filepath.Base(path), query, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatalf("%s: %s: %v", filepath.Base(path), query, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %s: %v", filepath.Base(path), query, err)
	}
}

func readLedgers(t *testing.T, w *world) *ledgers {
	t.Helper()
	l := &ledgers{}
	scanAll(t, w.merchantDB(), `SELECT id, description, state, xid, auth_amount, captured FROM orders`, func(r *sql.Rows) error {
		var o mOrder
		err := r.Scan(&o.id, &o.desc, &o.state, &o.xid, &o.authAmount, &o.captured)
		l.orders = append(l.orders, o)
		return err
	})
	l.sentBatches = count(t, w.merchantDB(), `SELECT COUNT(*) FROM batches WHERE state = 'sent'`)
	scanAll(t, w.gatewayDB(), `SELECT xid, merchant, rrn, state, amount FROM authorizations`, func(r *sql.Rows) error {
		var a gwAuth
		err := r.Scan(&a.xid, &a.merchant, &a.rrn, &a.state, &a.amount)
		l.gwAuths = append(l.gwAuths, a)
		return err
	})
	scanAll(t, w.gatewayDB(), `SELECT xid, merchant, amount FROM captures`, func(r *sql.Rows) error {
		var c gwCapture
		err := r.Scan(&c.xid, &c.merchant, &c.amount)
		l.gwCaps = append(l.gwCaps, c)
		return err
	})
	scanAll(t, w.bankDB(), `SELECT merchant, rrn, code, state, amount, captured FROM authorizations`, func(r *sql.Rows) error {
		var a bankAuth
		err := r.Scan(&a.merchant, &a.rrn, &a.code, &a.state, &a.amount, &a.captured)
		l.bankAuths = append(l.bankAuths, a)
		return err
	})
	scanAll(t, w.bankDB(), `SELECT merchant, rrn, amount FROM captures`, func(r *sql.Rows) error {
		var c bankCapture
		err := r.Scan(&c.merchant, &c.rrn, &c.amount)
		l.bankCaps = append(l.bankCaps, c)
		return err
	})
	return l
}

// checker counts the invariant checks made and reports the failed ones.
type checker struct {
	t              *testing.T
	checks, failed int
}

func (c *checker) check(ok bool, format string, args ...any) {
	c.t.Helper()
	c.checks++
	if ok {
		return
	}
	c.failed++
	if c.failed <= 40 {
		c.t.Errorf("INVARIANT VIOLATED: "+format, args...)
	}
}

// rrnFor is the bank's RRN of an XID, as the gateway derives it (gateway
// rrnOf: hex of the XID's first 6 bytes).
func rrnFor(xid []byte) string {
	if len(xid) < 6 {
		return ""
	}
	return hex.EncodeToString(xid[:6])
}

// bankKey names a bank authorization or capture.
func bankKey(merchant, rrn string) string { return merchant + "/" + rrn }

// checkInvariants reads the three ledgers (the parties stopped) and checks
// the invariants; approvedOrders are the orders (descriptions) whose buy
// reported an approval. It returns the checks made and the approvals at
// the gateway.
func checkInvariants(t *testing.T, w *world, approvedOrders []string) (checks, failed, gwApproved int) {
	l := readLedgers(t, w)
	c := &checker{t: t}

	orderByXID, orderByDesc := map[string]mOrder{}, map[string]mOrder{}
	states := map[string]int{}
	for _, o := range l.orders {
		states[o.state]++
		orderByDesc[o.desc] = o
		if o.xid != nil {
			orderByXID[string(o.xid)] = o
		}
	}
	gwByXID, gwByKey := map[string]gwAuth{}, map[string][]gwAuth{}
	gwStates := map[string]int{}
	for _, a := range l.gwAuths {
		gwStates[a.state]++
		gwByXID[string(a.xid)] = a
		gwByKey[bankKey(a.merchant, a.rrn)] = append(gwByKey[bankKey(a.merchant, a.rrn)], a)
	}
	gwCapsByXID := map[string][]gwCapture{}
	for _, cp := range l.gwCaps {
		gwCapsByXID[string(cp.xid)] = append(gwCapsByXID[string(cp.xid)], cp)
	}
	bankByKey, bankCapsByKey := map[string][]bankAuth{}, map[string][]bankCapture{}
	bankStates := map[string]int{}
	for _, a := range l.bankAuths {
		bankStates[a.state]++
		bankByKey[bankKey(a.merchant, a.rrn)] = append(bankByKey[bankKey(a.merchant, a.rrn)], a)
	}
	for _, cp := range l.bankCaps {
		bankCapsByKey[bankKey(cp.merchant, cp.rrn)] = append(bankCapsByKey[bankKey(cp.merchant, cp.rrn)], cp)
	}
	bankApproved := func(key string) []bankAuth {
		var out []bankAuth
		for _, a := range bankByKey[key] {
			if a.code == "00" {
				out = append(out, a)
			}
		}
		return out
	}

	// Every approved authorization: recorded once at the gateway, one hold
	// at the bank, the merchant's order, captured once everywhere.
	for _, a := range l.gwAuths {
		x := hex.EncodeToString(a.xid)
		key := bankKey(a.merchant, a.rrn)
		c.check(a.rrn == rrnFor(a.xid), "gateway authorization %s: RRN %q, want %q", x, a.rrn, rrnFor(a.xid))
		c.check(a.merchant == merchantID, "gateway authorization %s: merchant %q, want %s", x, a.merchant, merchantID)
		o, ok := orderByXID[string(a.xid)]
		c.check(ok, "gateway authorization %s (%s): no merchant order has this XID", x, a.state)
		if a.state != "approved" {
			c.check(len(bankApproved(key)) == 0, "gateway authorization %s is %s, but the bank approved it: %+v", x, a.state, bankByKey[key])
			c.check(!ok || (o.state != "authorized" && o.state != "capturing" && o.state != "captured"),
				"gateway authorization %s is %s, but the merchant's order %s is %s", x, a.state, o.id, o.state)
			continue
		}
		gwApproved++
		n := 0
		for _, b := range gwByKey[key] {
			if b.state == "approved" {
				n++
			}
		}
		c.check(n == 1, "authorization %s (RRN %s): approved %d times at the gateway, want once", x, a.rrn, n)
		holds := bankByKey[key]
		c.check(len(holds) == 1 && holds[0].code == "00" && (holds[0].state == "open" || holds[0].state == "captured") && holds[0].amount == a.amount,
			"approved authorization %s (RRN %s, %d): bank holds %+v, want exactly one approved hold of the amount", x, a.rrn, a.amount, holds)
		c.check(ok && o.state == "captured" && o.authAmount == a.amount && o.captured == a.amount,
			"approved authorization %s (%d): merchant %v, want it captured for the amount", x, a.amount, o)
		caps := gwCapsByXID[string(a.xid)]
		c.check(len(caps) == 1 && caps[0].amount == a.amount && caps[0].merchant == a.merchant,
			"approved authorization %s (%d): gateway captures %+v, want exactly one of the amount", x, a.amount, caps)
		bcaps := bankCapsByKey[key]
		c.check(len(bcaps) == 1 && bcaps[0].amount == a.amount, "approved authorization %s (%d): bank captures %+v, want exactly one of the amount", x, a.amount, bcaps)
		c.check(len(holds) == 1 && holds[0].state == "captured" && holds[0].captured == a.amount,
			"approved authorization %s (%d): the bank's hold %+v is not posted for the amount", x, a.amount, holds)
	}

	// No hold at the bank without an approved authorization at the
	// gateway.
	for _, a := range l.bankAuths {
		key := bankKey(a.merchant, a.rrn)
		c.check(len(bankByKey[key]) == 1, "bank authorization %s recorded %d times", key, len(bankByKey[key]))
		if a.code != "00" {
			continue
		}
		gws := gwByKey[key]
		c.check(len(gws) == 1 && gws[0].state == "approved", "bank hold %s (%s, %d): gateway authorizations %+v, want one approved", key, a.state, a.amount, gws)
	}

	// No capture applied twice; each capture the other's.
	for xid, caps := range gwCapsByXID {
		a, ok := gwByXID[xid]
		c.check(len(caps) == 1, "gateway: %d captures of XID %x", len(caps), xid)
		c.check(ok && a.state == "approved", "gateway capture of XID %x: its authorization is %+v, want approved", xid, a)
		c.check(ok && len(bankCapsByKey[bankKey(a.merchant, a.rrn)]) == 1, "gateway capture of XID %x: no bank capture", xid)
	}
	for key, caps := range bankCapsByKey {
		c.check(len(caps) == 1, "bank: %d captures of %s", len(caps), key)
		gws := gwByKey[key]
		c.check(len(gws) == 1 && len(gwCapsByXID[string(gws[0].xid)]) == 1, "bank capture %s: no gateway capture", key)
	}

	// The same captured total at the merchant, the gateway and the
	// acquirer.
	var mTotal, gwTotal, bankTotal int64
	for _, o := range l.orders {
		mTotal += o.captured
	}
	for _, cp := range l.gwCaps {
		if cp.merchant == merchantID {
			gwTotal += cp.amount
		}
	}
	for _, cp := range l.bankCaps {
		if cp.merchant == merchantID {
			bankTotal += cp.amount
		}
	}
	c.check(mTotal == gwTotal && gwTotal == bankTotal, "captured totals: merchant %d, gateway %d, acquirer %d", mTotal, gwTotal, bankTotal)

	// The merchant's orders: nothing left half-way but harmless ones.
	c.check(l.sentBatches == 0, "merchant: %d capture batches sent without an answer", l.sentBatches)
	for _, o := range l.orders {
		switch o.state {
		case "authorizing", "capturing", "authorized", "capture-refused":
			c.check(false, "merchant order %s (%q) left %s", o.id, o.desc, o.state)
		case "agreed", "initiated", "declined", "refused":
			if o.xid == nil {
				continue
			}
			a, ok := gwByXID[string(o.xid)]
			if o.state == "agreed" || o.state == "initiated" {
				c.check(!ok, "merchant order %s is %s, but the gateway has an authorization of it: %+v", o.id, o.state, a)
			} else {
				c.check(!ok || a.state != "approved", "merchant order %s is %s, but the gateway approved it: %+v", o.id, o.state, a)
			}
			key := bankKey(merchantID, rrnFor(o.xid))
			c.check(len(bankApproved(key)) == 0, "merchant order %s is %s, but the bank holds it: %+v", o.id, o.state, bankByKey[key])
		}
	}

	// What the cardholders saw.
	for _, desc := range approvedOrders {
		o, ok := orderByDesc[desc]
		c.check(ok && (o.state == "authorized" || o.state == "captured"), "order %q was approved to its buyer, but the merchant has %v", desc, o)
	}
	c.check(len(approvedOrders) <= gwApproved, "cardholders saw %d approvals, the gateway approved %d", len(approvedOrders), gwApproved)

	t.Logf("merchant orders: %s; gateway authorizations: %s, captures %d; bank authorizations: %s, captures %d; captured total %d",
		sortedCounts(states), sortedCounts(gwStates), len(l.gwCaps), sortedCounts(bankStates), len(l.bankCaps), mTotal)
	return c.checks, c.failed, gwApproved
}

// logEvents counts, in the parties' logs, the traces of the faults'
// handling: requests answered again from the gateway's ledger, refused TLS
// handshakes (replayed or mangled bytes), the merchant's retries and
// resumed authorizations.
func logEvents(t *testing.T, w *world) string {
	t.Helper()
	lines := func(path, substr string) int {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), substr)
	}
	return fmt.Sprintf("gateway: %d AuthReq and %d CapReq answered again from the ledger, %d TLS handshakes refused; merchant: %d retries to the gateway, %d authorizations resumed, %d failed capture runs",
		lines(w.gw.log, "AuthReq answered before"), lines(w.gw.log, "CapReq answered before"), lines(w.gw.log, "TLS handshake error"),
		lines(w.m.log, "gateway unavailable, retrying"), lines(w.m.log, "resumed authorizations"), lines(w.m.log, "capture failed"))
}

// stopAll stops the merchant, the gateway and the CA (SIGTERM), so that
// the ledgers are read at rest.
func stopAll(t *testing.T, w *world) {
	t.Helper()
	w.m.stop(t)
	w.gw.stop(t)
	w.ca.stop(t)
}

// TestFaultKill runs purchases while the gateway and the merchant are
// killed (SIGKILL) at random points and restarted on the same address with
// the same data; shoppers retry a failed buy with a new order. Then the
// merchant settles what was left half-way, and the ledgers must agree.
func TestFaultKill(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	n, seed := faultSize(t)
	r := rand.New(rand.NewPCG(seed, ^uint64(0)))
	kills := max(faultMinKills, n/faultKillsPer)
	w := newFaultWorld(t, faultCards, nil)

	// The kills: kill k when the thresholds[k]-th purchase has started,
	// plus up to 300 ms (so that it lands mid-purchase).
	thresholds := make([]int64, kills)
	for k := range thresholds {
		thresholds[k] = int64(1 + r.IntN(max(1, n-2)))
	}
	slices.Sort(thresholds)
	s := startStream(t, w, "kill", n, seed)
	killed := map[string]int{}
	for k := 0; k < kills; k++ {
		if !s.waitStarted(thresholds[k]) {
			t.Logf("the purchases ended before kill %d", k+1)
			break
		}
		time.Sleep(time.Duration(r.Int64N(int64(300 * time.Millisecond))))
		victim := []string{"gateway", "merchant", "gateway and merchant"}[r.IntN(3)]
		if k == kills-1 && killed["gateway"]+killed["gateway and merchant"] == 0 {
			victim = "gateway"
		} else if k == kills-1 && killed["merchant"]+killed["gateway and merchant"] == 0 {
			victim = "merchant"
		}
		down := time.Duration(r.Int64N(int64(faultMaxDown)))
		t.Logf("kill %d: the %s (purchase %d started), down %s", k+1, victim, s.started.Load(), down.Round(time.Millisecond))
		killed[victim]++
		if strings.Contains(victim, "gateway") {
			w.gw.kill(t)
		}
		if strings.Contains(victim, "merchant") {
			w.m.kill(t)
		}
		time.Sleep(down)
		if strings.Contains(victim, "gateway") {
			w.restart(t, &w.gw, &w.gwAddr, "gateway", w.gwArgs)
		}
		if strings.Contains(victim, "merchant") {
			w.restart(t, &w.m, &w.mAddr, "merchant", w.mArgs)
		}
	}
	s.wait()
	runs, approved, approvedOrders := s.report(t)

	waitQuiescent(t, w)
	stopAll(t, w)
	t.Logf("logs: %s", logEvents(t, w))
	checks, failed, gwApproved := checkInvariants(t, w, approvedOrders)
	nKills := 0
	for _, v := range killed {
		nKills += v
	}
	t.Logf("SUMMARY kill: seed %d; kills %d (%s); purchases %d attempted in %d buy runs, %d approved to the cardholders, %d approved at the gateway; invariant checks %d passed, %d failed; %s",
		seed, nKills, sortedCounts(killed), n, runs, approved, gwApproved, checks-failed, failed, time.Since(begin).Round(time.Millisecond))
}

// TestFaultLossyNetwork runs purchases with a lossy proxy between the
// merchant and the gateway: connections dropped mid-stream, chunks delayed
// and reordered (which breaks the TLS records: the merchant retries), the
// client's bytes replayed on a second connection (which TLS rejects). None
// may have a second effect: the same invariants as TestFaultKill.
func TestFaultLossyNetwork(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	n, seed := faultSize(t)
	var px *lossyProxy
	w := newFaultWorld(t, faultCards, func(gwAddr string) string {
		// The proxy draws from streams of its own (not the purchases').
		px = newLossyProxy(t, gwAddr, seed^0x70726f7879, faultLossy)
		return "https://" + px.addr()
	})
	s := startStream(t, w, "lossy", n, seed)
	s.wait()
	runs, approved, approvedOrders := s.report(t)

	waitQuiescent(t, w)
	stopAll(t, w)
	t.Logf("proxy: %s; logs: %s", &px.stats, logEvents(t, w))
	if px.stats.conns.Load() == 0 {
		t.Errorf("no connection went through the proxy: the merchant does not use it")
	}
	checks, failed, gwApproved := checkInvariants(t, w, approvedOrders)
	t.Logf("SUMMARY lossy: seed %d; proxy %s; purchases %d attempted in %d buy runs, %d approved to the cardholders, %d approved at the gateway; invariant checks %d passed, %d failed; %s",
		seed, &px.stats, n, runs, approved, gwApproved, checks-failed, failed, time.Since(begin).Round(time.Millisecond))
}
