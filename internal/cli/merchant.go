package cli

import (
	"context"
	"io"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// merchantCommand is "setpay merchant": register, serve.
func merchantCommand(stdout io.Writer) *ucli.Command {
	return &ucli.Command{
		Name:  "merchant",
		Usage: "the merchant: catalogue, orders, purchases from cardholders, authorization and capture at the gateway",
		Commands: []*ucli.Command{
			{
				Name:  "register",
				Usage: "register the merchant with the CA: signature, key-exchange and TLS certificates",
				Description: "The merchant must be on the CA's enrollment list (ca serve --enroll) with --id, --acquirer-bin and --code.\n\n" +
					"Example:\n   setpay merchant register --dir ./shop --roots ./ca/pq/root.pem --id M-0001 --acquirer-bin 400000 --code SHOP-SECRET",
				Flags: append(registerFlags(), dirFlag("merchant", "SETPAY_MERCHANT_DIR"),
					&ucli.StringFlag{Name: "id", Usage: "the merchant's `ID` on the enrollment list", Required: true},
					&ucli.StringFlag{Name: "acquirer-bin", Usage: "the `BIN` of the merchant's acquirer", Required: true}),
				Action: func(ctx context.Context, c *ucli.Command) error {
					return registerMeAq(ctx, c, stdout, protocol.RoleMerchant, protocol.Identity{ID: c.String("id"), AcquirerBIN: c.String("acquirer-bin")})
				},
			},
			{
				Name:  "serve",
				Usage: "run the merchant: the shop over mutual TLS for cardholders, and the gateway client",
				Description: "Serves on --addr (TLS 1.3; only cardholders' TLS certificates are accepted):\n" +
					"   GET  /catalogue          the catalogue (JSON)\n" +
					"   POST /orders             agree an order: {\"sku\":..., \"quantity\":...} or, with --custom-orders,\n" +
					"                            {\"description\":..., \"amount\": minor units}\n" +
					"   GET  /orders/{id}        the order's status, to its buyer\n" +
					"   POST /orders/{id}/set    PInitReq -> PInitRes, PReq -> PRes\n" +
					"Authorizes at --gateway, and captures authorized orders in batches every --capture-every.\n" +
					"The order store is DIR/merchant.db. If SSLKEYLOGFILE is set, TLS secrets are appended to that file:\n" +
					"anyone with it can decrypt the traffic (teaching and debugging only). Stops on SIGINT or SIGTERM.\n\n" +
					"Example:\n   setpay merchant serve --dir ./shop --gateway https://127.0.0.1:8445",
				Flags: append(serveFlags("127.0.0.1:8446"), dirFlag("merchant", "SETPAY_MERCHANT_DIR"),
					&ucli.StringFlag{Name: "gateway", Usage: "the payment gateway's `URL`", Value: defaultGW, Sources: ucli.EnvVars("SETPAY_GATEWAY")},
					&ucli.BoolFlag{Name: "custom-orders", Usage: "accept orders by description and amount, not only from the catalogue"},
					&ucli.BoolFlag{Name: "require-cert", Usage: "refuse purchases without a cardholder certificate (no dual signature)"},
					&ucli.DurationFlag{Name: "capture-every", Usage: "capture authorized orders this often", Value: 10 * time.Second},
				),
				Action: func(ctx context.Context, c *ucli.Command) error {
					if err := noArgs(c); err != nil {
						return err
					}
					ctx, stop := signalContext(ctx)
					defer stop()
					log := logger("merchant")
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
					m, err := merchant.Open(merchant.Config{Dir: c.String("dir"), Keys: ks, Gateway: strings.TrimRight(c.String("gateway"), "/"),
						CustomOrders: c.Bool("custom-orders"), RequireCert: c.Bool("require-cert"), KeyLog: kl, Wire: wire, Log: log})
					if err != nil {
						return err
					}
					defer m.Close()
					tlsCert := m.TLSCertificate()
					if err := refreshTrust(ctx, c, m.Trust(), &tlsCert, kl, log); err != nil {
						return err
					}
					go m.CaptureEvery(ctx, c.Duration("capture-every"))
					return serve(ctx, c, stdout, "merchant", wire.Handler(m.Handler()), m.TLSConfig(kl), log)
				},
			},
		},
	}
}
