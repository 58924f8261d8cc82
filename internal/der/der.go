// Package der is setpay's strict DER reader and the small writing helpers
// that go with it. It wraps golang.org/x/crypto/cryptobyte, which already
// rejects non-minimal lengths, indefinite lengths, high tag numbers and
// non-minimal INTEGERs; on top of that the [Reader] checks every field's
// size, rejects trailing bytes inside and after every structure, and keeps a
// sticky error naming the field that failed (never its value, which may be
// secret).
//
// A [Reader] is used the way crypto/x509/parser.go uses cryptobyte: one
// explicit call per field, in order. The first failure is kept and every later
// call does nothing, so a parse function reads as the ASN.1 it implements and
// checks [Reader.Err] once at the end.
package der

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Universal tags used by setpay that cryptobyte/asn1 does not name.
const (
	tagNumericString = asn1.Tag(18)
	tagPrintable     = asn1.Tag(19)
)

// Error is a parse failure: the dotted path of the field and what was wrong.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Reader reads DER fields in order with a sticky error. The zero value is not
// usable; call [NewReader].
type Reader struct {
	s    cryptobyte.String
	path string
	err  *Error
	// root points at the outermost Reader, which holds the first error.
	root *Reader
}

// NewReader returns a Reader over b. name labels errors (for example
// "PInitReq").
func NewReader(b []byte, name string) *Reader {
	r := &Reader{s: b, path: name}
	r.root = r
	return r
}

// Err returns the first error met, or nil.
func (r *Reader) Err() error {
	if r.root.err == nil {
		return nil
	}
	return r.root.err
}

func (r *Reader) failed() bool { return r.root.err != nil }

