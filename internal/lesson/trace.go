// Package lesson is setpay's teaching walkthrough: one purchase, run step
// by step with the protocol code every agent uses (the same Verify and New
// functions of package protocol), on a fixed clock and seeded randomness,
// so that every byte is reproducible. For each message it records who
// sends it to whom, its DER, its decoded fields with plain-words notes,
// what each party can read and what it holds only as ciphertext or a
// hash, and each check the receiver makes with its result. An attack
// changes one thing and the trace shows the check that catches it.
//
// The trace (Trace, JSON in docs/TRACE.md) feeds every view: the terminal
// walkthrough (setpay demo --step), the Mermaid diagram, the .der files
// and the web page (setpay demo --web).
package lesson

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Party is a participant of the walkthrough.
type Party string

// The parties. The issuer stands for the bank network behind the gateway.
const (
	Cardholder Party = "cardholder"
	Merchant   Party = "merchant"
	Gateway    Party = "gateway"
	Issuer     Party = "issuer"
)

// Parties are the three parties whose views a step shows, in column order.
var Parties = []Party{Cardholder, Merchant, Gateway}

// TraceVersion is the version of the trace format (docs/TRACE.md).
const TraceVersion = 1

// Trace is one run of the walkthrough.
type Trace struct {
	Version int    `json:"version"`
	Seed    uint64 `json:"seed"`
	Suite   string `json:"suite"`
	// Attack is the attack's name, "" for an honest run.
	Attack string `json:"attack,omitempty"`
	// The purchase: the card number (a test number: the trace is the
	// teacher's, and shows what the cardholder and gateway read), the order
	// description and the amount.
	PAN      string  `json:"pan"`
	Order    string  `json:"order"`
	Currency int     `json:"currency"`
	Amount   int64   `json:"amount"` // minor units
	Steps    []Step  `json:"steps"`
	Outcome  Outcome `json:"outcome"`
}

// Step is one message from one party to another.
type Step struct {
	N       int    `json:"n"` // from 1
	Message string `json:"message"`
	From    Party  `json:"from"`
	To      Party  `json:"to"`
	// Summary says in plain words what the message is for.
	Summary string `json:"summary"`
	// Attack says what the attacker did to this message, if anything.
	Attack string `json:"attack,omitempty"`
	// DER is the message as sent: a MessageWrapper (or, between gateway
	// and issuer, the bank's own format).
	DER Hex `json:"der"`
	// Fields are the message's decoded fields, annotated. Sealed parts
	// appear as envelopes (their content is in the views of the parties
	// that can open them).
	Fields []Field `json:"fields"`
	// Views are what each of the three parties can read of this message,
	// in the order of Parties.
	Views []View `json:"views"`
	// Checks are the receiver's checks, in the order it makes them.
	Checks []Check `json:"checks"`
}

// Field is one decoded field, with its children for a structure.
type Field struct {
	Name   string  `json:"name"`
	Value  string  `json:"value,omitempty"`
	Note   string  `json:"note,omitempty"`
	Fields []Field `json:"fields,omitempty"`
}

// View is what one party can do with one message.
type View struct {
	Party Party `json:"party"`
	// Role is "sender", "receiver" or "absent" (the message never reaches
	// the party).
	Role string `json:"role"`
	// Readable are the fields the party reads in plaintext (for the sender,
	// what it built; sealed content it built itself included).
	Readable []Field `json:"readable,omitempty"`
	// Opaque are the parts the party holds but cannot read: ciphertext
	// sealed to someone else, or only a hash of data it never sees.
	Opaque []Opaque `json:"opaque,omitempty"`
}

// Opaque is a part of a message a party holds without being able to read
// it.
type Opaque struct {
	What string `json:"what"`
	// Form is "ciphertext" or "hash".
	Form  string `json:"form"`
	Bytes int    `json:"bytes"`
	Why   string `json:"why"`
}

// Check results.
const (
	Passed     = "passed"
	Failed     = "failed"
	NotReached = "not reached"
)

// Check is one check a party makes on a message it receives.
type Check struct {
	Party  Party  `json:"party"`
	Name   string `json:"name"`
	Result string `json:"result"`
	// Code is the error code the check fails with (when it failed: the
	// code it gave); CodeName its name.
	Code     int    `json:"code,omitempty"`
	CodeName string `json:"codeName,omitempty"`
	// Detail is the receiver's own account of a failure.
	Detail string `json:"detail,omitempty"`
}

// Outcome is how the run ended.
type Outcome struct {
	// Result is "approved" or "declined" for an honest run; "caught" when
	// the attack was caught by the check expected, "missed" otherwise.
	Result string `json:"result"`
	// For an attack: the party and check that caught it and the code.
	Party    Party  `json:"party,omitempty"`
	Check    string `json:"check,omitempty"`
	Code     int    `json:"code,omitempty"`
	CodeName string `json:"codeName,omitempty"`
	// Text is a one-line account.
	Text string `json:"text"`
}

// Hex is bytes that marshal to JSON as lowercase hex.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("lesson: der: %w", err)
	}
	*h = d
	return nil
}

// View returns the view of party p in step s.
func (s *Step) View(p Party) *View {
	for i := range s.Views {
		if s.Views[i].Party == p {
			return &s.Views[i]
		}
	}
	return nil
}
