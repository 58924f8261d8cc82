package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/setpay/setpay/internal/lesson"
	"github.com/setpay/setpay/protocol"
)

// stdin is where --step reads Enter and q (tests replace it).
var stdin io.Reader = os.Stdin

// lessonFlags are the demo flags that select the walkthrough instead of
// the agents as processes.
var lessonFlags = []string{"step", "seed", "attack", "trace", "mermaid", "der-dir", "web", "listen"}

func isLesson(c *ucli.Command) bool {
	for _, f := range lessonFlags {
		if c.IsSet(f) {
			return true
		}
	}
	return false
}

// runLesson is the walkthrough: setpay demo --step, --attack, --trace, ...
func runLesson(ctx context.Context, c *ucli.Command, stdout io.Writer) error {
	if c.String("attack") == "list" {
		for _, a := range lesson.Attacks() {
			fmt.Fprintf(stdout, "%-18s %s (caught by the %s, code %d)\n", a.Name, a.Summary, a.Party, uint16(a.Code))
		}
		return nil
	}
	for _, f := range []string{"data-dir", "keep"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s is for the agents as processes; the walkthrough runs in one process", f)
		}
	}
	o := lesson.Options{Seed: c.Uint64("seed"), Attack: c.String("attack"), PAN: c.String("pan"), Order: c.String("order")}
	var err error
	if o.Suite, err = protocol.ParseSuite(c.String("suite")); err != nil {
		return err
	}
	if o.Amount, err = parseAmount(c.String("amount")); err != nil {
		return err
	}
	if c.Bool("web") {
		return serveLesson(ctx, c.String("listen"), o, stdout)
	}
	tr, err := lesson.Run(o)
	if err != nil {
		return err
	}
	t := &lesson.Term{W: stdout, Color: !c.Bool("no-color") && isTerminal(stdout)}
	t.Header(tr)
	if c.Bool("step") {
		in := bufio.NewReader(stdin)
		for i := range tr.Steps {
			st := &tr.Steps[i]
			fmt.Fprintf(stdout, "%s  [Enter: show, q: quit] ", t.Next(tr, st))
			line, err := in.ReadString('\n')
			if strings.TrimSpace(line) == "q" || (err != nil && line == "") {
				fmt.Fprintf(stdout, "\nstopped before step %d\n", st.N)
				return exports(c, tr, stdout)
			}
			fmt.Fprintln(stdout)
			t.Step(tr, st)
		}
	} else {
		t.Summary(tr)
	}
	t.Outcome(tr)
	if err := exports(c, tr, stdout); err != nil {
		return err
	}
	if tr.Attack != "" && tr.Outcome.Result != "caught" {
		return errRejected{fmt.Errorf("attack %s: %s", tr.Attack, tr.Outcome.Text)}
	}
	return nil
}

// exports writes --trace, --mermaid and --der-dir.
func exports(c *ucli.Command, tr *lesson.Trace, stdout io.Writer) error {
	for _, e := range []struct {
		flag  string
		write func(io.Writer) error
	}{{"trace", tr.WriteJSON}, {"mermaid", tr.WriteMermaid}} {
		name := c.String(e.flag)
		if name == "" {
			continue
		}
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		if err := e.write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", name)
	}
	if dir := c.String("der-dir"); dir != "" {
		names, err := tr.WriteDERDir(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d messages to %s (openssl asn1parse -inform DER -in %s/%s)\n", len(names), dir, dir, names[min(2, len(names)-1)])
	}
	return nil
}

// isTerminal reports whether w is a terminal that takes colours.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// serveLesson serves the web walkthrough on addr until SIGINT or SIGTERM.
// The page starts from o (seed, suite, order) and offers every attack.
func serveLesson(ctx context.Context, addr string, o lesson.Options, stdout io.Writer) error {
	if o.Attack != "" {
		return fmt.Errorf("--web offers every attack on the page; drop --attack")
	}
	if _, err := lesson.Run(o); err != nil { // fail now, not on the first page load
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: lesson.Handler(o), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signalContext(ctx)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "the walkthrough: http://%s/ (Ctrl-C to stop)\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
