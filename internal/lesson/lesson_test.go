package lesson_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/setpay/setpay/internal/lesson"
	"github.com/setpay/setpay/protocol"
)

func run(t *testing.T, o lesson.Options) *lesson.Trace {
	t.Helper()
	tr, err := lesson.Run(o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestHonestRun: both suites run to the capture, every check passes, and
// every message's DER is a message the protocol parses.
func TestHonestRun(t *testing.T) {
	for _, s := range protocol.Suites {
		tr := run(t, lesson.Options{Suite: s})
		if tr.Outcome.Result != "approved" {
			t.Fatalf("%s: outcome %+v", s, tr.Outcome)
		}
		var names []string
		for _, st := range tr.Steps {
			names = append(names, st.Message)
			for _, c := range st.Checks {
				if c.Result != lesson.Passed {
					t.Errorf("%s step %d %s: check %q %s", s, st.N, st.Message, c.Name, c.Result)
				}
			}
			if st.Message[0] == 'P' || st.Message[0] == 'A' || st.Message[0] == 'C' {
				if _, err := protocol.Parse(st.DER); err != nil {
					t.Errorf("%s step %d %s: DER does not parse: %v", s, st.N, st.Message, err)
				}
			}
			if len(st.Views) != 3 {
				t.Errorf("step %d: %d views", st.N, len(st.Views))
			}
		}
		want := "PInitReq PInitRes PReq AuthReq 0100 0110 AuthRes PRes CapReq 0220 0230 CapRes"
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%s steps: %s, want %s", s, got, want)
		}
	}
}

// TestReproducible: the same options give the same bytes; another seed
// gives other bytes.
func TestReproducible(t *testing.T) {
	enc := func(o lesson.Options) []byte {
		b, err := json.Marshal(run(t, o))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := enc(lesson.Options{Seed: 7}), enc(lesson.Options{Seed: 7})
	if !bytes.Equal(a, b) {
		t.Error("two runs with seed 7 differ")
	}
	if bytes.Equal(a, enc(lesson.Options{Seed: 8})) {
		t.Error("seeds 7 and 8 give the same run")
	}
}

// TestAttacksAreCaught: every attack is caught by the party and code it
// names, and the run stops there.
func TestAttacksAreCaught(t *testing.T) {
	for _, a := range lesson.Attacks() {
		t.Run(a.Name, func(t *testing.T) {
			tr := run(t, lesson.Options{Attack: a.Name})
			o := tr.Outcome
			if o.Result != "caught" || o.Party != a.Party || protocol.Code(o.Code) != a.Code || o.Check != a.Check {
				t.Fatalf("outcome %+v, want caught by %s with code %d", o, a.Party, a.Code)
			}
			last := tr.Steps[len(tr.Steps)-1]
			var failed int
			for _, c := range last.Checks {
				if c.Result == lesson.Failed {
					failed++
					if c.Name != o.Check || c.Code != int(a.Code) {
						t.Errorf("failed check %+v, outcome names %q", c, o.Check)
					}
				}
			}
			if failed != 1 {
				t.Errorf("%d failed checks in the last step, want 1", failed)
			}
			attacked := false
			for _, st := range tr.Steps {
				attacked = attacked || st.Attack != ""
			}
			if !attacked {
				t.Error("no step says what the attacker did")
			}
		})
	}
	if _, err := lesson.Run(lesson.Options{Attack: "no-such-attack"}); err == nil {
		t.Error("an unknown attack ran")
	}
}

// TestViewsKeepThePromise: in no step does the merchant's view hold the
// card number, nor the gateway's the order description; the gateway does
// read the card number (AuthReq) and the merchant the order description
// (PReq), so the search is not vacuous.
func TestViewsKeepThePromise(t *testing.T) {
	const order = "2 x Lovelace notes, annotated"
	for _, s := range protocol.Suites {
		tr := run(t, lesson.Options{Suite: s, Order: order, PAN: "5555555555554444", Amount: 1999})
		var gatewaySawPAN, merchantSawOrder bool
		for _, st := range tr.Steps {
			m, _ := json.Marshal(st.View(lesson.Merchant))
			g, _ := json.Marshal(st.View(lesson.Gateway))
			if bytes.Contains(m, []byte("5555555555554444")) {
				t.Errorf("%s step %d %s: the merchant's view holds the card number", s, st.N, st.Message)
			}
			if bytes.Contains(g, []byte(order)) {
				t.Errorf("%s step %d %s: the gateway's view holds the order description", s, st.N, st.Message)
			}
			gatewaySawPAN = gatewaySawPAN || bytes.Contains(g, []byte("5555555555554444"))
			merchantSawOrder = merchantSawOrder || bytes.Contains(m, []byte(order))
			// The wire itself: the merchant receives no card number in any
			// message; the gateway no order description.
			if st.To == lesson.Merchant && bytes.Contains(st.DER, []byte("5555555555554444")) {
				t.Errorf("step %d: the card number in clear in a message to the merchant", st.N)
			}
			if (st.To == lesson.Gateway || st.To == lesson.Issuer) && bytes.Contains(st.DER, []byte(order)) {
				t.Errorf("step %d: the order description in a message to the gateway or the bank", st.N)
			}
		}
		if !gatewaySawPAN || !merchantSawOrder {
			t.Errorf("%s: gateway read the card number %v, merchant read the order %v; want both", s, gatewaySawPAN, merchantSawOrder)
		}
	}
}
