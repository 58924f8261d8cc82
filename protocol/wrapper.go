package protocol

import (
	"fmt"
	"reflect"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// Version is the MessageHeader version this package speaks. A message with
// another version is rejected with CodeUnsupportedVersion.
const Version = 1

// MessageType is the tag of a message in the Message CHOICE.
type MessageType int

// Message types (context tags of the Message CHOICE).
const (
	TypePInitReq MessageType = 1
	TypePInitRes MessageType = 2
	TypePReq     MessageType = 3
	TypePRes     MessageType = 4
	TypeAuthReq  MessageType = 5
	TypeAuthRes  MessageType = 6
	TypeCapReq   MessageType = 7
	TypeCapRes   MessageType = 8
	TypeError    MessageType = 9

	// Registration (docs/PROTOCOL.md, "Registration").
	TypeCardCInitReq MessageType = 10
	TypeCardCInitRes MessageType = 11
	TypeRegFormReq   MessageType = 12
	TypeRegFormRes   MessageType = 13
	TypeCertReq      MessageType = 14
	TypeCertRes      MessageType = 15
	TypeCertInqReq   MessageType = 16
	TypeCertInqRes   MessageType = 17
	TypeMeAqCInitReq MessageType = 18
	TypeMeAqCInitRes MessageType = 19
)

var messageTypes = map[MessageType]struct {
	name string
	new  func() Message
}{
	TypePInitReq: {"PInitReq", func() Message { return new(PInitReq) }},
	TypePInitRes: {"PInitRes", func() Message { return new(PInitRes) }},
	TypePReq:     {"PReq", func() Message { return new(PReq) }},
	TypePRes:     {"PRes", func() Message { return new(PRes) }},
	TypeAuthReq:  {"AuthReq", func() Message { return new(AuthReq) }},
	TypeAuthRes:  {"AuthRes", func() Message { return new(AuthRes) }},
	TypeCapReq:   {"CapReq", func() Message { return new(CapReq) }},
	TypeCapRes:   {"CapRes", func() Message { return new(CapRes) }},
	TypeError:    {"Error", func() Message { return new(Error) }},

	TypeCardCInitReq: {"CardCInitReq", func() Message { return new(CardCInitReq) }},
	TypeCardCInitRes: {"CardCInitRes", func() Message { return new(CardCInitRes) }},
	TypeRegFormReq:   {"RegFormReq", func() Message { return new(RegFormReq) }},
	TypeRegFormRes:   {"RegFormRes", func() Message { return new(RegFormRes) }},
	TypeCertReq:      {"CertReq", func() Message { return new(CertReq) }},
	TypeCertRes:      {"CertRes", func() Message { return new(CertRes) }},
	TypeCertInqReq:   {"CertInqReq", func() Message { return new(CertInqReq) }},
	TypeCertInqRes:   {"CertInqRes", func() Message { return new(CertInqRes) }},
	TypeMeAqCInitReq: {"Me-AqCInitReq", func() Message { return new(MeAqCInitReq) }},
	TypeMeAqCInitRes: {"Me-AqCInitRes", func() Message { return new(MeAqCInitRes) }},
}

func (t MessageType) String() string {
	if m, ok := messageTypes[t]; ok {
		return m.name
	}
	return fmt.Sprintf("message type %d", int(t))
}

// Message is one of the protocol messages: the purchase messages (*PInitReq,
// *PInitRes, *PReq, *PRes, *AuthReq, *AuthRes, *CapReq, *CapRes), the
// registration messages (*CardCInitReq ... *MeAqCInitRes) or *Error.
type Message interface {
	Type() MessageType
	codec
}

// Header is the MessageHeader of the MessageWrapper. It is routing
// information and is not covered by any signature: every value a party relies
// on is repeated inside the signed or sealed body.
//
//	MessageHeader ::= SEQUENCE {
//	  version   INTEGER (1),
//	  revision  INTEGER (0..255),
//	  date      Date,
//	  transIDs  [0] TransIDs OPTIONAL,
//	  rrpid     [1] RRPID OPTIONAL,
//	  swIdent   UTF8String (SIZE(1..64)) }
type Header struct {
	Version  int
	Revision int
	Date     time.Time
	TransIDs *TransIDs
	RRPID    *RRPID
	SWIdent  string
}

// SoftwareID is the default swIdent.
const SoftwareID = "setpay/0.1"

func (h *Header) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(h.Version))
		b.AddASN1Int64(int64(h.Revision))
		der.AddTime(b, h.Date)
		if h.TransIDs != nil {
			der.AddExplicit(b, 0, h.TransIDs.marshal)
		}
		if h.RRPID != nil {
			der.AddExplicit(b, 1, func(b *cryptobyte.Builder) { b.AddASN1OctetString(h.RRPID[:]) })
		}
		der.AddUTF8(b, h.SWIdent)
	})
}

