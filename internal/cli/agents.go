package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

// This file holds what the agents' commands (gateway, merchant, cardholder)
// share: their flags, the connection to the CA server, the trust store's
// refresh, and the serving loop.

// Environment variables every agent command reads (flags win).
const (
	envCA       = "SETPAY_CA"
	envWireDir  = "SETPAY_WIRE_DIR"
	defaultCA   = "https://127.0.0.1:8443"
	defaultGW   = "https://127.0.0.1:8445"
	defaultShop = "https://127.0.0.1:8446"
)

func dirFlag(party, env string) ucli.Flag {
	return &ucli.StringFlag{Name: "dir", Usage: "the " + party + "'s data directory `DIR`", Required: true, TakesFile: true,
		Sources: ucli.EnvVars(env)}
}

func caFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "ca", Usage: "the CA server's `URL`", Value: defaultCA, Sources: ucli.EnvVars(envCA)}
}

func passFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "passphrase-file", Usage: "encrypt or decrypt the party's keys with the passphrase in `FILE` (its first line)", TakesFile: true}
}

func wireFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "wire-dir", Usage: "record every message sent and received (after TLS) in `DIR`, one file each (for teaching and tests)",
		TakesFile: true, Sources: ucli.EnvVars(envWireDir)}
}

func registerFlags() []ucli.Flag {
	return []ucli.Flag{
		caFlag(), passFlag(),
		&ucli.StringSliceFlag{Name: "roots", Usage: "the trusted root certificate (PEM) of each suite, as the CA published it (ca init writes DIR/<suite>/root.pem) (repeatable)", Required: true, TakesFile: true},
		&ucli.StringSliceFlag{Name: "suite", Usage: "register for this suite, pq or nist (repeatable; default: every suite of --roots)"},
		&ucli.StringFlag{Name: "code", Usage: "the activation `CODE` the issuer, acquirer or brand gave out of band", Required: true},
		&ucli.StringFlag{Name: "brand", Usage: "the brand", Value: "setpay"},
	}
}

// keys is the key store of --passphrase-file.
func keys(c *ucli.Command) (keyfile.Store, error) {
	pass, err := readPassphrase(c.String("passphrase-file"))
	return keyfile.Store{Passphrase: pass, Rand: agent.LockedRand(nil)}, err
}

// rootsBySuite reads the --roots files and files each root certificate
// under its suite (by its key: Ed25519 is pq, ECDSA P-256 is nist).
func rootsBySuite(files []string) (map[protocol.Suite][][]byte, error) {
	out := map[protocol.Suite][][]byte{}
	for _, f := range files {
		certs, err := keyfile.ReadCerts(f)
		if err != nil {
			return nil, err
		}
		for _, der := range certs {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			switch x.PublicKey.(type) {
			case ed25519.PublicKey:
				out[protocol.SuitePQ] = append(out[protocol.SuitePQ], der)
			case *ecdsa.PublicKey:
				out[protocol.SuiteNIST] = append(out[protocol.SuiteNIST], der)
			default:
				return nil, fmt.Errorf("%s: a root with a %T key belongs to no suite", f, x.PublicKey)
			}
		}
	}
	return out, nil
}

// registrationSuites returns the suites to register for, with their roots.
func registrationSuites(c *ucli.Command) (map[protocol.Suite][][]byte, []protocol.Suite, error) {
	roots, err := rootsBySuite(c.StringSlice("roots"))
	if err != nil {
		return nil, nil, err
	}
	var suites []protocol.Suite
	if names := c.StringSlice("suite"); len(names) > 0 {
		for _, n := range names {
			s, err := protocol.ParseSuite(n)
			if err != nil {
				return nil, nil, err
			}
			if roots[s] == nil {
				return nil, nil, fmt.Errorf("no %s root among --roots", s)
			}
			suites = append(suites, s)
		}
	} else {
		for _, s := range protocol.Suites {
			if roots[s] != nil {
				suites = append(suites, s)
			}
		}
	}
	return roots, suites, nil
}

// caClient is an HTTPS client of the CA server: it presents cert (nil:
// none) and accepts the CA's TLS certificate under trusts.
func caClient(cert *tls.Certificate, trusts mtls.Trusts, keyLog io.Writer) *http.Client {
	var tc = mtls.Client(cert, trusts, keyLog, protocol.CertCATLS)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
}

