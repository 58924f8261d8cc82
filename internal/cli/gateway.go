package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/gateway"
	"github.com/setpay/setpay/gateway/bank"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

const fileBank = "bank.db"

// gatewayCommand is "setpay gateway": register, serve.
func gatewayCommand(stdout io.Writer) *ucli.Command {
	return &ucli.Command{
		Name:  "gateway",
		Usage: "the payment gateway, with the simulated bank (issuer and acquirer) behind it",
		Commands: []*ucli.Command{
			{
				Name:  "register",
				Usage: "register the gateway with the CA: signature, key-exchange and TLS certificates",
				Description: "The gateway must be on the CA's enrollment list (ca serve --enroll) with --id and --code.\n\n" +
					"Example:\n   setpay gateway register --dir ./gw --roots ./ca/pq/root.pem --id G-0001 --code GW-SECRET",
				Flags: append(registerFlags(), dirFlag("gateway", "SETPAY_GATEWAY_DIR"),
					&ucli.StringFlag{Name: "id", Usage: "the gateway's `ID` on the enrollment list", Required: true}),
				Action: func(ctx context.Context, c *ucli.Command) error {
					return registerMeAq(ctx, c, stdout, protocol.RoleGateway, protocol.Identity{ID: c.String("id")})
				},
			},
			{
				Name:  "serve",
				Usage: "run the gateway: AuthReq and CapReq from merchants over mutual TLS, translated for the bank",
				Description: "Serves on --addr (TLS 1.3; only merchants' TLS certificates are accepted):\n" +
					"   POST /auth             AuthReq -> AuthRes\n" +
					"   POST /capture          CapReq -> CapRes\n" +
					"   GET  /certs/{suite}    the gateway's key-exchange certificate chain\n" +
					"The bank (DIR/bank.db) loads its card accounts from --accounts (a JSON array: pan, expiry YYYYMM,\n" +
					"creditLimit and perTransactionLimit in minor units, currency, status active|blocked|fraud).\n" +
					"The ledger is DIR/gateway.db. If SSLKEYLOGFILE is set, TLS secrets are appended to that file:\n" +
					"anyone with it can decrypt the traffic (teaching and debugging only). Stops on SIGINT or SIGTERM.\n\n" +
					"Example:\n   setpay gateway serve --dir ./gw --accounts accounts.json",
				Flags: append(serveFlags("127.0.0.1:8445"), dirFlag("gateway", "SETPAY_GATEWAY_DIR"),
					&ucli.StringFlag{Name: "accounts", Usage: "the bank's card accounts, a JSON array, in `FILE` (loaded at every start)", TakesFile: true},
					&ucli.IntFlag{Name: "velocity-limit", Usage: "approvals per card per --velocity-window before the issuer declines", Value: 10},
					&ucli.DurationFlag{Name: "velocity-window", Usage: "the window of --velocity-limit", Value: time.Hour},
					&ucli.IntFlag{Name: "max-over-percent", Usage: "how far above the cardholder's amount a merchant may ask to authorize, in percent"},
				),
				Action: func(ctx context.Context, c *ucli.Command) error {
					if err := noArgs(c); err != nil {
						return err
					}
					ctx, stop := signalContext(ctx)
					defer stop()
					log := logger("gateway")
					ks, err := keys(c)
					if err != nil {
						return err
					}
					kl, err := keyLog()
					if err != nil {
						return err
					}
					if kl != nil {
						defer kl.Close()
					}
					wire, err := agent.NewWireLog(c.String("wire-dir"))
					if err != nil {
						return err
					}
					dir := c.String("dir")
					if err := agent.CreatePrivate(filepath.Join(dir, fileBank)); err != nil {
						return err
					}
					b, err := bank.Open(filepath.Join(dir, fileBank), bank.Options{VelocityLimit: int(c.Int("velocity-limit")), VelocityWindow: c.Duration("velocity-window")})
					if err != nil {
						return err
					}
					defer b.Close()
					if f := c.String("accounts"); f != "" {
						if err := b.LoadAccounts(ctx, f); err != nil {
							return err
						}
					}
					g, err := gateway.Open(gateway.Config{Dir: dir, Keys: ks, Bank: b, Policy: protocol.AmountPolicy{MaxOverPercent: int64(c.Int("max-over-percent"))}, Log: log})
					if err != nil {
						return err
					}
					defer g.Close()
					tlsCert := g.TLSCertificate()
					if err := refreshTrust(ctx, c, g.Trust(), &tlsCert, kl, log); err != nil {
						return err
					}
					return serve(ctx, c, stdout, "gateway", wire.Handler(g.Handler()), g.TLSConfig(kl), log)
				},
			},
		},
	}
}

// registerMeAq registers a merchant or gateway for each suite asked.
func registerMeAq(ctx context.Context, c *ucli.Command, stdout io.Writer, role protocol.Role, id protocol.Identity) error {
	if err := noArgs(c); err != nil {
		return err
	}
	roots, suites, err := registrationSuites(c)
	if err != nil {
		return err
	}
	ks, err := keys(c)
	if err != nil {
		return err
	}
	kl, err := keyLog()
	if err != nil {
		return err
	}
	if kl != nil {
		defer kl.Close()
	}
	dir := c.String("dir")
	for _, s := range suites {
		r := registration(c, role, s, roots, kl)
		r.Identity = id
		out, err := agent.Register(ctx, r)
		if err != nil {
			return errRejected{fmt.Errorf("%s registration (%s): %w", role, s, err)}
		}
		if err := agent.SaveCredentials(dir, ks, out.Credentials, out.Keys); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s registered (%s): signature, key-exchange and TLS certificates in %s\n", role, id.ID, s, filepath.Join(dir, s.String()))
	}
	return nil
}
