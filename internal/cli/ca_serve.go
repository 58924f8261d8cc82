package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/internal/mtls"
)

// caServeCommand is "setpay ca serve": the CA server.
func caServeCommand(stdout io.Writer) *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "run the CA server: registration, CA certificates, CRLs and BCIs over HTTPS, and smallstep's API",
		Description: "Serves on --addr (TLS 1.3, the CA's TLS certificate):\n" +
			"   POST /register                 a DER registration message (application/setpay)\n" +
			"   GET  /ca/{suite}/roots.pem     the suite's root certificate\n" +
			"   GET  /ca/{suite}/chain.pem     the brand and role CA certificates\n" +
			"   GET  /ca/{suite}/{ca}.crl      the CRL of root, brand, cardholder-ca, merchant-ca or gateway-ca\n" +
			"   GET  /ca/{suite}/bci           the Brand CRL Identifier (DER)\n" +
			"and smallstep's HTTP API (read-only: /health, /version, /roots, /intermediates, /crl) on --step-addr\n" +
			"(empty: none). Card accounts come from --accounts (a JSON array of accounts); merchants and gateways\n" +
			"allowed to register from --enroll (a JSON array of enrollments). If SSLKEYLOGFILE is set, TLS secrets\n" +
			"are appended to that file: anyone with it can decrypt the traffic (debugging only).\n" +
			"Stops on SIGINT or SIGTERM.\n\n" +
			"Example:\n   setpay ca serve --dir ./ca --accounts accounts.json --enroll enrollments.json",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "dir", Usage: "the CA directory `DIR`", Required: true, TakesFile: true},
			&ucli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase of the CA's keys from `FILE` (its first line)", TakesFile: true},
			&ucli.StringFlag{Name: "addr", Usage: "the `ADDRESS` of the setpay endpoints", Value: "127.0.0.1:8443"},
			&ucli.StringFlag{Name: "addr-file", Usage: "write the address listened on to `FILE` once listening", TakesFile: true},
			&ucli.StringFlag{Name: "step-addr", Usage: "the `ADDRESS` of smallstep's API (empty: none)", Value: "127.0.0.1:8444"},
			&ucli.StringFlag{Name: "accounts", Usage: "the card accounts, a JSON array, in `FILE`", Required: true, TakesFile: true},
			&ucli.StringFlag{Name: "enroll", Usage: "the merchant and gateway enrollments, a JSON array, in `FILE`", TakesFile: true},
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Len() > 0 {
				return fmt.Errorf("ca serve takes no arguments (got %q)", c.Args().First())
			}
			issuer, err := ca.LoadAccountIssuer(c.String("accounts"))
			if err != nil {
				return err
			}
			var enrollments []ca.Enrollment
			if name := c.String("enroll"); name != "" {
				b, err := os.ReadFile(name)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &enrollments); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			o := ca.ServerOptions{Addr: c.String("addr"), StepAddr: c.String("step-addr"), Issuer: issuer}
			kl, err := mtls.KeyLogFromEnv(os.Stderr)
			if err != nil {
				return err
			}
			if kl != nil {
				defer kl.Close()
				o.KeyLogWriter = kl
			}
			cc, err := openCA(c)
			if err != nil {
				return err
			}
			defer cc.Close()
			reg, err := ca.NewRegistrar(cc, issuer)
			if err != nil {
				return err
			}
			defer reg.Close()
			for i, e := range enrollments {
				if err := reg.Enroll(e); err != nil {
					return fmt.Errorf("%s: enrollment %d (%q): %w", c.String("enroll"), i, e.ID, err)
				}
			}
			srv, err := ca.NewServer(cc, reg, o)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := writeAddr(c.String("addr-file"), srv.Addr()); err != nil {
				srv.Close()
				return err
			}
			fmt.Fprintf(stdout, "serving https://%s\n", srv.Addr())
			if a := srv.StepAddr(); a != "" {
				fmt.Fprintf(stdout, "step API https://%s\n", a)
			}
			return srv.Serve(ctx)
		},
	}
}
