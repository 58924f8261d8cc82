package protocol

import (
	"bytes"
	"reflect"
	"strings"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// codec is implemented by every structure of the protocol.
type codec interface {
	marshal(b *cryptobyte.Builder)
	parse(r *der.Reader, name string)
}

// Structure is implemented by pointers to every type of this package that
// has an ASN.1 definition in docs/PROTOCOL.md: the messages and everything
// inside them (OIData, PIData, PIContent, AuthReqSigned, CapTokenData, ...).
// Only this package implements it.
type Structure interface {
	codec
}

// Encode returns the DER encoding of v. Test vectors and traces use it to
// show the exact bytes of structures that travel sealed or are only hashed.
func Encode(v Structure) []byte { return encode(v) }

// Decode strictly decodes b as a T (for example Decode[PIContent](b)), with
// the rules of Parse: at most MaxMessageSize bytes, nothing trailing, and b
// must be the canonical encoding of the result (CodeMalformed, CodeTooLarge).
func Decode[T any, PT interface {
	*T
	Structure
}](b []byte) (*T, error) {
	return decode[T, PT](b, reflect.TypeFor[T]().Name())
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

// Signed is a signed structure, SEQUENCE { data, signature, certificates }:
// Data signed by the holder of the certificate Signature.Signer, with the
// certificates (the signer's chain and any other the receiver needs). The
// plaintexts of AuthReq, AuthRes, CapReq and CapRes are Signed structures.
type Signed[T any, PT interface {
	*T
	codec
}] struct {
	Data         T
	Signature    Signature
	Certificates [][]byte
}

func (m *Signed[T, PT]) marshal(b *cryptobyte.Builder) {
	marshalSigned(b, PT(&m.Data), &m.Signature, m.Certificates)
}

func (m *Signed[T, PT]) parse(r *der.Reader, name string) {
	parseSigned(r, name, PT(&m.Data), &m.Signature, &m.Certificates)
}

// newSigned signs data with key under label.
func newSigned[T any, PT interface {
	*T
	codec
}](key *SigningKey, label string, data T, certs [][]byte) (*Signed[T, PT], error) {
	sig, err := signWith(key, label, encode(PT(&data)))
	if err != nil {
		return nil, err
	}
	return &Signed[T, PT]{Data: data, Signature: sig, Certificates: certs}, nil
}

// openSigned opens a signed-then-sealed structure, in order: the envelope
// with key under sealLabel (CodeUnknownSuite, CodeSuiteMismatch,
// CodeDecrypt); the strict decode of the plaintext (CodeMalformed); the
// signature under sigLabel by a certificate of type want among those it
// carries (CodeSignature and the certificate codes). It returns the
// structure and the signer's certificate.
func openSigned[T any, PT interface {
	*T
	codec
}](t *Trust, key *KeyExchangeKey, env *Envelope, sealLabel, sigLabel string, want CertType) (*Signed[T, PT], *Cert, error) {
	s := key.Suite()
	pt, err := key.open(env, s, sealLabel, nil)
	if err != nil {
		return nil, nil, err
	}
	signed, err := decode[Signed[T, PT]](pt, strings.TrimSuffix(reflect.TypeFor[T]().Name(), "Data")+"Signed")
	if err != nil {
		return nil, nil, err
	}
	c, err := verifySignature(t, &signed.Signature, signed.Certificates, want, s, sigLabel, encode(PT(&signed.Data)), CodeSignature)
	if err != nil {
		return nil, nil, err
	}
	return signed, c, nil
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
