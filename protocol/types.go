package protocol

import (
	"bytes"
	"crypto/sha256"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// Sizes of the fixed-length fields (docs/PROTOCOL.md, "Primitive types").
const (
	challengeSize = 20
	idSize        = 20 // XID, RRPID
	digestSize    = 32
	nonceSize     = 32
	maxLocalID    = 20
)

// Limits on variable-length fields and on whole messages.
const (
	// MaxMessageSize is the largest MessageWrapper accepted, in bytes.
	MaxMessageSize = 2 << 20
	// MaxCapItems is the largest capture batch.
	MaxCapItems = 1000
	// MaxCertificates is the most certificates one message carries.
	MaxCertificates = 10
	// MaxCertificateSize is the largest certificate accepted, in bytes.
	MaxCertificateSize = 16 << 10
	// MaxOrderDescription is the largest order description hashed into HOD.
	MaxOrderDescription = 64 << 10
)

// Digest is a SHA-256 output of a [Labelled] input.
type Digest [digestSize]byte

// Thumbprint is the SHA-256 of a certificate's DER encoding: the certificate's
// standard SHA-256 fingerprint (openssl x509 -fingerprint -sha256).
type Thumbprint [digestSize]byte

// Challenge is a 20-byte fresh value (Chall-C, Chall-M, ErrorNonce) that a
// signed reply must echo.
type Challenge [challengeSize]byte

// XID is the 20-byte global transaction identifier.
type XID [idSize]byte

// RRPID is the 20-byte request/response pair identifier; a response echoes
// the request's.
type RRPID [idSize]byte

// Nonce is a 32-byte random value (ODSalt, EXNonce, CardSecret, PANSecret).
type Nonce [nonceSize]byte

// ThumbprintOf returns the thumbprint of a DER certificate.
func ThumbprintOf(certDER []byte) Thumbprint { return sha256.Sum256(certDER) }

// Amount is a CurrencyAmount: an ISO 4217 numeric currency code and a value
// in that currency's minor units (cents for USD, 978 EUR in cents, 392 JPY in
// yen).
type Amount struct {
	Currency uint16 // ISO 4217 numeric code, 1..999
	Value    int64  // minor units, >= 0
}

func (a Amount) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(a.Currency))
		b.AddASN1Int64(a.Value)
	})
}

func (a *Amount) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		a.Currency = uint16(r.Int("currency", 1, 999))
		a.Value = r.Int("amount", 0, 1<<62)
	})
}

// TransIDs identifies a transaction: {LID-C, LID-M, XID, PReqDate, Language}.
type TransIDs struct {
	LIDC     []byte // cardholder's local id, 1..20 bytes
	LIDM     []byte // merchant's local id, 0 (absent) or 1..20 bytes
	XID      XID
	PReqDate time.Time // whole seconds, UTC
	Language string    // BCP 47 tag, e.g. "en"
}

// Equal reports whether two TransIDs are field-for-field equal.
func (t *TransIDs) Equal(u *TransIDs) bool {
	return bytes.Equal(t.LIDC, u.LIDC) && bytes.Equal(t.LIDM, u.LIDM) && t.XID == u.XID &&
		t.PReqDate.Equal(u.PReqDate) && t.Language == u.Language
}

// compareTransIDs returns CodeXIDMismatch when the XIDs differ and
// CodeTransIDsMismatch when another field does.
func compareTransIDs(got, want *TransIDs, where string) error {
	if got.XID != want.XID {
		return fail(CodeXIDMismatch, "%s names another transaction (XID)", where)
	}
	if !got.Equal(want) {
		return fail(CodeTransIDsMismatch, "%s TransIDs differ from the transaction's", where)
	}
	return nil
}

func (t *TransIDs) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(t.LIDC)
		if len(t.LIDM) > 0 {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(t.LIDM) })
		}
		b.AddASN1OctetString(t.XID[:])
		der.AddTime(b, t.PReqDate)
		der.AddPrintable(b, t.Language)
	})
}

func (t *TransIDs) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		t.LIDC = r.Octets("lid-C", 1, maxLocalID)
		r.OptionalExplicit(0, "lid-M", func(r *der.Reader) { t.LIDM = r.Octets("", 1, maxLocalID) })
		readFixed(r, "xid", t.XID[:])
		t.PReqDate = r.Time("pReqDate")
		t.Language = r.Printable("language", 1, 35)
	})
}

// readFixed reads an OCTET STRING of exactly len(dst) bytes into dst.
func readFixed(r *der.Reader, name string, dst []byte) {
	copy(dst, r.Octets(name, len(dst), len(dst)))
}

func marshalSuites(b *cryptobyte.Builder, ss []Suite) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		for _, s := range ss {
			b.AddASN1Int64(int64(s))
		}
	})
}

// parseSuites reads a SEQUENCE SIZE(1..4) OF SuiteID. Unknown suites are
// kept (a peer may offer suites we do not know); duplicates are rejected.
func parseSuites(r *der.Reader, name string) []Suite {
	var ss []Suite
	r.SequenceOf(name, 1, 4, func(r *der.Reader) {
		s := Suite(r.Int("", 1, 255))
		for _, t := range ss {
			if t == s {
				r.Fail("", "duplicate suite %d", s)
			}
		}
		ss = append(ss, s)
	})
	return ss
}

func marshalCerts(b *cryptobyte.Builder, certs [][]byte) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		for _, c := range certs {
			b.AddBytes(c)
		}
	})
}

func parseCerts(r *der.Reader, name string) [][]byte {
	var cs [][]byte
	r.SequenceOf(name, 0, MaxCertificates, func(r *der.Reader) {
		cs = append(cs, r.Element("", MaxCertificateSize))
	})
	return cs
}

func marshalSuite(b *cryptobyte.Builder, s Suite) { b.AddASN1Int64(int64(s)) }

func parseSuite(r *der.Reader, name string) Suite { return Suite(r.Int(name, 1, 255)) }