// Fail records a failure at field name with a message. Parse functions call it
// for semantic checks (an unknown enumeration value, say).
func (r *Reader) Fail(name, format string, args ...any) {
	if r.failed() {
		return
	}
	r.root.err = &Error{Path: join(r.path, name), Msg: fmt.Sprintf(format, args...)}
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

func (r *Reader) child(s cryptobyte.String, name string) *Reader {
	return &Reader{s: s, path: join(r.path, name), root: r.root}
}

// Empty reports whether the Reader has no bytes left.
func (r *Reader) Empty() bool { return r.s.Empty() }

// Skip discards the bytes left.
func (r *Reader) Skip() { r.s = nil }

// End fails if bytes remain. Parse functions call it on the outermost Reader.
func (r *Reader) End() {
	if !r.failed() && !r.s.Empty() {
		r.Fail("", "%d trailing bytes", len(r.s))
	}
}

func (r *Reader) read(tag asn1.Tag, name, what string) (cryptobyte.String, bool) {
	if r.failed() {
		return nil, false
	}
	var out cryptobyte.String
	wasEmpty := r.s.Empty() // a failed read may still consume the element
	if !r.s.ReadASN1(&out, tag) {
		if wasEmpty {
			r.Fail(name, "missing %s", what)
		} else {
			r.Fail(name, "want a well-formed DER %s", what)
		}
		return nil, false
	}
	return out, true
}

func (r *Reader) nested(tag asn1.Tag, name, what string, f func(*Reader)) {
	body, ok := r.read(tag, name, what)
	if !ok {
		return
	}
	c := r.child(body, name)
	f(c)
	c.End()
}

// Sequence reads a SEQUENCE and calls f with a Reader over its contents, which
// f must consume entirely.
func (r *Reader) Sequence(name string, f func(*Reader)) {
	r.nested(asn1.SEQUENCE, name, "SEQUENCE", f)
}

// SequenceOf reads a SEQUENCE OF: f is called once per element with a Reader
// positioned at it and must read exactly one element. It fails when the count
// is outside [min, max].
func (r *Reader) SequenceOf(name string, min, max int, f func(*Reader)) {
	r.nested(asn1.SEQUENCE, name, "SEQUENCE OF", func(c *Reader) {
		n := 0
		for !c.s.Empty() && !c.failed() {
			if n == max {
				c.Fail("", "more than %d elements", max)
				return
			}
			before := len(c.s)
			item := &Reader{s: c.s, path: fmt.Sprintf("%s[%d]", c.path, n), root: c.root}
			f(item)
			if len(item.s) == before && !item.failed() {
				panic("der: SequenceOf element reader consumed nothing")
			}
			c.s = item.s
			n++
		}
		if !c.failed() && n < min {
			c.Fail("", "want at least %d elements, got %d", min, n)
		}
	})
}

// Explicit reads a required [tag] EXPLICIT wrapper and calls f inside it.
func (r *Reader) Explicit(tag int, name string, f func(*Reader)) {
	r.nested(asn1.Tag(tag).ContextSpecific().Constructed(), name, fmt.Sprintf("[%d]", tag), f)
}

// OptionalExplicit reads an optional [tag] EXPLICIT wrapper; it reports
// whether it was present.
func (r *Reader) OptionalExplicit(tag int, name string, f func(*Reader)) bool {
	if r.failed() || !r.Peek(tag) {
		return false
	}
	r.Explicit(tag, name, f)
	return true
}

// Peek reports whether the next element is a constructed context-specific
// [tag].
func (r *Reader) Peek(tag int) bool {
	return !r.failed() && r.s.PeekASN1Tag(asn1.Tag(tag).ContextSpecific().Constructed())
}

// Choice reads a CHOICE whose alternatives are [n] EXPLICIT. It returns the
// tag number; f is called inside the wrapper. Tags outside [0, 30] or not in
// allowed fail.
func (r *Reader) Choice(name string, allowed []int, f func(tag int, c *Reader)) {
	if r.failed() {
		return
	}
	for _, t := range allowed {
		if r.Peek(t) {
			r.Explicit(t, name, func(c *Reader) { f(t, c) })
			return
		}
	}
	if r.s.Empty() {
		r.Fail(name, "missing CHOICE")
		return
	}
	r.Fail(name, "unknown CHOICE alternative (tag byte 0x%02x)", r.s[0])
}

// Int reads an INTEGER that must lie in [min, max].
func (r *Reader) Int(name string, min, max int64) int64 {
	return r.integer(asn1.INTEGER, name, "INTEGER", min, max)
}

// Enum reads an ENUMERATED that must lie in [min, max].
func (r *Reader) Enum(name string, min, max int64) int64 {
	return r.integer(asn1.ENUM, name, "ENUMERATED", min, max)
}

func (r *Reader) integer(tag asn1.Tag, name, what string, min, max int64) int64 {
	if r.failed() {
		return 0
	}
	var v int64
	wasEmpty := r.s.Empty()
	if !r.s.ReadASN1Int64WithTag(&v, tag) {
		if wasEmpty {
			r.Fail(name, "missing %s", what)
		} else {
			r.Fail(name, "want a minimal DER %s that fits in 64 bits", what)
		}
		return 0
	}
	if v < min || v > max {
		r.Fail(name, "%s outside [%d, %d]", what, min, max) // never the value: it may be secret
		return 0
	}
	return v
}

// Bool reads a BOOLEAN (DER: 0x00 or 0xff only).
func (r *Reader) Bool(name string) bool {
	if r.failed() {
		return false
	}
	var v bool
	if !r.s.ReadASN1Boolean(&v) {
		r.Fail(name, "want a DER BOOLEAN")
	}
	return v
}

// Octets reads an OCTET STRING of length in [min, max]. The result aliases
// the input.
func (r *Reader) Octets(name string, min, max int) []byte {
	body, ok := r.read(asn1.OCTET_STRING, name, "OCTET STRING")
	if !ok {
		return nil
	}
	if len(body) < min || len(body) > max {
		if min == max {
			r.Fail(name, "want %d bytes, got %d", min, len(body))
		} else {
			r.Fail(name, "length %d outside [%d, %d]", len(body), min, max)
		}
		return nil
	}
	return []byte(body)
}

// UTF8 reads a UTF8String of byte length in [min, max] that is valid UTF-8
// and holds no control characters.
func (r *Reader) UTF8(name string, min, max int) string {
	body, ok := r.read(asn1.UTF8String, name, "UTF8String")
	if !ok {
		return ""
	}
	s := string(body)
	if len(s) < min || len(s) > max {
		r.Fail(name, "length %d outside [%d, %d]", len(s), min, max)
		return ""
	}
	if !utf8.ValidString(s) {
		r.Fail(name, "not valid UTF-8")
		return ""
	}
	if strings.ContainsFunc(s, isControl) {
		r.Fail(name, "contains a control character")
		return ""
	}
	return s
}

func isControl(c rune) bool { return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) }

// Numeric reads a NumericString of ASCII digits only (no spaces), length in
// [min, max]. The error never repeats the digits, which may be a card number.
func (r *Reader) Numeric(name string, min, max int) string {
	body, ok := r.read(tagNumericString, name, "NumericString")
	if !ok {
		return ""
	}
	if len(body) < min || len(body) > max {
		r.Fail(name, "length %d outside [%d, %d]", len(body), min, max)
		return ""
	}
	for _, c := range body {
		if c < '0' || c > '9' {
			r.Fail(name, "not all digits")
			return ""
		}
	}
	return string(body)
}

