package main_test

// The harness of the end-to-end tests: it builds cmd/setpay once, starts
// the CA server, the gateway and the merchant as separate processes on
// loopback (mutual TLS between them), registers parties with the CLI and
// reads the parties' SQLite databases read-only.

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the parties' databases

	"github.com/setpay/setpay/internal/keyfile"
)

// setpayBin is the binary TestMain builds.
var setpayBin string

// Bounds of every wait (generous: the machine may be slow and loaded).
const (
	startTimeout   = 60 * time.Second // a server writes its --addr-file
	commandTimeout = 90 * time.Second // one CLI command runs to completion
	stopTimeout    = 15 * time.Second // a server exits after SIGTERM
	pollTimeout    = 30 * time.Second // a state appears in a database
	pollInterval   = 50 * time.Millisecond
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "setpay-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	setpayBin = filepath.Join(dir, "setpay")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", setpayBin, "github.com/setpay/setpay/cmd/setpay")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building setpay: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// baseEnv is the test's environment without the variables setpay reads
// (so that the developer's settings do not leak into the parties).
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SETPAY_") || strings.HasPrefix(kv, "SSLKEYLOGFILE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// result is the outcome of a CLI command run to completion.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs "setpay ARGS" to completion (bounded) with the extra
// environment variables env.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
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
		t.Fatalf("setpay %s: %v (timeout %s)\n%s", strings.Join(args, " "), err, commandTimeout, r)
	}
	return r
}

// mustRun runs "setpay ARGS" and fails the test unless it exits 0.
func mustRun(t testing.TB, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("setpay %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// proc is a server process.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start starts "setpay ARGS" as a server, its output appended to logPath,
// and stops it (SIGTERM, then SIGKILL) when the test ends.
func start(t testing.TB, name, logPath string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpayBin, args...)
	cmd.Env = baseEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting the %s: %v", name, err)
	}
	p := &proc{name: name, args: args, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits (bounded) for the process to exit, then
// kills it.
func (p *proc) stop(t testing.TB) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("the %s did not stop within %s of SIGTERM; log:\n%s", p.name, stopTimeout, tail(p.log))
	}
}

// kill sends SIGKILL (a crash) and waits for the process to be gone.
func (p *proc) kill(t testing.TB) {
	if p.exited() {
		return
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("the %s survived SIGKILL for %s", p.name, stopTimeout)
	}
}

// serve starts "setpay ARGS --addr ADDR --addr-file F" and waits (bounded)
// for F; it returns the process and the address it listens on.
func serve(t testing.TB, name, dir, addr string, args ...string) (*proc, string) {
	t.Helper()
	addrFile := filepath.Join(dir, name+".addr")
	os.Remove(addrFile)
	args = append(args, "--addr", addr, "--addr-file", addrFile)
	p := start(t, name, filepath.Join(dir, name+".log"), args...)
	deadline := time.Now().Add(startTimeout)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			return p, strings.TrimSpace(string(b))
		}
		select {
		case <-p.done:
			t.Fatalf("the %s exited at start (%v); log:\n%s", name, p.cmd.ProcessState, tail(p.log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s wrote no address within %s; log:\n%s", name, startTimeout, tail(p.log))
		}
	}
}

