package protocol

import (
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// This file holds the messages between merchant and gateway: AuthReq,
// AuthRes (with the CapToken), CapReq and CapRes. Each is signed by its sender
// and the signed structure is sealed to the receiver's key-exchange
// certificate, so only the two of them read it.

// DeclineReason says why the issuer declined an authorization.
type DeclineReason int

const (
	DeclineInsufficientFunds DeclineReason = 1
	DeclineExpiredCard       DeclineReason = 2
	DeclineBlockedCard       DeclineReason = 3
	DeclineOverLimit         DeclineReason = 4
	DeclineVelocityLimit     DeclineReason = 5
	DeclineUnknownAccount    DeclineReason = 6
	DeclineSuspectedFraud    DeclineReason = 7
	DeclineOther             DeclineReason = 8
	maxDeclineReason                       = 8
)

var declineNames = map[DeclineReason]string{
	DeclineInsufficientFunds: "insufficient funds",
	DeclineExpiredCard:       "expired card",
	DeclineBlockedCard:       "blocked card",
	DeclineOverLimit:         "over limit",
	DeclineVelocityLimit:     "velocity limit exceeded",
	DeclineUnknownAccount:    "unknown account",
	DeclineSuspectedFraud:    "suspected fraud",
	DeclineOther:             "other",
}

func (d DeclineReason) String() string {
	if n, ok := declineNames[d]; ok {
		return n
	}
	return "none"
}

// CheckDigests are the merchant's digests the gateway compares with the PI.
//
//	CheckDigests ::= SEQUENCE { hOIData Digest, hod Digest }
type CheckDigests struct {
	HOIData Digest // OIMD
	HOD     Digest
}

// AuthReqData is the merchant's authorization request.
//
//	AuthReqData ::= SEQUENCE {
//	  transIDs      TransIDs,
//	  rrpid         RRPID,          -- fresh; AuthRes echoes it
//	  authAmt       CurrencyAmount,
//	  checkDigests  CheckDigests,
//	  merchantKE    Thumbprint }    -- the merchant key-exchange certificate to seal AuthRes to
type AuthReqData struct {
	TransIDs     TransIDs
	RRPID        RRPID
	AuthAmt      Amount
	CheckDigests CheckDigests
	MerchantKE   Thumbprint
}

func (d *AuthReqData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		d.TransIDs.marshal(b)
		b.AddASN1OctetString(d.RRPID[:])
		d.AuthAmt.marshal(b)
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(d.CheckDigests.HOIData[:])
			b.AddASN1OctetString(d.CheckDigests.HOD[:])
		})
		b.AddASN1OctetString(d.MerchantKE[:])
	})
}

func (d *AuthReqData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.TransIDs.parse(r, "transIDs")
		readFixed(r, "rrpid", d.RRPID[:])
		d.AuthAmt.parse(r, "authAmt")
		r.Sequence("checkDigests", func(r *der.Reader) {
			readFixed(r, "hOIData", d.CheckDigests.HOIData[:])
			readFixed(r, "hod", d.CheckDigests.HOD[:])
		})
		readFixed(r, "merchantKE", d.MerchantKE[:])
	})
}

// AuthReqSigned is the plaintext sealed in AuthReq: AuthReqData signed by the
// merchant, with the merchant's signature and key-exchange chains.
//
//	AuthReqSigned ::= SEQUENCE { data AuthReqData, signature Signature, certificates Certificates }
type AuthReqSigned = Signed[AuthReqData, *AuthReqData]

// AuthReq is the merchant's authorization request to the gateway: the signed
// request sealed to the gateway, and the cardholder's PI carried unchanged as
// baggage.
//
//	AuthReq ::= SEQUENCE { sealed Envelope, pi PI }
type AuthReq struct {
	Sealed Envelope // HPKE of AuthReqSigned, label "setpay/1 AuthReq envelope", empty aad
	PI     PI
}

func (*AuthReq) Type() MessageType { return TypeAuthReq }

func (m *AuthReq) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		m.Sealed.marshal(b)
		m.PI.marshal(b)
	})
}

func (m *AuthReq) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		m.Sealed.parse(r, "sealed")
		m.PI.parse(r, "pi")
	})
}

// AuthResult is the issuer's answer.
type AuthResult int

const (
	AuthApproved AuthResult = 0
	AuthDeclined AuthResult = 1
)

// AuthResData is the gateway's authorization response. It names the merchant
// (merchantID and the thumbprint of the certificate that signed AuthReq) and,
// in transIDs, the XID: setpay's fix of the second flaw the formal analysis
// found.
//
//	AuthResData ::= SEQUENCE {
//	  transIDs       TransIDs,
//	  rrpid          RRPID,                 -- echoes AuthReqData.rrpid
//	  merchantID     MerchantID,
//	  merchantThumb  Thumbprint,
//	  result         ENUMERATED { approved(0), declined(1) },
//	  authAmt        CurrencyAmount,        -- 0 when declined
//	  authCode       [0] UTF8String (SIZE(1..12)) OPTIONAL,  -- iff approved
//	  reason         [1] DeclineReason OPTIONAL,             -- iff declined
//	  capToken       [2] Envelope OPTIONAL }                 -- iff approved
type AuthResData struct {
	TransIDs      TransIDs
	RRPID         RRPID
	MerchantID    string
	MerchantThumb Thumbprint
	Result        AuthResult
	AuthAmt       Amount
	AuthCode      string
	Reason        DeclineReason
	CapToken      *Envelope
}

