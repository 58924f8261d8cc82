// Command setpay is the command line of setpay, a reference implementation of
// a SET-style payment protocol.
//
// Usage:
//
//	setpay codes                  list the protocol error codes
//	setpay parse FILE             parse a DER message strictly and describe it
//	setpay vectors verify [DIR]   check test vectors (default: the committed ones)
//	setpay ca init --dir D        create the CA hierarchies (certificates as PEM in D)
//	setpay ca list --dir D        list the certificates the CA issued
//	setpay ca revoke --dir D --serial N --reason R   revoke a certificate
//
// Exit codes: 0 success, 1 the input was rejected, 2 usage error.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/setpay/setpay/internal/cli"
)

func main() {
	if err := cli.Run(context.Background(), os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "setpay: error: %v\n", err)
		os.Exit(cli.ExitCode(err))
	}
}