// registration fills the fields of an agent.Registration common to every
// role, for suite s.
func registration(c *ucli.Command, role protocol.Role, s protocol.Suite, roots map[protocol.Suite][][]byte, keyLog io.Writer) *agent.Registration {
	trusts := func() []*protocol.Trust {
		t, err := protocol.NewTrust(roots[s]...)
		if err != nil {
			return nil
		}
		return []*protocol.Trust{t}
	}
	return &agent.Registration{CA: strings.TrimRight(c.String("ca"), "/"), Client: caClient(nil, trusts, keyLog), Role: role, Suite: s,
		Roots: roots[s], Brand: c.String("brand"), Rand: agent.LockedRand(nil), ActivationCode: c.String("code")}
}

// logger is an agent's log: text to stderr, with the party's name.
func logger(party string) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("party", party)
}

// keyLog opens SSLKEYLOGFILE if it is set (nil otherwise).
func keyLog() (io.WriteCloser, error) { return mtls.KeyLogFromEnv(os.Stderr) }

// serveFlags are the flags of the serving agents.
func serveFlags(defaultAddr string) []ucli.Flag {
	return []ucli.Flag{
		caFlag(), passFlag(), wireFlag(),
		&ucli.StringFlag{Name: "addr", Usage: "listen on `ADDRESS` (port 0: a free port)", Value: defaultAddr},
		&ucli.StringFlag{Name: "addr-file", Usage: "write the address listened on to `FILE` once listening", TakesFile: true},
		&ucli.DurationFlag{Name: "refresh", Usage: "fetch the CA's BCI and CRLs this often", Value: time.Minute},
	}
}

// refreshTrust installs the CA's revocation state once (failing if the CA
// cannot be reached) and then refreshes it every --refresh in the
// background.
func refreshTrust(ctx context.Context, c *ucli.Command, ts *agent.TrustStore, cert *tls.Certificate, keyLog io.Writer, log *slog.Logger) error {
	url := strings.TrimRight(c.String("ca"), "/")
	cl := caClient(cert, ts.All, keyLog)
	if err := ts.Refresh(ctx, cl, url); err != nil {
		return fmt.Errorf("revocation state from the CA at %s: %w", url, err)
	}
	go ts.RefreshEvery(ctx, c.Duration("refresh"), cl, url, log)
	return nil
}

// serve runs an agent's HTTPS server until SIGINT or SIGTERM.
func serve(ctx context.Context, c *ucli.Command, stdout io.Writer, party string, h http.Handler, tc *tls.Config, log *slog.Logger) error {
	srv, err := agent.Listen(c.String("addr"), h, tc, log)
	if err != nil {
		return err
	}
	if err := writeAddr(c.String("addr-file"), srv.Addr()); err != nil {
		srv.Close()
		return err
	}
	fmt.Fprintf(stdout, "%s serving https://%s\n", party, srv.Addr())
	log.Info("serving", "addr", srv.Addr())
	return srv.Serve(ctx)
}

// writeAddr writes addr to file (nothing if file is ""), atomically, so
// that whoever waits for the file reads a whole address.
func writeAddr(file, addr string) error {
	if file == "" {
		return nil
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// signalContext is ctx cancelled on SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// parseAmount reads an amount in major units ("42", "42.5", "42.50") as
// minor units (2 decimals).
func parseAmount(s string) (int64, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if len(frac) > 2 {
		return 0, fmt.Errorf("amount %q has more than 2 decimals", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseUint(whole, 10, 32)
	f, err2 := strconv.ParseUint(frac, 10, 8)
	if err1 != nil || err2 != nil || w*100+f == 0 {
		return 0, fmt.Errorf("amount %q is not a positive number like 42.00", s)
	}
	return int64(w*100 + f), nil
}

// formatAmount writes minor units as major units with 2 decimals.
func formatAmount(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

// currencyName names the currencies the demo uses.
func currencyName(c int) string {
	switch c {
	case 978:
		return "EUR"
	case 840:
		return "USD"
	}
	return strconv.Itoa(c)
}

func noArgs(c *ucli.Command) error {
	if c.Args().Len() > 0 {
		return fmt.Errorf("%s takes no arguments (got %q)", c.FullName(), c.Args().First())
	}
	return nil
}