// Printable reads a PrintableString restricted to letters, digits and '-',
// length in [min, max]. setpay uses it for language tags (BCP 47).
func (r *Reader) Printable(name string, min, max int) string {
	body, ok := r.read(tagPrintable, name, "PrintableString")
	if !ok {
		return ""
	}
	if len(body) < min || len(body) > max {
		r.Fail(name, "length %d outside [%d, %d]", len(body), min, max)
		return ""
	}
	for _, c := range body {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			r.Fail(name, "character outside [A-Za-z0-9-]")
			return ""
		}
	}
	return string(body)
}

// Time reads a GeneralizedTime in the only form setpay allows:
// YYYYMMDDHHMMSSZ (UTC, whole seconds).
func (r *Reader) Time(name string) time.Time {
	if r.failed() {
		return time.Time{}
	}
	var raw cryptobyte.String
	if !r.s.PeekASN1Tag(asn1.GeneralizedTime) {
		r.read(asn1.GeneralizedTime, name, "GeneralizedTime")
		return time.Time{}
	}
	save := r.s
	if !r.s.ReadASN1(&raw, asn1.GeneralizedTime) || len(raw) != 15 || raw[14] != 'Z' {
		r.Fail(name, "want GeneralizedTime YYYYMMDDHHMMSSZ")
		return time.Time{}
	}
	r.s = save
	var t time.Time
	if !r.s.ReadASN1GeneralizedTime(&t) {
		r.Fail(name, "want GeneralizedTime YYYYMMDDHHMMSSZ")
		return time.Time{}
	}
	return t.UTC()
}

// Element reads one complete element with the given universal tag and
// returns its full encoding (header included). It is used for nested
// structures that are kept as bytes, such as X.509 certificates.
func (r *Reader) Element(name string, max int) []byte {
	if r.failed() {
		return nil
	}
	var out cryptobyte.String
	if !r.s.ReadASN1Element(&out, asn1.SEQUENCE) {
		r.Fail(name, "want a DER SEQUENCE element")
		return nil
	}
	if len(out) > max {
		r.Fail(name, "element of %d bytes exceeds %d", len(out), max)
		return nil
	}
	return []byte(out)
}

// Raw runs f and returns the exact bytes f consumed. Signed structures use it
// to keep the received encoding of what a signature covers.
func (r *Reader) Raw(f func(*Reader)) []byte {
	before := r.s
	f(r)
	if r.failed() {
		return nil
	}
	return []byte(before[:len(before)-len(r.s)])
}

// ErrTooLarge is wrapped by errors for inputs over a size limit.
var ErrTooLarge = errors.New("input exceeds the size limit")

// Writing helpers. setpay writes DER with a cryptobyte.Builder; these cover
// the types cryptobyte has no method for, and fix the forms setpay uses.

// AddUTF8 appends a UTF8String.
func AddUTF8(b *cryptobyte.Builder, s string) {
	b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

// AddNumeric appends a NumericString.
func AddNumeric(b *cryptobyte.Builder, s string) {
	b.AddASN1(tagNumericString, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

// AddPrintable appends a PrintableString.
func AddPrintable(b *cryptobyte.Builder, s string) {
	b.AddASN1(tagPrintable, func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

// AddTime appends t as a GeneralizedTime YYYYMMDDHHMMSSZ, truncated to whole
// seconds in UTC.
func AddTime(b *cryptobyte.Builder, t time.Time) {
	b.AddASN1(asn1.GeneralizedTime, func(b *cryptobyte.Builder) {
		b.AddBytes([]byte(t.UTC().Truncate(time.Second).Format("20060102150405Z")))
	})
}

// AddExplicit appends a [tag] EXPLICIT wrapper around what f writes.
func AddExplicit(b *cryptobyte.Builder, tag int, f cryptobyte.BuilderContinuation) {
	b.AddASN1(asn1.Tag(tag).ContextSpecific().Constructed(), f)
}

// AddSequence appends a SEQUENCE around what f writes.
func AddSequence(b *cryptobyte.Builder, f cryptobyte.BuilderContinuation) {
	b.AddASN1(asn1.SEQUENCE, f)
}

// Marshal runs f on a fresh Builder and returns the bytes.
func Marshal(f cryptobyte.BuilderContinuation) ([]byte, error) {
	var b cryptobyte.Builder
	f(&b)
	return b.Bytes()
}