func (h *Header) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		h.Version = int(r.Int("version", Version, Version))
		h.Revision = int(r.Int("revision", 0, 255))
		h.Date = r.Time("date")
		r.OptionalExplicit(0, "transIDs", func(r *der.Reader) {
			h.TransIDs = new(TransIDs)
			h.TransIDs.parse(r, "")
		})
		r.OptionalExplicit(1, "rrpid", func(r *der.Reader) {
			h.RRPID = new(RRPID)
			readFixed(r, "", h.RRPID[:])
		})
		h.SWIdent = r.UTF8("swIdent", 1, 64)
	})
}

// Wrapper is the MessageWrapper every message travels in.
//
//	MessageWrapper ::= SEQUENCE { header MessageHeader, message Message }
type Wrapper struct {
	Header  Header
	Message Message
}

// NewWrapper wraps m with a version-1 header dated now.
func NewWrapper(m Message, now time.Time, tids *TransIDs, rrpid *RRPID) *Wrapper {
	return &Wrapper{Header: Header{Version: Version, Date: now, TransIDs: tids, RRPID: rrpid, SWIdent: SoftwareID}, Message: m}
}

func (w *Wrapper) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		w.Header.marshal(b)
		der.AddExplicit(b, int(w.Message.Type()), func(b *cryptobyte.Builder) { w.Message.marshal(b) })
	})
}

func (w *Wrapper) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		w.Header.parse(r, "header")
		var tags []int
		for t := range messageTypes {
			tags = append(tags, int(t))
		}
		r.Choice("message", tags, func(tag int, r *der.Reader) {
			w.Message = messageTypes[MessageType(tag)].new()
			w.Message.parse(r, MessageType(tag).String())
		})
	})
}

// Marshal returns the DER encoding of the wrapper.
func (w *Wrapper) Marshal() []byte { return encode(w) }

// Parse decodes a MessageWrapper strictly (see docs/PROTOCOL.md, "Encoding"):
// inputs over MaxMessageSize fail with CodeTooLarge, a version other than 1
// with CodeUnsupportedVersion, and anything that is not the canonical DER of
// a known message with CodeMalformed.
func Parse(b []byte) (*Wrapper, error) {
	if len(b) > MaxMessageSize {
		return nil, fail(CodeTooLarge, "message of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	// Read the version first so that a future version is reported as such
	// rather than as malformed.
	r := der.NewReader(b, "")
	v := int64(-1)
	r.Sequence("", func(r *der.Reader) {
		r.Sequence("", func(r *der.Reader) { v = r.Int("", 0, 1<<31); r.Skip() })
		r.Skip()
	})
	if r.Err() == nil && v != Version {
		return nil, fail(CodeUnsupportedVersion, "message version %d, want %d", v, Version)
	}
	return decode[Wrapper](b, "MessageWrapper")
}

// Expect returns w's message as T, or CodeUnexpectedMessage naming what came.
func Expect[T Message](w *Wrapper) (T, error) {
	m, ok := w.Message.(T)
	if !ok {
		return m, fail(CodeUnexpectedMessage, "want %s, got %s", reflect.TypeFor[T]().Elem().Name(), w.Message.Type())
	}
	return m, nil
}
