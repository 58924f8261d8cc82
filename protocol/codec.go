package protocol

import (
	"bytes"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// codec is implemented by every structure of the protocol.
type codec interface {
	marshal(b *cryptobyte.Builder)
	parse(r *der.Reader, name string)
}

// encode returns the DER encoding of c. The encoders only write values the
// types allow, so encoding cannot fail for a structure built by this package;
// out-of-range values set by hand are caught when the result is decoded.
func encode(c codec) []byte {
	var b cryptobyte.Builder
	c.marshal(&b)
	return b.BytesOrPanic()
}

// decode parses b into a new T, strictly: the input must be at most
// MaxMessageSize bytes, parse completely with nothing trailing, and re-encode
// to exactly b. Because every accepted input is its own canonical encoding,
// hashing or verifying the re-encoding of a parsed structure is hashing or
// verifying the bytes received.
func decode[T any, PT interface {
	*T
	codec
}](b []byte, name string) (*T, error) {
	if len(b) > MaxMessageSize {
		return nil, fail(CodeTooLarge, "%s of %d bytes exceeds %d", name, len(b), MaxMessageSize)
	}
	v := PT(new(T))
	r := der.NewReader(b, "")
	v.parse(r, name)
	r.End()
	if err := r.Err(); err != nil {
		return nil, failWrap(CodeMalformed, err, "%s", name)
	}
	if !bytes.Equal(encode(v), b) {
		return nil, fail(CodeMalformed, "%s is not in canonical DER", name)
	}
	return (*T)(v), nil
}

// marshalSigned writes SEQUENCE { data, signature, certificates }, the shape
// of every signed structure.
func marshalSigned(b *cryptobyte.Builder, data codec, sig *Signature, certs [][]byte) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		data.marshal(b)
		sig.marshal(b)
		marshalCerts(b, certs)
	})
}

func parseSigned(r *der.Reader, name string, data codec, sig *Signature, certs *[][]byte) {
	r.Sequence(name, func(r *der.Reader) {
		data.parse(r, "data")
		sig.parse(r, "signature")
		*certs = parseCerts(r, "certificates")
	})
}
