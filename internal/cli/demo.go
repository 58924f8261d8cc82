package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/cardholder"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// The demo's parties and their enrollment.
const (
	demoGatewayID   = "G-0001"
	demoGatewayCode = "gateway-activation"
	demoMerchantID  = "M-0001"
	demoMerchant    = "Illustrated Books"
	demoAcquirerBIN = "400000"
	demoShopCode    = "merchant-activation"
	demoCardCode    = "1234"
	demoExpiry      = "203012"
	demoCreditLimit = 5000_00
)

// demoCommand is "setpay demo": the main job.
func demoCommand(stdout io.Writer) *ucli.Command {
	return &ucli.Command{
		Name:  "demo",
		Usage: "run the whole system locally: CA, gateway with its bank, merchant, a registered cardholder, a purchase and its capture",
		Description: "Creates a CA, starts the CA server, the gateway (with the simulated bank) and the merchant as separate\n" +
			"processes on loopback, registers the gateway, the merchant and a cardholder, buys --order for --amount,\n" +
			"waits for the merchant to capture it, and prints each step. Every link is HTTPS with mutual TLS.\n" +
			"Each party's database, logs and recorded messages are kept in --data-dir (DIR/ca, DIR/gateway,\n" +
			"DIR/merchant, DIR/cardholder); without it a temporary directory is used and removed.\n\n" +
			"The walkthrough (--step, --seed, --attack, --trace, --mermaid, --der-dir, --web) runs the same purchase in\n" +
			"one process with the protocol code every agent uses, on a fixed clock and seeded randomness, so that\n" +
			"every byte is reproducible, and shows each message's fields, what each party can read, and each\n" +
			"check. --attack NAME exits 0 when the attack is caught by the check expected, 1 otherwise.\n\n" +
			"Examples:\n   setpay demo --data-dir ./run --order \"2 x tea\" --amount 25.00\n" +
			"   setpay demo --step --seed 42\n   setpay demo --attack tamper-ds\n   setpay demo --attack list\n" +
			"   setpay demo --web --listen 127.0.0.1:8080",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "data-dir", Usage: "keep every party's files in `DIR` (must be empty or absent)", TakesFile: true},
			&ucli.StringFlag{Name: "pan", Usage: "the card number", Value: "4111111111111111"},
			&ucli.StringFlag{Name: "order", Usage: "the order description `TEXT`", Value: "1 x The Illustrated SET, paperback"},
			&ucli.StringFlag{Name: "amount", Usage: "the amount, in euros", Value: "42.00"},
			&ucli.StringFlag{Name: "suite", Usage: "the suite: pq (Ed25519, X-Wing) or nist (ECDSA P-256, DHKEM P-256)", Value: "pq"},
			&ucli.BoolFlag{Name: "keep", Usage: "leave the agents running and print how to reach them"},
			// The walkthrough (see lessonFlags).
			&ucli.BoolFlag{Name: "step", Usage: "walk through the purchase one message at a time (Enter: next, q: quit)"},
			&ucli.Uint64Flag{Name: "seed", Usage: "the seed of every random value of the walkthrough: the same seed, the same bytes"},
			&ucli.StringFlag{Name: "attack", Usage: "run the walkthrough with attack `NAME` and show the check that catches it (list: the attacks)"},
			&ucli.BoolFlag{Name: "no-color", Usage: "plain text, no colours"},
			&ucli.StringFlag{Name: "trace", Usage: "write the walkthrough, every message and view, as JSON to `FILE` (docs/TRACE.md)", TakesFile: true},
			&ucli.StringFlag{Name: "mermaid", Usage: "write the walkthrough as a Mermaid sequence diagram to `FILE`", TakesFile: true},
			&ucli.StringFlag{Name: "der-dir", Usage: "write each message of the walkthrough to `DIR`, one .der file each", TakesFile: true},
			&ucli.BoolFlag{Name: "web", Usage: "serve the walkthrough as a web page (all assets built in) until interrupted"},
			&ucli.StringFlag{Name: "listen", Usage: "the `ADDRESS` of --web", Value: "127.0.0.1:8080"},
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if isLesson(c) {
				return runLesson(ctx, c, stdout)
			}
			d := &demo{out: stdout, keep: c.Bool("keep")}
			var err error
			if d.pan, err = protocol.NewPAN(c.String("pan")); err != nil {
				return err
			}
			if d.amount, err = parseAmount(c.String("amount")); err != nil {
				return err
			}
			if d.suite, err = protocol.ParseSuite(c.String("suite")); err != nil {
				return err
			}
			d.order = c.String("order")
			if err := d.prepare(c.String("data-dir")); err != nil {
				return err
			}
			err = d.run(ctx)
			if stopErr := d.stop(); err == nil {
				err = stopErr
			}
			if err != nil {
				fmt.Fprintf(stdout, "\ndemo FAILED: %v\n", err)
				if d.tmp == "" || d.keep {
					fmt.Fprintf(stdout, "the parties' logs are in %s/*/log.txt\n", d.dir)
				}
				return errRejected{err}
			}
			return nil
		},
	}
}

