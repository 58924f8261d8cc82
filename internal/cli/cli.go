// Package cli holds the commands of cmd/setpay, so that they can be tested
// without building the binary.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/protocol"
	"github.com/setpay/setpay/vectors"
)

// errRejected marks an input the protocol rejected (exit code 1), as opposed
// to a usage error (exit code 2).
type errRejected struct{ err error }

func (e errRejected) Error() string { return e.err.Error() }
func (e errRejected) Unwrap() error { return e.err }

// ExitCode returns the process exit code for an error returned by Run.
func ExitCode(err error) int {
	var r errRejected
	if errors.As(err, &r) {
		return 1
	}
	return 2
}

// Run runs the setpay command line with args (args[0] is the program name).
func Run(ctx context.Context, args []string, stdout io.Writer) error {
	cmd := &ucli.Command{
		Name:      "setpay",
		Usage:     "a SET-style payment protocol with its own certificate authority",
		Writer:    stdout,
		ErrWriter: os.Stderr,
		Commands: []*ucli.Command{
			caCommand(stdout),
			gatewayCommand(stdout),
			merchantCommand(stdout),
			cardholderCommand(stdout),
			demoCommand(stdout),
			{
				Name:  "codes",
				Usage: "list the protocol error codes (the numbers an Error message carries)",
				Action: func(_ context.Context, c *ucli.Command) error {
					for _, code := range protocol.Codes() {
						fmt.Fprintf(stdout, "%3d  %s\n", uint16(code), code.String())
					}
					return nil
				},
			},
			{
				Name:  "vectors",
				Usage: "work with test vectors",
				Commands: []*ucli.Command{{
					Name:      "verify",
					Usage:     "check a directory of test vectors (default: the committed ones, built in)",
					ArgsUsage: "[DIR]",
					Description: "Every positive vector must verify and re-encode byte for byte; every negative vector\n" +
						"must be rejected by the named party with exactly the named error code.\n" +
						"Prints one line per failure and the summary \"N passed, M failed\"; exits 1 if any failed.\n\n" +
						"Example:\n   setpay vectors verify ./other-implementation/vectors",
					Flags: []ucli.Flag{&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the summary"}},
					Action: func(_ context.Context, c *ucli.Command) error {
						if c.Args().Len() > 1 {
							return fmt.Errorf("vectors verify takes at most one DIR")
						}
						fsys := fs.FS(vectors.Committed)
						if dir := c.Args().First(); dir != "" {
							fsys = os.DirFS(dir)
						}
						r, err := vectors.Check(fsys)
						if err != nil {
							return errRejected{err}
						}
						if !c.Bool("quiet") {
							for _, f := range r.Failures {
								fmt.Fprintln(stdout, "FAIL", f)
							}
						}
						fmt.Fprintln(stdout, r)
						if r.Failed > 0 {
							return errRejected{fmt.Errorf("%d vectors failed", r.Failed)}
						}
						return nil
					},
				}},
			},
			{
				Name:      "parse",
				Usage:     "parse a DER MessageWrapper strictly and describe it",
				ArgsUsage: "FILE (or - for standard input)",
				Description: "Example:\n   setpay parse 03-PReq.der\n\n" +
					"Exits 1 and prints the error code when the message is rejected.",
				Action: func(_ context.Context, c *ucli.Command) error {
					if c.Args().Len() != 1 {
						return fmt.Errorf("parse takes one FILE argument (or -)")
					}
					return parseFile(c.Args().First(), stdout)
				},
			},
		},
	}
	return cmd.Run(ctx, args)
}

func parseFile(name string, out io.Writer) error {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, protocol.MaxMessageSize+1))
	} else {
		b, err = readLimited(name)
	}
	if err != nil {
		return err
	}
	w, err := protocol.Parse(b)
	if err != nil {
		return errRejected{fmt.Errorf("%w (code %d)", err, uint16(protocol.CodeOf(err)))}
	}
	h := w.Header
	fmt.Fprintf(out, "%s: %d bytes, version %d, date %s, software %q\n",
		w.Message.Type(), len(b), h.Version, h.Date.Format("2006-01-02T15:04:05Z"), h.SWIdent)
	return nil
}

func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, protocol.MaxMessageSize+1))
}
