package protocol

import (
	"errors"
	"golang.org/x/crypto/cryptobyte"
	"strings"
	"unicode/utf8"

	"github.com/setpay/setpay/internal/der"
)

// ErrorData reports a failed check to the peer.
//
//	ErrorData ::= SEQUENCE {
//	  errorCode   INTEGER (1..65535),
//	  errorNonce  Challenge,
//	  errorThumb  [0] Digest OPTIONAL,          -- H("setpay/1 error thumb", the offending message)
//	  errorDetail [1] UTF8String (SIZE(1..256)) OPTIONAL }
type ErrorData struct {
	Code   Code
	Nonce  Challenge
	Thumb  *Digest
	Detail string // never card data, keys or secrets
}

func (d *ErrorData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(d.Code))
		b.AddASN1OctetString(d.Nonce[:])
		if d.Thumb != nil {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(d.Thumb[:]) })
		}
		if d.Detail != "" {
			der.AddExplicit(b, 1, func(b *cryptobyte.Builder) { der.AddUTF8(b, d.Detail) })
		}
	})
}

func (d *ErrorData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.Code = Code(r.Int("errorCode", 1, 65535))
		readFixed(r, "errorNonce", d.Nonce[:])
		r.OptionalExplicit(0, "errorThumb", func(r *der.Reader) {
			d.Thumb = new(Digest)
			readFixed(r, "", d.Thumb[:])
		})
		r.OptionalExplicit(1, "errorDetail", func(r *der.Reader) { d.Detail = r.UTF8("", 1, 256) })
	})
}

// Error is the Error message, signed by a party that has a signature
// certificate, unsigned otherwise.
//
//	Error ::= CHOICE {
//	  signedError   [0] SEQUENCE { data ErrorData, signature Signature, certificates Certificates },
//	  unsignedError [1] ErrorData }
type Error struct {
	Data         ErrorData
	Signature    *Signature // nil for an unsigned error
	Certificates [][]byte
}

func (*Error) Type() MessageType { return TypeError }

func (m *Error) marshal(b *cryptobyte.Builder) {
	if m.Signature != nil {
		der.AddExplicit(b, 0, func(b *cryptobyte.Builder) {
			marshalSigned(b, &m.Data, m.Signature, m.Certificates)
		})
		return
	}
	der.AddExplicit(b, 1, m.Data.marshal)
}

func (m *Error) parse(r *der.Reader, name string) {
	r.Choice(name, []int{0, 1}, func(tag int, r *der.Reader) {
		if tag == 0 {
			m.Signature = new(Signature)
			parseSigned(r, "signedError", &m.Data, m.Signature, &m.Certificates)
			return
		}
		m.Data.parse(r, "unsignedError")
	})
}

// ErrorThumb returns H("setpay/1 error thumb", msg): how an Error names the
// message that caused it without repeating it.
func ErrorThumb(s Suite, msg []byte) Digest { return Hash(labelErrorThumb, s, msg) }

// NewError reports err to the peer: its Code, and its local detail (which
// never holds card data or secrets) made safe for the wire by wireDetail.
// offending is the DER MessageWrapper, as received, of the message that
// caused it (nil: none); s is the transaction's suite, or SuitePQ before one
// is agreed. With key set the Error is signed.
func NewError(err error, nonce Challenge, s Suite, offending []byte, key *SigningKey) (*Error, error) {
	code := CodeOf(err)
	if code == 0 {
		code = CodeMalformed
	}
	d := ErrorData{Code: code, Nonce: nonce}
	var ce *CheckError
	if errors.As(err, &ce) {
		d.Detail = wireDetail(ce.Detail)
	}
	if offending != nil {
		th := ErrorThumb(s, offending)
		d.Thumb = &th
	}
	m := &Error{Data: d}
	if key != nil {
		sig, err := signWith(key, labelSigError, encode(&m.Data))
		if err != nil {
			return nil, err
		}
		m.Signature, m.Certificates = &sig, key.Chain
	}
	return m, nil
}

// VerifyError checks a signed Error from a party whose signature certificate
// is of type from, under suite s. An unsigned Error cannot be verified and
// returns CodeSignature.
func VerifyError(t *Trust, e *Error, from CertType, s Suite) (*Cert, error) {
	if e.Signature == nil {
		return nil, fail(CodeSignature, "Error is unsigned")
	}
	return verifySignature(t, e.Signature, e.Certificates, from, s, labelSigError, encode(&e.Data), CodeSignature)
}

// wireDetail makes a local detail fit ErrorData.errorDetail: valid UTF-8
// with no control characters (each replaced by '?'), at most 256 bytes cut at
// a character boundary.
func wireDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	for len(s) > 256 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