type demo struct {
	out    io.Writer
	keep   bool
	pan    protocol.PAN
	order  string
	amount int64
	suite  protocol.Suite

	dir   string // the data directory
	tmp   string // the temporary directory to remove, if any
	exe   string
	procs []*proc
	step  int
	start time.Time
}

// prepare makes the data directory.
func (d *demo) prepare(dir string) error {
	d.start = time.Now()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "setpay-demo-")
		if err != nil {
			return err
		}
		d.dir, d.tmp = tmp, tmp
	} else {
		ents, err := os.ReadDir(dir)
		if err == nil && len(ents) > 0 {
			return fmt.Errorf("--data-dir %s is not empty: give an empty or new directory", dir)
		}
		if err := keyfile.MkdirAll(dir); err != nil {
			return err
		}
		if d.dir, err = filepath.Abs(dir); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the setpay binary to start the agents: %w", err)
	}
	d.exe = exe
	for _, p := range []string{"ca", "gateway", "merchant", "cardholder"} {
		if err := keyfile.MkdirAll(filepath.Join(d.dir, p)); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) path(elem ...string) string { return filepath.Join(append([]string{d.dir}, elem...)...) }

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "%2d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "    %s\n", fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	fmt.Fprintf(d.out, "setpay demo: suite %s, data in %s\n\n", d.suite, d.dir)
	suite := d.suite.String()
	root := d.path("ca", "ca", suite, "root.pem")

	// The issuer's accounts (read by the CA to confirm registrations and by
	// the gateway's bank to authorize) and the enrollment list.
	accounts := []map[string]any{{"pan": d.pan.Digits(), "expiry": demoExpiry, "activationCode": demoCardCode,
		"creditLimit": demoCreditLimit, "currency": 978}}
	enroll := []ca.Enrollment{
		{Role: protocol.RoleGateway, ID: demoGatewayID, Name: "setpay gateway", ActivationCode: demoGatewayCode},
		{Role: protocol.RoleMerchant, ID: demoMerchantID, Name: demoMerchant, AcquirerBIN: demoAcquirerBIN, ActivationCode: demoShopCode},
	}
	for name, v := range map[string]any{"accounts.json": accounts, "enroll.json": enroll} {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := keyfile.WriteFile(d.path(name), b, keyfile.PermKey); err != nil {
			return err
		}
	}

	if err := ca.Init(d.path("ca", "ca"), ca.Options{Suites: []protocol.Suite{d.suite}}); err != nil {
		return err
	}
	d.say("CA: created the %s hierarchy (root, brand, cardholder, merchant and gateway CAs) in %s", suite, d.path("ca", "ca"))
	caAddr, err := d.serve("ca", "ca", "serve", "--dir", d.path("ca", "ca"), "--step-addr", "", "--accounts", d.path("accounts.json"),
		"--enroll", d.path("enroll.json"))
	if err != nil {
		return err
	}
	caURL := "https://" + caAddr
	d.say("CA server: %s (registration, CRLs and BCI over TLS 1.3)", caURL)

	if err := d.command("gateway", "gateway", "register", "--dir", d.path("gateway"), "--ca", caURL, "--roots", root,
		"--id", demoGatewayID, "--code", demoGatewayCode); err != nil {
		return err
	}
	d.say("gateway %s registered: signature, key-exchange and TLS certificates from the gateway CA", demoGatewayID)
	gwAddr, err := d.serve("gateway", "gateway", "serve", "--dir", d.path("gateway"), "--ca", caURL, "--accounts", d.path("accounts.json"),
		"--wire-dir", d.path("gateway", "wire"))
	if err != nil {
		return err
	}
	gwURL := "https://" + gwAddr
	d.say("gateway: %s (mutual TLS, merchants only), with the issuer and acquirer behind it", gwURL)

	if err := d.command("merchant", "merchant", "register", "--dir", d.path("merchant"), "--ca", caURL, "--roots", root,
		"--id", demoMerchantID, "--acquirer-bin", demoAcquirerBIN, "--code", demoShopCode); err != nil {
		return err
	}
	d.say("merchant %s (%s) registered", demoMerchantID, demoMerchant)
	mAddr, err := d.serve("merchant", "merchant", "serve", "--dir", d.path("merchant"), "--ca", caURL, "--gateway", gwURL,
		"--custom-orders", "--capture-every", "300ms", "--wire-dir", d.path("merchant", "wire"))
	if err != nil {
		return err
	}
	mURL := "https://" + mAddr
	d.say("merchant: %s (mutual TLS, cardholders only)", mURL)

	if err := d.command("cardholder", "cardholder", "register", "--dir", d.path("cardholder", "wallet"), "--ca", caURL, "--roots", root,
		"--expiry", demoExpiry, "--code", demoCardCode); err != nil {
		return err
	}
	d.say("cardholder registered the card ending %s: the issuer confirmed it; the CA certified the wallet's keys", last4(d.pan))
	d.detail("the certificate carries a keyed hash of the card number, never the number")

	w, err := cardholder.Open(d.path("cardholder", "wallet"), keyfile.Store{}, nil)
	if err != nil {
		return err
	}
	wire, err := agent.NewWireLog(d.path("cardholder", "wire"))
	if err != nil {
		return err
	}
	sh := &cardholder.Shopper{Wallet: w, Suite: d.suite, Wire: wire}
	defer sh.Close()
	t0 := time.Now()
	rec, err := sh.Buy(ctx, mURL, merchant.OrderRequest{Description: d.order, Amount: d.amount})
	if err != nil {
		return fmt.Errorf("purchase: %w", purchaseError(err))
	}
	latency := time.Since(t0)
	d.say("order %s agreed with the merchant: %q, EUR %s", rec.Agreed.Order, rec.Agreed.Description, formatAmount(rec.Agreed.Amount))
	d.say("PInitReq -> PInitRes: the merchant chose suite %s and named its gateway; the cardholder checked its signature", rec.Suite)
	d.say("PReq: order information for the merchant, payment instruction sealed to the gateway, one dual signature over both")
	d.detail("the merchant checked the dual signature over the OI and forwarded the sealed PI in AuthReq")
	d.detail("the gateway opened the PI, checked the dual signature and the linkage, and asked the issuer")
	if err := rec.Err(); err != nil {
		return err
	}
	d.say("PRes: approved, EUR %s authorized (purchase round trip %s)", formatAmount(rec.AuthAmt.Value), latency.Round(time.Millisecond))

	st, err := d.waitCaptured(ctx, sh, mURL, rec.Agreed.Order)
	if err != nil {
		return err
	}
	d.say("CapReq -> CapRes: the merchant captured EUR %s at the gateway; the acquirer recorded it", formatAmount(st.Captured))

	fmt.Fprintf(d.out, "\nthe merchant never received the card number; the gateway never received the order description.\n")
	if d.tmp == "" || d.keep {
		fmt.Fprintf(d.out, "each party's recorded messages: %s/{cardholder,merchant,gateway}/wire\n", d.dir)
	}
	if d.keep {
		d.printKeep(caURL, gwURL, mURL)
	}
	fmt.Fprintf(d.out, "\nSUCCESS: order %s paid (EUR %s, authorized and captured) in %s\n", rec.Agreed.Order, formatAmount(st.Captured),
		time.Since(d.start).Round(10*time.Millisecond))
	return nil
}

