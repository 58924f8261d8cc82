package bank

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/setpay/setpay/protocol"
)

// Message types (MTI) of the bank network.
const (
	MTIAuthRequest      = "0100" // authorization request, gateway to issuer
	MTIAuthResponse     = "0110" // authorization response
	MTICaptureAdvice    = "0220" // capture (completion advice), gateway to acquirer
	MTICaptureResponse  = "0230" // capture response
	MTIReversalRequest  = "0400" // reversal request, gateway to issuer
	MTIReversalResponse = "0410" // reversal response
)

// Field numbers of the fields the format knows (ISO 8583:1987 data elements).
const (
	FieldPAN              = 2  // n12..19 LLVAR, primary account number
	FieldProcessingCode   = 3  // n6, always "000000" (purchase)
	FieldAmount           = 4  // n12, amount in minor units
	FieldTransmissionTime = 7  // n10, MMDDhhmmss, UTC
	FieldSTAN             = 11 // n6, systems trace audit number
	FieldExpiry           = 14 // n4, card expiry YYMM
	FieldRRN              = 37 // an12, retrieval reference number
	FieldAuthID           = 38 // an6, authorization id response
	FieldResponseCode     = 39 // an2, response code
	FieldTerminalID       = 41 // ans8, card acceptor terminal id (optional)
	FieldMerchantID       = 42 // ans1..40 LLVAR, card acceptor (merchant) id
	FieldCurrency         = 49 // n3, ISO 4217 numeric currency code
)

// MaxMessageSize is the largest message Parse accepts, in bytes. The largest
// valid message is far smaller.
const MaxMessageSize = 1024

// Message is one bank network message: its type and its fields by number,
// each value exactly as it appears on the wire (fixed-length fields with
// their leading zeros or padding, LLVAR fields without the length prefix).
// The typed requests ([AuthRequest], [CaptureRequest], [ReversalRequest])
// build messages; Message is the layer below them.
type Message struct {
	MTI    string
	Fields map[int]string
}

// FormatError is the error Parse and Marshal return for a message that
// breaks the format. It never holds a field's value, so it is safe to log
// even when the message carries a PAN.
type FormatError struct {
	Field  int    // the field at fault, or 0 when the fault is the message's own (size, type, bitmap)
	Reason string // what is wrong, without the value
}

func (e *FormatError) Error() string {
	if e.Field == 0 {
		return "bank: " + e.Reason
	}
	if d, ok := fieldDefs[e.Field]; ok {
		return fmt.Sprintf("bank: field %d (%s): %s", e.Field, d.name, e.Reason)
	}
	return fmt.Sprintf("bank: field %d: %s", e.Field, e.Reason)
}