func (d *AuthResData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		d.TransIDs.marshal(b)
		b.AddASN1OctetString(d.RRPID[:])
		der.AddUTF8(b, d.MerchantID)
		b.AddASN1OctetString(d.MerchantThumb[:])
		b.AddASN1Enum(int64(d.Result))
		d.AuthAmt.marshal(b)
		if d.AuthCode != "" {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { der.AddUTF8(b, d.AuthCode) })
		}
		if d.Reason != 0 {
			der.AddExplicit(b, 1, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(d.Reason)) })
		}
		if d.CapToken != nil {
			der.AddExplicit(b, 2, d.CapToken.marshal)
		}
	})
}

func (d *AuthResData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.TransIDs.parse(r, "transIDs")
		readFixed(r, "rrpid", d.RRPID[:])
		d.MerchantID = r.UTF8("merchantID", 1, 30)
		readFixed(r, "merchantThumb", d.MerchantThumb[:])
		d.Result = AuthResult(r.Enum("result", 0, 1))
		d.AuthAmt.parse(r, "authAmt")
		r.OptionalExplicit(0, "authCode", func(r *der.Reader) { d.AuthCode = r.UTF8("", 1, 12) })
		r.OptionalExplicit(1, "reason", func(r *der.Reader) { d.Reason = DeclineReason(r.Enum("", 1, maxDeclineReason)) })
		r.OptionalExplicit(2, "capToken", func(r *der.Reader) {
			d.CapToken = new(Envelope)
			d.CapToken.parse(r, "")
		})
		approved := d.Result == AuthApproved
		if (d.AuthCode != "") != approved || (d.CapToken != nil) != approved || (d.Reason != 0) == approved {
			r.Fail("result", "authCode and capToken must be present iff approved, reason iff declined")
		}
		if !approved && d.AuthAmt.Value != 0 {
			r.Fail("authAmt", "a declined authorization has amount 0")
		}
	})
}

// AuthResSigned is the plaintext sealed in AuthRes.
//
//	AuthResSigned ::= SEQUENCE { data AuthResData, signature Signature, certificates Certificates }
type AuthResSigned = Signed[AuthResData, *AuthResData]

// AuthRes is the gateway's authorization response, sealed to the merchant.
//
//	AuthRes ::= SEQUENCE { sealed Envelope }
type AuthRes struct {
	Sealed Envelope // HPKE of AuthResSigned, label "setpay/1 AuthRes envelope", empty aad
}

func (*AuthRes) Type() MessageType { return TypeAuthRes }

func (m *AuthRes) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, m.Sealed.marshal)
}

func (m *AuthRes) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) { m.Sealed.parse(r, "sealed") })
}

// CapTokenData is what the gateway seals for itself in the CapToken, so that
// it can capture later without keeping the PI.
//
//	CapTokenData ::= SEQUENCE {
//	  xid         XID,
//	  merchantID  MerchantID,
//	  authRRPID   RRPID,
//	  authAmt     CurrencyAmount,
//	  authCode    UTF8String (SIZE(1..12)),
//	  authDate    Date,
//	  bankRef     OCTET STRING (SIZE(1..64)) }   -- the issuer's reference for the hold
type CapTokenData struct {
	XID        XID
	MerchantID string
	AuthRRPID  RRPID
	AuthAmt    Amount
	AuthCode   string
	AuthDate   time.Time
	BankRef    []byte
}

func (d *CapTokenData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.XID[:])
		der.AddUTF8(b, d.MerchantID)
		b.AddASN1OctetString(d.AuthRRPID[:])
		d.AuthAmt.marshal(b)
		der.AddUTF8(b, d.AuthCode)
		der.AddTime(b, d.AuthDate)
		b.AddASN1OctetString(d.BankRef)
	})
}

func (d *CapTokenData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "xid", d.XID[:])
		d.MerchantID = r.UTF8("merchantID", 1, 30)
		readFixed(r, "authRRPID", d.AuthRRPID[:])
		d.AuthAmt.parse(r, "authAmt")
		d.AuthCode = r.UTF8("authCode", 1, 12)
		d.AuthDate = r.Time("authDate")
		d.BankRef = r.Octets("bankRef", 1, 64)
	})
}

// CapItem asks to capture one authorization.
//
//	CapItem ::= SEQUENCE {
//	  transIDs   TransIDs,
//	  authRRPID  RRPID,          -- the RRPID of the AuthReq that was approved
//	  capAmt     CurrencyAmount,
//	  capToken   Envelope }
type CapItem struct {
	TransIDs  TransIDs
	AuthRRPID RRPID
	CapAmt    Amount
	CapToken  Envelope
}