// tail is the end of a log file.
func tail(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The parties' enrollment.
const (
	gatewayID    = "G-0001"
	gatewayCode  = "gw-activation"
	merchantID   = "M-0001"
	merchantCode = "shop-activation"
	acquirerBIN  = "400000"
	cardCode     = "1234"
	cardExpiry   = "203012"
)

// card is a test card: registered with the CA (expiry cardExpiry) and, in
// the bank's accounts file, with the bank's own view of it.
type card struct {
	PAN                 string
	BankExpiry          string // "": cardExpiry
	CreditLimit         int64  // minor units; 0: 5000.00
	PerTransactionLimit int64
	Status              string // the bank's; "": active
	NotAtBank           bool   // the CA knows the card, the bank does not
}

// worldOptions configure a world.
type worldOptions struct {
	cards         []card
	velocityLimit int // 0: 2
}

// world is a CA server, a gateway with its bank and a merchant, each a
// process, and registered cardholder wallets.
type world struct {
	dir     string
	caDir   string
	root    string // the CA's pq root certificate (PEM)
	caAddr  string
	gwDir   string
	gwAddr  string
	mDir    string
	mAddr   string
	ca      *proc
	gw      *proc
	m       *proc
	caArgs  []string
	gwArgs  []string
	mArgs   []string
	wallets map[string]string // PAN -> wallet directory
}

func (w *world) caURL() string { return "https://" + w.caAddr }
func (w *world) gwURL() string { return "https://" + w.gwAddr }
func (w *world) mURL() string  { return "https://" + w.mAddr }

// newWorld sets up a world by hand with the CLI, as internal/cli/demo.go
// does: ca init, ca serve, gateway register and serve (the bank's accounts
// from their own file), merchant register and serve, and one registered
// wallet per card.
func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{dir: dir, caDir: filepath.Join(dir, "ca"), gwDir: filepath.Join(dir, "gateway"),
		mDir: filepath.Join(dir, "merchant"), wallets: map[string]string{}}
	w.root = filepath.Join(w.caDir, "pq", "root.pem")
	if o.velocityLimit == 0 {
		o.velocityLimit = 2
	}

	var caAccounts, bankAccounts []map[string]any
	for _, c := range o.cards {
		caAccounts = append(caAccounts, map[string]any{"pan": c.PAN, "expiry": cardExpiry, "activationCode": cardCode})
		if c.NotAtBank {
			continue
		}
		exp, limit, status := c.BankExpiry, c.CreditLimit, c.Status
		if exp == "" {
			exp = cardExpiry
		}
		if limit == 0 {
			limit = 5000_00
		}
		if status == "" {
			status = "active"
		}
		bankAccounts = append(bankAccounts, map[string]any{"pan": c.PAN, "expiry": exp, "creditLimit": limit,
			"perTransactionLimit": c.PerTransactionLimit, "currency": 978, "status": status})
	}
	if caAccounts == nil {
		caAccounts = []map[string]any{}
	}
	if bankAccounts == nil {
		bankAccounts = []map[string]any{}
	}
	caAccountsFile := filepath.Join(dir, "ca-accounts.json")
	bankAccountsFile := filepath.Join(dir, "bank-accounts.json")
	enrollFile := filepath.Join(dir, "enroll.json")
	writeJSON(t, caAccountsFile, caAccounts)
	writeJSON(t, bankAccountsFile, bankAccounts)
	writeJSON(t, enrollFile, []map[string]any{
		{"role": 3, "id": gatewayID, "name": "e2e gateway", "activationCode": gatewayCode},
		{"role": 2, "id": merchantID, "name": "e2e shop", "acquirerBIN": acquirerBIN, "activationCode": merchantCode},
	})

	mustRun(t, nil, "ca", "init", "--dir", w.caDir, "--suite", "pq")
	w.caArgs = []string{"ca", "serve", "--dir", w.caDir, "--step-addr", "", "--accounts", caAccountsFile, "--enroll", enrollFile}
	w.ca, w.caAddr = serve(t, "ca", dir, "127.0.0.1:0", w.caArgs...)

	mustRun(t, nil, "gateway", "register", "--dir", w.gwDir, "--ca", w.caURL(), "--roots", w.root, "--id", gatewayID, "--code", gatewayCode)
	w.gwArgs = []string{"gateway", "serve", "--dir", w.gwDir, "--ca", w.caURL(), "--accounts", bankAccountsFile,
		"--refresh", "200ms", "--velocity-limit", fmt.Sprint(o.velocityLimit)}
	w.gw, w.gwAddr = serve(t, "gateway", dir, "127.0.0.1:0", w.gwArgs...)

	mustRun(t, nil, "merchant", "register", "--dir", w.mDir, "--ca", w.caURL(), "--roots", w.root, "--id", merchantID,
		"--acquirer-bin", acquirerBIN, "--code", merchantCode)
	w.mArgs = []string{"merchant", "serve", "--dir", w.mDir, "--ca", w.caURL(), "--gateway", w.gwURL(),
		"--custom-orders", "--capture-every", "200ms", "--refresh", "200ms"}
	w.m, w.mAddr = serve(t, "merchant", dir, "127.0.0.1:0", w.mArgs...)

	for _, c := range o.cards {
		w.register(t, c.PAN)
	}
	return w
}

// register registers a wallet for pan (the card number in the environment,
// never in the arguments).
func (w *world) register(t testing.TB, pan string) string {
	t.Helper()
	wallet := filepath.Join(w.dir, "wallet-"+pan)
	mustRun(t, []string{"SETPAY_PAN=" + pan}, "cardholder", "register", "--dir", wallet, "--ca", w.caURL(), "--roots", w.root,
		"--expiry", cardExpiry, "--code", cardCode)
	w.wallets[pan] = wallet
	return wallet
}

