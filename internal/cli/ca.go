package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/protocol"
)

// caCommand is "setpay ca": the embedded certificate authority.
func caCommand(stdout io.Writer) *ucli.Command {
	// Flags hold state: each command gets its own.
	dir := func() ucli.Flag {
		return &ucli.StringFlag{Name: "dir", Usage: "the CA directory `DIR`", Required: true, TakesFile: true}
	}
	pass := func() ucli.Flag {
		return &ucli.StringFlag{Name: "passphrase-file", Usage: "read the passphrase of the CA's keys from `FILE` (its first line)", TakesFile: true}
	}
	return &ucli.Command{
		Name:  "ca",
		Usage: "the embedded certificate authority: create, list, revoke",
		Commands: []*ucli.Command{
			{
				Name:  "init",
				Usage: "create a CA: root, brand and role CAs for each suite, with their keys and databases",
				Description: "Creates DIR (or fills an empty DIR): for each suite DIR/<suite>/ holds the certificates (*.pem),\n" +
					"the private keys (*.key, 0600, encrypted when a passphrase file is given) and one database per\n" +
					"authority (db/*.db). Prints the suites created and the root certificates' SHA-256 thumbprints.\n\n" +
					"Examples:\n   setpay ca init --dir ./ca\n" +
					"   setpay ca init --dir ./ca --suite pq --brand TestBrand --passphrase-file ./pass --host ca.example",
				Flags: []ucli.Flag{
					dir(),
					&ucli.StringSliceFlag{Name: "suite", Usage: "a suite to create: pq or nist (repeatable; default both)"},
					&ucli.StringFlag{Name: "brand", Usage: "the brand name in every certificate", Value: ca.DefaultBrand},
					pass(),
					&ucli.StringSliceFlag{Name: "host", Usage: "a DNS name or IP address of the CA server's TLS certificate (repeatable; default localhost, 127.0.0.1, ::1)"},
				},
				Action: func(_ context.Context, c *ucli.Command) error {
					if c.Args().Len() > 0 {
						return fmt.Errorf("ca init takes no arguments (got %q)", c.Args().First())
					}
					o := ca.Options{Brand: c.String("brand"), Hosts: c.StringSlice("host")}
					for _, name := range c.StringSlice("suite") {
						s, err := protocol.ParseSuite(name)
						if err != nil {
							return fmt.Errorf("--suite %q: want pq or nist", name)
						}
						o.Suites = append(o.Suites, s)
					}
					var err error
					if o.Passphrase, err = readPassphrase(c.String("passphrase-file")); err != nil {
						return err
					}
					if err := ca.Init(c.String("dir"), o); err != nil {
						return err
					}
					if len(o.Suites) == 0 {
						o.Suites = protocol.Suites
					}
					for _, s := range o.Suites {
						// The root certificate, as the package documents the layout.
						b, err := os.ReadFile(filepath.Join(c.String("dir"), s.String(), "root.pem"))
						if err != nil {
							return err
						}
						p, _ := pem.Decode(b)
						if p == nil {
							return fmt.Errorf("%s root.pem is not PEM", s)
						}
						th := protocol.ThumbprintOf(p.Bytes)
						fmt.Fprintf(stdout, "%s: root certificate %s/root.pem, SHA-256 %x\n", s, s, th[:])
					}
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list every certificate the CA issued, with its status",
				Description: "One line per certificate: suite, issuing CA, serial number (decimal), type, end of validity,\n" +
					"status (valid, expired, revoked (reason)) and subject.\n\n" +
					"Example:\n   setpay ca list --dir ./ca",
				Flags: []ucli.Flag{dir(), pass()},
				Action: func(_ context.Context, c *ucli.Command) error {
					cc, err := openCA(c)
					if err != nil {
						return err
					}
					defer cc.Close()
					recs, err := cc.List()
					if err != nil {
						return err
					}
					w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "SUITE\tISSUER\tSERIAL\tTYPE\tNOT AFTER\tSTATUS\tSUBJECT")
					now := time.Now()
					for _, r := range recs {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Suite, r.Issuer, r.Serial, r.Type,
							r.NotAfter.UTC().Format("2006-01-02"), r.Status(now), r.Subject)
					}
					return w.Flush()
				},
			},
			{
				Name:  "revoke",
				Usage: "revoke a certificate by serial number; its CA's CRL and the BCI are reissued",
				Description: "Reasons (RFC 5280): " + strings.Join(ca.ReasonNames(), ", ") + ".\n\n" +
					"Example:\n   setpay ca revoke --dir ./ca --serial 123456789 --reason keyCompromise",
				Flags: []ucli.Flag{
					dir(), pass(),
					&ucli.StringFlag{Name: "serial", Usage: "the serial number, decimal (as ca list shows it) or 0x-prefixed hex", Required: true},
					&ucli.StringFlag{Name: "reason", Usage: "the revocation reason", Value: "unspecified"},
					&ucli.StringFlag{Name: "comment", Usage: "a note kept in the CA's records (not in the CRL)"},
				},
				Action: func(ctx context.Context, c *ucli.Command) error {
					serial, ok := new(big.Int).SetString(c.String("serial"), 0)
					if !ok || serial.Sign() <= 0 {
						return fmt.Errorf("--serial %q is not a positive number", c.String("serial"))
					}
					reason, err := ca.ParseReason(c.String("reason"))
					if err != nil {
						return err
					}
					cc, err := openCA(c)
					if err != nil {
						return err
					}
					defer cc.Close()
					if err := cc.Revoke(ctx, serial, reason, c.String("comment")); err != nil {
						if errors.Is(err, ca.ErrNotFound) {
							return fmt.Errorf("%w (setpay ca list shows the serial numbers)", err)
						}
						return err
					}
					fmt.Fprintf(stdout, "revoked %s (%s)\n", serial, reason)
					return nil
				},
			},
			caServeCommand(stdout),
		},
	}
}

// openCA opens the CA of --dir with the passphrase of --passphrase-file.
func openCA(c *ucli.Command) (*ca.CA, error) {
	pass, err := readPassphrase(c.String("passphrase-file"))
	if err != nil {
		return nil, err
	}
	cc, err := ca.Open(c.String("dir"), ca.Options{Passphrase: pass})
	if errors.Is(err, ca.ErrPassphrase) && pass == nil {
		return nil, fmt.Errorf("%w (give it with --passphrase-file)", err)
	}
	return cc, err
}

// readPassphrase reads the first line of name; "" means no passphrase.
func readPassphrase(name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return nil, fmt.Errorf("passphrase file %s: the first line is empty", name)
	}
	return line, nil
}