// waitCaptured polls the order's status until it is captured (bounded).
func (d *demo) waitCaptured(ctx context.Context, sh *cardholder.Shopper, mURL, order string) (*merchant.Status, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := sh.Status(ctx, mURL, order)
		if err != nil {
			return nil, err
		}
		switch st.State {
		case "captured":
			return st, nil
		case "capture-refused":
			return nil, fmt.Errorf("the gateway refused the capture: %s (code %d)", protocol.Code(st.Code).String(), st.Code)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("order %s still %s after 30 s; see %s", order, st.State, d.path("merchant", "log.txt"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *demo) printKeep(caURL, gwURL, mURL string) {
	fmt.Fprintf(d.out, "\nthe agents keep running:\n")
	for _, p := range d.procs {
		fmt.Fprintf(d.out, "  %-9s pid %d, log %s\n", p.name, p.cmd.Process.Pid, p.log)
	}
	fmt.Fprintf(d.out, "  CA %s, gateway %s, merchant %s\n", caURL, gwURL, mURL)
	fmt.Fprintf(d.out, "buy again (with setpay built: go build -o setpay ./cmd/setpay):\n  setpay cardholder buy --dir %s --merchant %s --sku set-book\n", d.path("cardholder", "wallet"), mURL)
	var pids []string
	for _, p := range d.procs {
		pids = append(pids, fmt.Sprint(p.cmd.Process.Pid))
	}
	fmt.Fprintf(d.out, "stop them:\n  kill %s\n", strings.Join(pids, " "))
}

// proc is an agent process the demo started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// serve starts "setpay ARGS --addr 127.0.0.1:0 --addr-file ..." as party's
// process, logging to DIR/party/log.txt, and returns the address it
// listens on.
func (d *demo) serve(party string, args ...string) (string, error) {
	addrFile := d.path(party, "addr")
	args = append(args, "--addr", "127.0.0.1:0", "--addr-file", addrFile)
	p, err := d.spawn(party, args...)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("the %s stopped at start: %s", party, lastLines(p.log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the %s did not start within 60 s; see %s", party, p.log)
		}
	}
}

func (d *demo) spawn(party string, args ...string) (*proc, error) {
	logPath := d.path(party, "log.txt")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(d.exe, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "SETPAY_PAN=") // no card number in any agent's environment
	if d.keep {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // survive the demo's terminal
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{name: party, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	d.procs = append(d.procs, p)
	return p, nil
}

// command runs "setpay ARGS" to completion, logging to DIR/party/log.txt;
// the cardholder's card number goes in its environment, not its arguments.
func (d *demo) command(party string, args ...string) error {
	logPath := d.path(party, "log.txt")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(d.exe, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "SETPAY_PAN=")
	if party == "cardholder" {
		cmd.Env = append(cmd.Env, "SETPAY_PAN="+d.pan.Digits())
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("setpay %s: %v: %s", strings.Join(args[:2], " "), err, lastLines(logPath))
	}
	return nil
}

// stop stops the agents (SIGTERM, then SIGKILL after 10 s) unless --keep,
// and removes a temporary data directory.
func (d *demo) stop() error {
	if d.keep {
		return nil
	}
	var errs []error
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("the %s did not stop on SIGTERM", p.name))
		}
	}
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
	return errors.Join(errs...)
}

// lastLines returns the end of a log file, for an error message.
func lastLines(name string) string {
	b, _ := os.ReadFile(name)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// last4 is the end of a card number, as receipts show it.
func last4(p protocol.PAN) string { d := p.Digits(); return d[len(d)-4:] }
