package lesson

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// WriteJSON writes the trace as indented JSON (docs/TRACE.md).
func (t *Trace) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

var mermaidNames = map[Party]string{Cardholder: "C", Merchant: "M", Gateway: "P", Issuer: "I"}

// WriteMermaid writes the run as a Mermaid sequence diagram in a Markdown
// code block: one arrow per message, a note per receiver's checks.
func (t *Trace) WriteMermaid(w io.Writer) error {
	var b strings.Builder
	title := "honest run"
	if t.Attack != "" {
		title = "attack " + t.Attack
	}
	fmt.Fprintf(&b, "# setpay purchase, suite %s, seed %d, %s\n\n```mermaid\nsequenceDiagram\n", t.Suite, t.Seed, title)
	fmt.Fprintf(&b, "    participant C as Cardholder\n    participant M as Merchant\n    participant P as Payment gateway\n    participant I as Issuer / acquirer\n")
	for _, st := range t.Steps {
		arrow := "->>"
		failed := failedCheck(&st)
		if failed != nil {
			arrow = "-x"
		}
		fmt.Fprintf(&b, "    %s%s%s: %d. %s\n", mermaidNames[st.From], arrow, mermaidNames[st.To], st.N, st.Message)
		if st.Attack != "" {
			fmt.Fprintf(&b, "    Note over %s,%s: attack: %s\n", mermaidNames[st.From], mermaidNames[st.To], mermaidText(st.Attack))
		}
		switch {
		case failed != nil:
			fmt.Fprintf(&b, "    Note over %s: ✗ %s (code %d, %s)\n", mermaidNames[failed.Party], mermaidText(failed.Name), failed.Code, mermaidText(failed.CodeName))
		case len(st.Checks) > 0:
			fmt.Fprintf(&b, "    Note over %s: ✓ %d checks\n", mermaidNames[st.Checks[0].Party], len(st.Checks))
		}
	}
	fmt.Fprintf(&b, "```\n\n%s\n", t.Outcome.Text)
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText keeps a text from breaking Mermaid's syntax.
func mermaidText(s string) string {
	return strings.NewReplacer(";", ",", "#", "", ":", " -", "\n", " ").Replace(s)
}

func failedCheck(st *Step) *Check {
	for i := range st.Checks {
		if st.Checks[i].Result == Failed {
			return &st.Checks[i]
		}
	}
	return nil
}

// WriteDERDir writes one file per message to dir (created 0755): NN-Name.der
// for the setpay messages (DER: openssl asn1parse -inform DER -in
// DIR/03-PReq.der shows one), NN-MTI-bank.txt for the bank's ASCII
// messages. It returns the names written.
func (t *Trace) WriteDERDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for _, st := range t.Steps {
		name := fmt.Sprintf("%02d-%s.der", st.N, st.Message)
		if st.From == Issuer || st.To == Issuer {
			name = fmt.Sprintf("%02d-%s-bank.txt", st.N, st.Message)
		}
		if err := os.WriteFile(filepath.Join(dir, name), st.DER, 0o644); err != nil {
			return names, err
		}
		names = append(names, name)
	}
	return names, nil
}
