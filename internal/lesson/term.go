package lesson

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Width is the terminal width the walkthrough is laid out for: it reads in
// an 80-column terminal and in tmux.
const Width = 80

// Term renders a trace for a terminal.
type Term struct {
	W     io.Writer
	Color bool // ANSI colours; plain text otherwise
}

// ANSI styles.
const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
	ansiRed   = "\x1b[31m"
	ansiGreen = "\x1b[32m"
	ansiYel   = "\x1b[33m"
	ansiCyan  = "\x1b[36m"
)

func (t *Term) style(s, code string) string {
	if !t.Color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (t *Term) line(format string, args ...any) { fmt.Fprintf(t.W, format+"\n", args...) }

// Header prints the run's header.
func (t *Term) Header(tr *Trace) {
	run := "an honest purchase"
	if tr.Attack != "" {
		a, _ := attackByName(tr.Attack)
		run = "attack " + tr.Attack + ": " + a.Summary
	}
	t.line("%s", t.style(fmt.Sprintf("setpay walkthrough: suite %s, seed %d", tr.Suite, tr.Seed), ansiBold))
	t.wrap("", run, "")
	t.wrap("", fmt.Sprintf("order %q for %s, card %s", tr.Order, formatAmount(tr.Currency, tr.Amount), tr.PAN), "")
	t.line("")
}

// Next announces the step about to be shown (the --step prompt follows).
func (t *Term) Next(tr *Trace, st *Step) string {
	return fmt.Sprintf("next: step %d/%d, %s, %s -> %s", st.N, len(tr.Steps), st.Message, st.From, st.To)
}

// Step prints one step in full: header, summary, attack, fields, the three
// views in turn, and the receiver's checks.
func (t *Term) Step(tr *Trace, st *Step) {
	head := fmt.Sprintf("== step %d/%d  %s  %s -> %s ", st.N, len(tr.Steps), st.Message, st.From, st.To)
	if n := Width - utf8.RuneCountInString(head); n > 0 {
		head += strings.Repeat("=", n)
	}
	t.line("%s", t.style(head, ansiBold+ansiCyan))
	t.wrap("", st.Summary, "")
	if st.Attack != "" {
		t.wrap("", "ATTACK: "+st.Attack, ansiYel+ansiBold)
	}
	t.wrap("", fmt.Sprintf("%d bytes on the wire (--der-dir writes them to files that openssl asn1parse -inform DER reads)", len(st.DER)), ansiDim)
	t.line("")
	t.line("%s", t.style("the message's fields", ansiBold))
	t.fields(st.Fields, 1, true)
	t.line("")
	t.line("%s", t.style("what each party can read", ansiBold))
	for _, v := range st.Views {
		t.view(&v)
	}
	if len(st.Checks) > 0 {
		t.line("")
		t.line("%s", t.style("checks by the "+string(st.Checks[0].Party), ansiBold))
		for _, c := range st.Checks {
			t.check(&c)
		}
	}
	t.line("")
}

// Summary prints one line per step and the outcome: the non-step run.
func (t *Term) Summary(tr *Trace) {
	for _, st := range tr.Steps {
		mark := t.style("ok", ansiGreen)
		if c := failedCheck(&st); c != nil {
			mark = t.style(fmt.Sprintf("REFUSED: %s (code %d, %s)", c.Name, c.Code, c.CodeName), ansiRed+ansiBold)
		}
		t.wrap("", fmt.Sprintf("%2d. %-8s %s -> %s  %s", st.N, st.Message, st.From, st.To, mark), "")
		if st.Attack != "" {
			t.wrap("      ", "attack: "+st.Attack, ansiYel)
		}
	}
	t.line("")
}

// Outcome prints the run's outcome.
func (t *Term) Outcome(tr *Trace) {
	style := ansiGreen + ansiBold
	if tr.Outcome.Result == "missed" || tr.Outcome.Result == "declined" {
		style = ansiRed + ansiBold
	}
	t.wrap("", strings.ToUpper(tr.Outcome.Result)+": "+tr.Outcome.Text, style)
}

func (t *Term) view(v *View) {
	who := fmt.Sprintf("-- %s (%s)", v.Party, v.Role)
	if v.Role == "absent" {
		t.line("%s", t.style(fmt.Sprintf("-- %s: never receives this message", v.Party), ansiDim))
		return
	}
	t.line("%s", t.style(who, ansiBold))
	for _, f := range v.Readable {
		t.compact(f)
	}
	for _, o := range v.Opaque {
		t.wrap("   ", fmt.Sprintf("[%s, %d bytes] %s: %s", o.Form, o.Bytes, o.What, o.Why), ansiDim)
	}
}

func (t *Term) check(c *Check) {
	switch c.Result {
	case Passed:
		t.wrap("  ", t.style("ok ", ansiGreen)+c.Name, "")
	case Failed:
		t.wrap("  ", fmt.Sprintf("FAILED %s: code %d (%s): %s", c.Name, c.Code, c.CodeName, c.Detail), ansiRed+ansiBold)
	default:
		t.wrap("  ", "-- "+c.Name+" (not reached)", ansiDim)
	}
}

// compact prints what a view reads of a field: its name, and its direct
// children with their values (structures by name only).
func (t *Term) compact(f Field) {
	if len(f.Fields) == 0 {
		t.line("%s", cut("   reads "+f.Name+"  "+f.Value, Width))
		return
	}
	t.line("%s", cut("   reads "+f.Name+":", Width))
	for _, c := range f.Fields {
		v := c.Value
		if v == "" && len(c.Fields) > 0 {
			var names []string
			for _, g := range c.Fields {
				names = append(names, g.Name)
			}
			v = "{" + strings.Join(names, ", ") + "}"
		}
		t.line("%s", cut("     "+c.Name+"  "+v, Width))
	}
}

// fields prints a field tree, one field per line, values cut to the width
// and notes (when withNotes) on the line below.
func (t *Term) fields(fs []Field, depth int, withNotes bool) {
	for _, f := range fs {
		indent := strings.Repeat("  ", depth)
		s := indent + f.Name
		if f.Value != "" {
			s += "  " + f.Value
		}
		t.line("%s", cut(s, Width))
		if withNotes && f.Note != "" {
			t.wrap(indent+"    ", f.Note, ansiDim)
		}
		t.fields(f.Fields, depth+1, withNotes)
	}
}

// wrap prints s wrapped at Width with the given indent, in style.
func (t *Term) wrap(indent, s, style string) {
	width := Width - utf8.RuneCountInString(indent)
	var cur strings.Builder
	flush := func() {
		t.line("%s%s", indent, t.style(cur.String(), style))
		cur.Reset()
	}
	for _, w := range strings.Fields(s) {
		if cur.Len() > 0 && utf8.RuneCountInString(cur.String())+1+utf8.RuneCountInString(w) > width {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
	}
	if cur.Len() > 0 {
		flush()
	}
}

// cut shortens s to n runes, marking the cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