func (c *CapItem) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		c.TransIDs.marshal(b)
		b.AddASN1OctetString(c.AuthRRPID[:])
		c.CapAmt.marshal(b)
		c.CapToken.marshal(b)
	})
}

func (c *CapItem) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		c.TransIDs.parse(r, "transIDs")
		readFixed(r, "authRRPID", c.AuthRRPID[:])
		c.CapAmt.parse(r, "capAmt")
		c.CapToken.parse(r, "capToken")
	})
}

// CapReqData is a batch of captures.
//
//	CapReqData ::= SEQUENCE {
//	  rrpid       RRPID,
//	  batchID     INTEGER (0..2147483647),
//	  merchantKE  Thumbprint,   -- the merchant key-exchange certificate to seal CapRes to
//	  items       SEQUENCE SIZE(1..1000) OF CapItem }
type CapReqData struct {
	RRPID      RRPID
	BatchID    int64
	MerchantKE Thumbprint
	Items      []CapItem
}

func (d *CapReqData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1Int64(d.BatchID)
		b.AddASN1OctetString(d.MerchantKE[:])
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			for i := range d.Items {
				d.Items[i].marshal(b)
			}
		})
	})
}

func (d *CapReqData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.BatchID = r.Int("batchID", 0, 1<<31-1)
		readFixed(r, "merchantKE", d.MerchantKE[:])
		r.SequenceOf("items", 1, MaxCapItems, func(r *der.Reader) {
			var it CapItem
			it.parse(r, "")
			d.Items = append(d.Items, it)
		})
	})
}

// CapReqSigned is the plaintext sealed in CapReq.
//
//	CapReqSigned ::= SEQUENCE { data CapReqData, signature Signature, certificates Certificates }
type CapReqSigned = Signed[CapReqData, *CapReqData]

// CapReq is the merchant's capture request, sealed to the gateway.
//
//	CapReq ::= SEQUENCE { sealed Envelope }
type CapReq struct {
	Sealed Envelope // HPKE of CapReqSigned, label "setpay/1 CapReq envelope", empty aad
}

func (*CapReq) Type() MessageType { return TypeCapReq }

func (m *CapReq) marshal(b *cryptobyte.Builder) { der.AddSequence(b, m.Sealed.marshal) }

func (m *CapReq) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) { m.Sealed.parse(r, "sealed") })
}

// CapResItem is the result of one capture. Code 0 means captured; any other
// value is the protocol error code of the check that refused the item.
//
//	CapResItem ::= SEQUENCE { xid XID, code INTEGER (0..65535), capAmt CurrencyAmount }
type CapResItem struct {
	XID    XID
	Code   Code
	CapAmt Amount // captured amount; 0 if refused
}

func (c *CapResItem) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(c.XID[:])
		b.AddASN1Int64(int64(c.Code))
		c.CapAmt.marshal(b)
	})
}

func (c *CapResItem) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "xid", c.XID[:])
		c.Code = Code(r.Int("code", 0, 65535))
		c.CapAmt.parse(r, "capAmt")
	})
}

// CapResData is the gateway's answer to a capture batch, item for item.
//
//	CapResData ::= SEQUENCE {
//	  rrpid       RRPID,        -- echoes CapReqData.rrpid
//	  merchantID  MerchantID,
//	  batchID     INTEGER (0..2147483647),
//	  items       SEQUENCE SIZE(1..1000) OF CapResItem }
type CapResData struct {
	RRPID      RRPID
	MerchantID string
	BatchID    int64
	Items      []CapResItem
}

func (d *CapResData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		der.AddUTF8(b, d.MerchantID)
		b.AddASN1Int64(d.BatchID)
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			for i := range d.Items {
				d.Items[i].marshal(b)
			}
		})
	})
}

func (d *CapResData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.MerchantID = r.UTF8("merchantID", 1, 30)
		d.BatchID = r.Int("batchID", 0, 1<<31-1)
		r.SequenceOf("items", 1, MaxCapItems, func(r *der.Reader) {
			var it CapResItem
			it.parse(r, "")
			d.Items = append(d.Items, it)
		})
	})
}

// CapResSigned is the plaintext sealed in CapRes.
//
//	CapResSigned ::= SEQUENCE { data CapResData, signature Signature, certificates Certificates }
type CapResSigned = Signed[CapResData, *CapResData]

// CapRes is the gateway's capture response, sealed to the merchant.
//
//	CapRes ::= SEQUENCE { sealed Envelope }
type CapRes struct {
	Sealed Envelope // HPKE of CapResSigned, label "setpay/1 CapRes envelope", empty aad
}

func (*CapRes) Type() MessageType { return TypeCapRes }

func (m *CapRes) marshal(b *cryptobyte.Builder) { der.AddSequence(b, m.Sealed.marshal) }

func (m *CapRes) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) { m.Sealed.parse(r, "sealed") })
}
