// Package vectors holds setpay's test vectors, and the checker that verifies
// them through package protocol's public API. The vector files (JSON) live in
// this directory; vectors/README.md specifies their format for other
// implementations. They are generated from the protocol package's own tests
// (protocol/vectors_gen_test.go), so every negative test case of the protocol
// is also a published vector:
//
//	go generate ./vectors
//
// regenerates them, and `go test ./...` fails if the committed files differ
// from a fresh generation.
package vectors

//go:generate go test ../protocol -run ^TestGenerateVectors$ -count=1 -args -update

import "encoding/json"

// Schema is the schema version every file carries in its "schema" field.
// A consumer must refuse a file with another value.
const Schema = "setpay-vectors/1"

// Header starts every file.
type Header struct {
	Schema string `json:"schema"`
	Kind   string `json:"kind"`  // "pki", "construction", "message", "transcript", "negative"
	Suite  string `json:"suite"` // "pq" or "nist"; "" for a suite-independent file
	Notes  string `json:"notes,omitempty"`
}

// Hex is a byte string written as lowercase hex.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hexString(h)) }

func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseHex(s)
	*h = v
	return err
}

// PKI is the certificate hierarchy, the parties' private keys and the card
// of one suite (file pki-SUITE.json). Other files name its certificates and
// keys.
type PKI struct {
	Header
	// Now is the time at which every vector of the suite is checked
	// (RFC 3339, UTC).
	Now string `json:"now"`
	// Certificates by name: root, brand-ca, cardholder-ca, merchant-ca,
	// gateway-ca, cardholder, merchant-sig, merchant-ke, gateway-sig,
	// gateway-ke. The root is the only trust anchor.
	Certificates map[string]Hex `json:"certificates"`
	// Chains by party key name: the certificate chain (leaf first, root
	// excluded) as certificate names.
	Chains map[string][]string `json:"chains"`
	// PrivateKeys by name (cardholder, merchant-sig, merchant-ke,
	// gateway-sig, gateway-ke), each with its encoding.
	PrivateKeys map[string]PrivateKey `json:"private_keys"`
	// GatewayTokenKey is the gateway's 32-byte CapToken key.
	GatewayTokenKey Hex  `json:"gateway_token_key"`
	Card            Card `json:"card"`
}

// PrivateKey is a raw private key. Encodings: "ed25519-seed" (32 bytes, RFC
// 8032), "p256-scalar" (32 bytes big-endian; ECDSA or DHKEM(P-256)),
// "x-wing" (the 32-byte X-Wing private key, draft-connolly-cfrg-xwing-kem).
type PrivateKey struct {
	Encoding string `json:"encoding"`
	Key      Hex    `json:"key"`
}

// Card is the test cardholder's card.
type Card struct {
	PAN        string `json:"pan"`
	CardExpiry string `json:"card_expiry"`
	CardSecret Hex    `json:"card_secret"`
	PANSecret  Hex    `json:"pan_secret"`
}

// ConstructionFile holds construction vectors (file construction-SUITE.json).
type ConstructionFile struct {
	Header
	Vectors []Construction `json:"vectors"`
}

// Construction is one computation with its inputs, its intermediate values
// and its output. Name says which (see README.md for each name's fields).
type Construction struct {
	Name   string         `json:"name"`
	Inputs map[string]any `json:"inputs"`
	// Intermediate values by name (JSON objects are unordered).
	Intermediate map[string]Hex `json:"intermediate,omitempty"`
	Output       map[string]Hex `json:"output"`
}

// MessageFile holds message vectors (file message-SUITE.json).
type MessageFile struct {
	Header
	Vectors []Message `json:"vectors"`
}

// Message is one MessageWrapper: its DER and its decoded fields.
type Message struct {
	Name    string `json:"name"`
	Type    string `json:"type"` // PInitReq, PInitRes, ...
	DER     Hex    `json:"der"`
	Decoded any    `json:"decoded"`
}

