package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/cardholder"
	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/merchant"
	"github.com/setpay/setpay/protocol"
)

// cardholderCommand is "setpay cardholder": register, buy.
func cardholderCommand(stdout io.Writer) *ucli.Command {
	return &ucli.Command{
		Name:  "cardholder",
		Usage: "the cardholder: a wallet, registration with the CA, purchases from merchants",
		Commands: []*ucli.Command{
			{
				Name:  "register",
				Usage: "register a card with the CA: the issuer confirms it, the CA certifies the wallet's keys",
				Description: "Writes the wallet to --dir: keys and certificates per suite, and card.json (0600) with the card\n" +
					"number, its expiry and the registration secrets. The card number is read from --pan or\n" +
					"SETPAY_PAN, never printed.\n\n" +
					"Example:\n   setpay cardholder register --dir ./wallet --roots ./ca/pq/root.pem --pan 4111111111111111 --expiry 203012 --code 1234",
				Flags: append(registerFlags(), dirFlag("cardholder", "SETPAY_CARDHOLDER_DIR"),
					&ucli.StringFlag{Name: "pan", Usage: "the card number", Required: true, Sources: ucli.EnvVars("SETPAY_PAN")},
					&ucli.StringFlag{Name: "expiry", Usage: "the card's expiry, YYYYMM", Required: true}),
				Action: func(ctx context.Context, c *ucli.Command) error {
					if err := noArgs(c); err != nil {
						return err
					}
					pan, err := protocol.NewPAN(c.String("pan"))
					if err != nil {
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
					for _, s := range suites {
						r := registration(c, protocol.RoleCardholder, s, roots, kl)
						r.PAN, r.Expiry = pan, c.String("expiry")
						w, err := cardholder.Register(ctx, c.String("dir"), &cardholder.RegisterParams{Registration: *r, Keys: ks})
						if err != nil {
							return errRejected{fmt.Errorf("cardholder registration (%s): %w", s, err)}
						}
						fmt.Fprintf(stdout, "card ending %s registered (%s): signature and TLS certificates in %s\n", last4(pan), s, w.Dir)
					}
					return nil
				},
			},
			{
				Name:  "buy",
				Usage: "buy from a merchant: agree an order, then PInitReq/PInitRes and PReq/PRes over mutual TLS",
				Description: "Orders --sku (with --quantity) from the merchant's catalogue, or --order TEXT for --amount where\n" +
					"the merchant takes custom orders. Prints the outcome; exits 0 when the purchase is approved,\n" +
					"1 when it is declined or refused (with the reason or the error code).\n\n" +
					"Example:\n   setpay cardholder buy --dir ./wallet --merchant https://127.0.0.1:8446 --sku set-book",
				Flags: []ucli.Flag{
					dirFlag("cardholder", "SETPAY_CARDHOLDER_DIR"), passFlag(), wireFlag(),
					&ucli.StringFlag{Name: "merchant", Usage: "the merchant's `URL`", Value: defaultShop, Sources: ucli.EnvVars("SETPAY_MERCHANT")},
					&ucli.StringFlag{Name: "sku", Usage: "a catalogue article"},
					&ucli.IntFlag{Name: "quantity", Usage: "how many of --sku", Value: 1},
					&ucli.StringFlag{Name: "order", Usage: "a custom order's description `TEXT`"},
					&ucli.StringFlag{Name: "amount", Usage: "a custom order's amount, e.g. 42.00"},
					&ucli.StringFlag{Name: "suite", Usage: "offer only this suite (default: every suite of the wallet)"},
					&ucli.BoolFlag{Name: "unsigned", Usage: "pay without the cardholder certificate (no dual signature); merchants may refuse (code 47)"},
				},
				Action: func(ctx context.Context, c *ucli.Command) error {
					if err := noArgs(c); err != nil {
						return err
					}
					var o merchant.OrderRequest
					switch {
					case c.String("sku") != "" && c.String("order") == "":
						o.SKU, o.Quantity = c.String("sku"), int(c.Int("quantity"))
					case c.String("order") != "" && c.String("sku") == "":
						amt, err := parseAmount(c.String("amount"))
						if err != nil {
							return err
						}
						o.Description, o.Amount = c.String("order"), amt
					default:
						return errors.New("give --sku, or --order with --amount")
					}
					ks, err := keys(c)
					if err != nil {
						return err
					}
					w, err := cardholder.Open(c.String("dir"), ks, nil)
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
					sh := &cardholder.Shopper{Wallet: w, KeyLog: kl, Wire: wire, Unsigned: c.Bool("unsigned")}
					if n := c.String("suite"); n != "" {
						if sh.Suite, err = protocol.ParseSuite(n); err != nil {
							return err
						}
					}
					defer sh.Close()
					rec, err := sh.Buy(ctx, strings.TrimRight(c.String("merchant"), "/"), o)
					if err != nil {
						return errRejected{purchaseError(err)}
					}
					fmt.Fprintf(stdout, "order %s: %q for %s %s\n", rec.Agreed.Order, rec.Agreed.Description, currencyName(rec.Agreed.Currency), formatAmount(rec.Agreed.Amount))
					if err := rec.Err(); err != nil {
						fmt.Fprintf(stdout, "declined: %s (the issuer's reason, code %d)\n", rec.Reason, int(rec.Reason))
						return errRejected{err}
					}
					fmt.Fprintf(stdout, "approved: %s %s authorized\n", currencyName(int(rec.AuthAmt.Currency)), formatAmount(rec.AuthAmt.Value))
					return nil
				},
			},
		},
	}
}

// purchaseError says who refused a purchase and with which code.
func purchaseError(err error) error {
	var re *agent.RemoteError
	if errors.As(err, &re) {
		return fmt.Errorf("refused by the merchant: %s (code %d)%s", re.Data.Code.String(), int(re.Data.Code), detail(re.Data.Detail))
	}
	if code := protocol.CodeOf(err); code != 0 {
		return fmt.Errorf("the cardholder's check failed: %s (code %d): %w", code.String(), int(code), err)
	}
	return err
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