// buy runs "setpay cardholder buy" with the wallet of pan for a custom
// order.
func (w *world) buy(t testing.TB, pan, order, amount string) result {
	t.Helper()
	wallet, ok := w.wallets[pan]
	if !ok {
		t.Fatalf("no wallet for card %s", pan)
	}
	return run(t, nil, "cardholder", "buy", "--dir", wallet, "--merchant", w.mURL(), "--order", order, "--amount", amount)
}

// mustBuy buys and requires an approval; it returns the order id.
func (w *world) mustBuy(t testing.TB, pan, order, amount string) string {
	t.Helper()
	r := w.buy(t, pan, order, amount)
	if r.code != 0 || !strings.Contains(r.stdout, "approved: EUR "+amount+" authorized") {
		t.Fatalf("buy %q for %s: want approved, exit 0; got %s\nmerchant log:\n%s\ngateway log:\n%s", order, amount, r, tail(w.m.log), tail(w.gw.log))
	}
	return orderID(t, r.stdout)
}

var orderRE = regexp.MustCompile(`(?m)^order (O-[0-9a-f]+): `)

// orderID reads the order id buy printed.
func orderID(t testing.TB, stdout string) string {
	t.Helper()
	m := orderRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no order id in the output:\n%s", stdout)
	}
	return m[1]
}

// restart starts a stopped or killed server again on the address it had.
func (w *world) restart(t testing.TB, p **proc, addr *string, name string, args []string) {
	t.Helper()
	if !(*p).exited() {
		t.Fatalf("restart: the %s is still running", name)
	}
	old := *addr
	*p, *addr = serve(t, name, w.dir, old, args...)
	if *addr != old {
		t.Fatalf("the %s restarted on %s, want %s", name, *addr, old)
	}
}

// Paths of the parties' databases.
func (w *world) merchantDB() string { return filepath.Join(w.mDir, "merchant.db") }
func (w *world) gatewayDB() string  { return filepath.Join(w.gwDir, "gateway.db") }
func (w *world) bankDB() string     { return filepath.Join(w.gwDir, "bank.db") }

// openRO opens a party's SQLite database read-only (the parties run it in
// WAL mode, so it is readable while they write).
func openRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// queryRow runs a query returning one row on a database opened read-only
// for the call, and scans it into dest.
func queryRow(t testing.TB, path, query string, args []any, dest ...any) {
	t.Helper()
	db := openRO(t, path)
	defer db.Close()
	if err := db.QueryRow(query, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %s: %v", filepath.Base(path), query, err)
	}
}

// count returns SELECT COUNT(*) ... (or any single integer).
func count(t testing.TB, path, query string, args ...any) int64 {
	t.Helper()
	var n int64
	queryRow(t, path, query, args, &n)
	return n
}

// orderState returns an order's state in merchant.db ("" if there is no
// such order).
func orderState(t testing.TB, path, id string) string {
	t.Helper()
	db := openRO(t, path)
	defer db.Close()
	var s string
	err := db.QueryRow(`SELECT state FROM orders WHERE id = ?`, id).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatalf("merchant.db: %v", err)
	}
	return s
}

// waitOrderState polls merchant.db (bounded) until the order is in state
// want; it fails on a state in bad.
func waitOrderState(t testing.TB, path, id, want string, bad ...string) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	var got string
	for {
		got = orderState(t, path, id)
		if got == want {
			return
		}
		for _, b := range bad {
			if got == b {
				t.Fatalf("order %s is %q, want %q", id, got, want)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s still %q after %s, want %q", id, got, pollTimeout, want)
		}
		time.Sleep(pollInterval)
	}
}

// filesContaining walks dir and returns the regular files whose bytes
// contain needle, and how many files it read.
func filesContaining(t testing.TB, dir string, needle []byte) (hits []string, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits, files
}

// leafSerial returns the decimal serial number of the first certificate in
// a PEM file.
func leafSerial(t testing.TB, pemFile string) string {
	t.Helper()
	certs, err := keyfile.ReadCerts(pemFile)
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: %v", pemFile, err)
	}
	x, err := x509.ParseCertificate(certs[0])
	if err != nil {
		t.Fatalf("%s: %v", pemFile, err)
	}
	return x.SerialNumber.String()
}

// readDir lists a directory's entry names (failing if it cannot be read).
func readDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