// TranscriptFile holds whole purchases (file transcript-SUITE.json).
type TranscriptFile struct {
	Header
	Transcripts []Transcript `json:"transcripts"`
}

// Transcript is one purchase from PInitReq through CapRes, with every
// intermediate value a passive verifier holding the PKI file's keys can
// recompute.
type Transcript struct {
	Name  string `json:"name"`
	Order Order  `json:"order"`
	// Steps, in protocol order: each a message as sent on the wire.
	Steps []Step `json:"steps"`
	// Intermediate values by name: hod, oidata, oimd, pimd, picontent,
	// authreq_signed, authres_signed, captoken_data, capreq_signed,
	// capres_signed; and for a dual-signed purchase dual_signature_input
	// and account_hash.
	Intermediate map[string]Hex `json:"intermediate"`
}

// Order is what cardholder and merchant agreed.
type Order struct {
	OD       Hex   `json:"od"`
	Currency int   `json:"currency"`
	Amount   int64 `json:"amount"`
}

// Step is one message of a transcript.
type Step struct {
	From    string `json:"from"` // cardholder, merchant, gateway
	To      string `json:"to"`
	Type    string `json:"type"`
	Message Hex    `json:"message"` // DER MessageWrapper
}

// NegativeFile holds negative vectors (file negative-SUITE.json).
type NegativeFile struct {
	Header
	Vectors []Negative `json:"vectors"`
}

// Negative is an input one party must reject with exactly one code. Its ID
// is derived from the suite, the check and the description, so it stays the
// same when other vectors are added or removed.
type Negative struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	// Party that must reject it: cardholder, merchant or gateway; "any"
	// for a Parse vector.
	Party string `json:"party"`
	// Check is the verification procedure of docs/PROTOCOL.md section 9 that
	// rejects it: PInitRes, PReq, AuthReq, AuthRes, PRes, CapReq, CapRes,
	// Error, or Parse (section 2.3, no context).
	Check    string  `json:"check"`
	BugClass string  `json:"bug_class"`
	Expect   Expect  `json:"expect"`
	Context  Context `json:"context"`
	// Input is the DER MessageWrapper the party receives (for Parse, any
	// octets).
	Input Hex `json:"input"`
}

// Expect is the exact outcome.
type Expect struct {
	Code uint16 `json:"code"`
	Name string `json:"name"`
	// Item is set for a CapReq whose batch passes but one item fails: the
	// index of the item whose result carries Code.
	Item *int `json:"item,omitempty"`
}

// Context is the receiving party's state; which fields are set depends on
// Check (README.md, "Negative vectors").
type Context struct {
	// Trust anchors (DER); empty means the PKI file's root.
	Roots []Hex `json:"roots,omitempty"`
	// Serial numbers (decimal) of revoked certificates.
	Revoked []string `json:"revoked,omitempty"`
	// PInitRes, PRes: the PInitReq the cardholder sent (DER MessageWrapper)
	// and certificates it holds (DER).
	PInitReq Hex   `json:"pinitreq,omitempty"`
	Held     []Hex `json:"held,omitempty"`
	// PReq, PRes: the PInitRes the merchant sent (DER MessageWrapper).
	PInitRes Hex `json:"pinitres,omitempty"`
	// PReq: the agreed order and the merchant's policy.
	Order       *Order `json:"order,omitempty"`
	RequireCert bool   `json:"require_certificate,omitempty"`
	// PRes: the OIData of the PReq the cardholder sent (DER).
	OIData Hex `json:"oidata,omitempty"`
	// AuthReq: the gateway's amount policy.
	MaxOverPercent int64 `json:"max_over_percent,omitempty"`
	// AuthRes, CapRes: what the merchant sent (DER AuthReqData or
	// CapReqData) and the gateway key-exchange certificate it sealed to.
	Sent      Hex `json:"sent,omitempty"`
	GatewayKE Hex `json:"gateway_ke,omitempty"`
	// Error: the certificate type of the expected signer.
	From int `json:"from,omitempty"`
}