func formatErr(field int, format string, args ...any) error {
	return &FormatError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// charset is the character class of a field.
type charset int

const (
	numeric      charset = iota // n: '0'..'9'
	alphanumeric                // an: '0'..'9', 'A'..'Z', 'a'..'z'
	printable                   // ans: printable ASCII 0x20..0x7e
)

// fieldDef is how one field is encoded: a fixed length, or an LLVAR length
// (two decimal digits) between min and max.
type fieldDef struct {
	name     string
	chars    charset
	llvar    bool
	min, max int // equal for fixed-length fields
}

var fieldDefs = map[int]fieldDef{
	FieldPAN:              {"PAN", numeric, true, 12, 19},
	FieldProcessingCode:   {"processing code", numeric, false, 6, 6},
	FieldAmount:           {"amount", numeric, false, 12, 12},
	FieldTransmissionTime: {"transmission date and time", numeric, false, 10, 10},
	FieldSTAN:             {"STAN", numeric, false, 6, 6},
	FieldExpiry:           {"expiry date", numeric, false, 4, 4},
	FieldRRN:              {"retrieval reference number", alphanumeric, false, 12, 12},
	FieldAuthID:           {"authorization id", alphanumeric, false, 6, 6},
	FieldResponseCode:     {"response code", alphanumeric, false, 2, 2},
	FieldTerminalID:       {"terminal id", printable, false, 8, 8},
	FieldMerchantID:       {"merchant id", printable, true, 1, 40},
	FieldCurrency:         {"currency code", numeric, false, 3, 3},
}

// check validates a value against the definition. The error never shows the
// value.
func (d fieldDef) check(n int, v string) error {
	if len(v) < d.min || len(v) > d.max {
		if d.min == d.max {
			return formatErr(n, "has %d characters, want %d", len(v), d.min)
		}
		return formatErr(n, "has %d characters, want %d to %d", len(v), d.min, d.max)
	}
	for i := range len(v) {
		c := v[i]
		var ok bool
		switch d.chars {
		case numeric:
			ok = '0' <= c && c <= '9'
		case alphanumeric:
			ok = '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
		default:
			ok = 0x20 <= c && c <= 0x7e
		}
		if !ok {
			return formatErr(n, "character %d is not %s", i+1, [...]string{"a digit", "a letter or digit", "printable ASCII"}[d.chars])
		}
	}
	return nil
}

// layout is which fields a message type must and may carry.
type layout struct {
	required, optional []int
}

var layouts = map[string]layout{
	MTIAuthRequest:      {required: []int{2, 3, 4, 7, 11, 14, 37, 42, 49}, optional: []int{41}},
	MTIAuthResponse:     {required: []int{3, 4, 7, 11, 37, 39, 42, 49}, optional: []int{38}},
	MTICaptureAdvice:    {required: []int{3, 4, 7, 11, 37, 38, 42, 49}, optional: []int{41}},
	MTICaptureResponse:  {required: []int{3, 4, 7, 11, 37, 38, 39, 42, 49}},
	MTIReversalRequest:  {required: []int{3, 4, 7, 11, 37, 42, 49}, optional: []int{38, 41}},
	MTIReversalResponse: {required: []int{3, 4, 7, 11, 37, 39, 42, 49}, optional: []int{38}},
}

// check validates the set of fields present against the message type.
func (l layout) check(mti string, fields map[int]string) error {
	for _, n := range l.required {
		if _, ok := fields[n]; !ok {
			return formatErr(n, "is missing (required in %s)", mti)
		}
	}
	for _, n := range sortedFields(fields) {
		if !slices.Contains(l.required, n) && !slices.Contains(l.optional, n) {
			if _, ok := fieldDefs[n]; !ok {
				return formatErr(n, "is not defined")
			}
			return formatErr(n, "is not allowed in %s", mti)
		}
	}
	return nil
}

func sortedFields(fields map[int]string) []int {
	ns := make([]int, 0, len(fields))
	for n := range fields {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func checkMTI(mti string) (layout, error) {
	l, ok := layouts[mti]
	if !ok {
		return layout{}, formatErr(0, "message type is not one of 0100, 0110, 0220, 0230, 0400, 0410")
	}
	return l, nil
}

// Marshal encodes m: MTI, primary bitmap (16 upper-case hex digits), then the
// fields in number order. It checks every field against its definition and
// the set of fields against the message type.
func (m *Message) Marshal() ([]byte, error) {
	l, err := checkMTI(m.MTI)
	if err != nil {
		return nil, err
	}
	for _, n := range sortedFields(m.Fields) {
		if d, ok := fieldDefs[n]; ok {
			if err := d.check(n, m.Fields[n]); err != nil {
				return nil, err
			}
		}
	}
	if err := l.check(m.MTI, m.Fields); err != nil {
		return nil, err
	}
	var bitmap uint64
	for n := range m.Fields {
		bitmap |= 1 << (64 - n)
	}
	var b strings.Builder
	b.WriteString(m.MTI)
	fmt.Fprintf(&b, "%016X", bitmap)
	for _, n := range sortedFields(m.Fields) {
		v := m.Fields[n]
		if fieldDefs[n].llvar {
			fmt.Fprintf(&b, "%02d", len(v))
		}
		b.WriteString(v)
	}
	return []byte(b.String()), nil
}

// Parse decodes a message strictly: a known MTI, a canonical bitmap without
// field 1 (no secondary bitmap), only defined fields and exactly those the
// message type requires or allows, each valid for its definition, and no
// trailing bytes. Errors are *[FormatError] and never show field values.
func Parse(b []byte) (*Message, error) {
	if len(b) > MaxMessageSize {
		return nil, formatErr(0, "message has %d bytes, the limit is %d", len(b), MaxMessageSize)
	}
	if len(b) < 4 {
		return nil, formatErr(0, "message ends inside the message type")
	}
	m := &Message{MTI: string(b[:4]), Fields: map[int]string{}}
	l, err := checkMTI(m.MTI)
	if err != nil {
		return nil, err
	}
	if len(b) < 20 {
		return nil, formatErr(0, "message ends inside the bitmap")
	}
	var bitmap uint64
	for _, c := range b[4:20] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return nil, formatErr(0, "bitmap is not 16 upper-case hexadecimal digits")
		}
		bitmap = bitmap<<4 | uint64(d)
	}
	if bitmap>>63 != 0 {
		return nil, formatErr(0, "bitmap sets field 1 (secondary bitmap), which this format does not use")
	}
	rest := b[20:]
	for bitmap != 0 {
		n := bits.LeadingZeros64(bitmap) + 1
		bitmap &^= 1 << (64 - n)
		d, ok := fieldDefs[n]
		if !ok {
			return nil, formatErr(n, "is not defined")
		}
		size := d.min
		if d.llvar {
			if len(rest) < 2 {
				return nil, formatErr(n, "message ends inside the length prefix")
			}
			if rest[0] < '0' || rest[0] > '9' || rest[1] < '0' || rest[1] > '9' {
				return nil, formatErr(n, "length prefix is not two digits")
			}
			size = int(rest[0]-'0')*10 + int(rest[1]-'0')
			rest = rest[2:]
			if size < d.min || size > d.max {
				return nil, formatErr(n, "length prefix is %d, want %d to %d", size, d.min, d.max)
			}
		}
		if len(rest) < size {
			return nil, formatErr(n, "message ends inside the field")
		}
		v := string(rest[:size])
		rest = rest[size:]
		if err := d.check(n, v); err != nil {
			return nil, err
		}
		m.Fields[n] = v
	}
	if len(rest) != 0 {
		return nil, formatErr(0, "%d bytes after the last field", len(rest))
	}
	if err := l.check(m.MTI, m.Fields); err != nil {
		return nil, err
	}
	return m, nil
}

// Response codes (field 39), the ISO 8583:1987 ones.
const (
	CodeApproved               = "00"
	CodeDoNotHonour            = "05" // declined for another reason
	CodeInvalidTransaction     = "12" // wrong processing code or currency, or not possible in the authorization's state
	CodeInvalidAmount          = "13" // zero amount, or above what is held
	CodeInvalidCardNumber      = "14" // no such account
	CodeUnableToLocateOriginal = "25" // capture or reversal of no approved authorization
	CodeInsufficientFunds      = "51"
	CodeExpiredCard            = "54"
	CodeSuspectedFraud         = "59"
	CodeExceedsAmountLimit     = "61" // above the account's per-transaction limit
	CodeRestrictedCard         = "62" // blocked card
	CodeExceedsFrequencyLimit  = "65" // velocity limit
)

var declineCodes = map[string]protocol.DeclineReason{
	CodeDoNotHonour:            protocol.DeclineOther,
	CodeInvalidTransaction:     protocol.DeclineOther,
	CodeInvalidAmount:          protocol.DeclineOther,
	CodeInvalidCardNumber:      protocol.DeclineUnknownAccount,
	CodeUnableToLocateOriginal: protocol.DeclineOther,
	CodeInsufficientFunds:      protocol.DeclineInsufficientFunds,
	CodeExpiredCard:            protocol.DeclineExpiredCard,
	CodeSuspectedFraud:         protocol.DeclineSuspectedFraud,
	CodeExceedsAmountLimit:     protocol.DeclineOverLimit,
	CodeRestrictedCard:         protocol.DeclineBlockedCard,
	CodeExceedsFrequencyLimit:  protocol.DeclineVelocityLimit,
}

// DeclineReasonOf returns the SET decline reason a response code gives. It
// reports false for "00" (approved) and for codes the bank never sends. The
// codes without a reason of their own (05, 12, 13, 25) give DeclineOther.
func DeclineReasonOf(code string) (protocol.DeclineReason, bool) {
	r, ok := declineCodes[code]
	return r, ok
}

// DeclineCode returns the response code the issuer sends for a decline
// reason; DeclineOther is "05" (do not honour). It reports false for a value
// that is not a decline reason.
func DeclineCode(r protocol.DeclineReason) (string, bool) {
	switch r {
	case protocol.DeclineInsufficientFunds:
		return CodeInsufficientFunds, true
	case protocol.DeclineExpiredCard:
		return CodeExpiredCard, true
	case protocol.DeclineBlockedCard:
		return CodeRestrictedCard, true
	case protocol.DeclineOverLimit:
		return CodeExceedsAmountLimit, true
	case protocol.DeclineVelocityLimit:
		return CodeExceedsFrequencyLimit, true
	case protocol.DeclineUnknownAccount:
		return CodeInvalidCardNumber, true
	case protocol.DeclineSuspectedFraud:
		return CodeSuspectedFraud, true
	case protocol.DeclineOther:
		return CodeDoNotHonour, true
	}
	return "", false
}
