package protocol

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// This file holds the messages between cardholder and merchant: PInitReq,
// PInitRes, PReq (with OIData and the PI it carries) and PRes. Their ASN.1 is
// in docs/PROTOCOL.md; each type's doc comment repeats it.

// PInitReq is the cardholder's purchase initialization request, sent in the
// clear: it asks the merchant for a transaction (XID), a challenge and the
// gateway's key-exchange certificate.
//
//	PInitReq ::= SEQUENCE {
//	  rrpid     RRPID,
//	  language  Language,
//	  lid-C     LocalID,
//	  lid-M     [0] LocalID OPTIONAL,
//	  chall-C   Challenge,
//	  brandID   BrandID,
//	  bin       BIN,
//	  suites    SEQUENCE SIZE(1..4) OF SuiteID,
//	  thumbs    [1] SEQUENCE SIZE(1..16) OF Thumbprint OPTIONAL }
type PInitReq struct {
	RRPID    RRPID
	Language string
	LIDC     []byte
	LIDM     []byte
	ChallC   Challenge
	BrandID  string
	BIN      string
	Suites   []Suite      // offered, in the cardholder's order of preference
	Thumbs   []Thumbprint // certificates the cardholder already holds
}

func (*PInitReq) Type() MessageType { return TypePInitReq }

func (m *PInitReq) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(m.RRPID[:])
		der.AddPrintable(b, m.Language)
		b.AddASN1OctetString(m.LIDC)
		if len(m.LIDM) > 0 {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(m.LIDM) })
		}
		b.AddASN1OctetString(m.ChallC[:])
		der.AddUTF8(b, m.BrandID)
		der.AddNumeric(b, m.BIN)
		marshalSuites(b, m.Suites)
		if len(m.Thumbs) > 0 {
			der.AddExplicit(b, 1, func(b *cryptobyte.Builder) { marshalThumbs(b, m.Thumbs) })
		}
	})
}

func (m *PInitReq) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", m.RRPID[:])
		m.Language = r.Printable("language", 1, 35)
		m.LIDC = r.Octets("lid-C", 1, maxLocalID)
		r.OptionalExplicit(0, "lid-M", func(r *der.Reader) { m.LIDM = r.Octets("", 1, maxLocalID) })
		readFixed(r, "chall-C", m.ChallC[:])
		m.BrandID = r.UTF8("brandID", 1, 40)
		m.BIN = r.Numeric("bin", 6, 8)
		m.Suites = parseSuites(r, "suites")
		r.OptionalExplicit(1, "thumbs", func(r *der.Reader) { m.Thumbs = parseThumbs(r, "") })
	})
}

func marshalThumbs(b *cryptobyte.Builder, ts []Thumbprint) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		for _, t := range ts {
			b.AddASN1OctetString(t[:])
		}
	})
}

func parseThumbs(r *der.Reader, name string) []Thumbprint {
	var ts []Thumbprint
	r.SequenceOf(name, 1, 16, func(r *der.Reader) {
		var t Thumbprint
		readFixed(r, "", t[:])
		ts = append(ts, t)
	})
	return ts
}

// PInitResData is what the merchant signs in PInitRes. Setpay adds suite and
// offeredSuites to SET's fields: the cardholder checks the echo, so an
// attacker who strips a suite from PInitReq is caught (CodeDowngrade).
//
//	PInitResData ::= SEQUENCE {
//	  transIDs       TransIDs,
//	  rrpid          RRPID,
//	  chall-C        Challenge,
//	  chall-M        Challenge,
//	  suite          SuiteID,
//	  offeredSuites  SEQUENCE SIZE(1..4) OF SuiteID,
//	  peThumb        Thumbprint }
type PInitResData struct {
	TransIDs      TransIDs
	RRPID         RRPID
	ChallC        Challenge
	ChallM        Challenge
	Suite         Suite
	OfferedSuites []Suite
	PEThumb       Thumbprint // the gateway key-exchange certificate C must seal the PI to
}

func (d *PInitResData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		d.TransIDs.marshal(b)
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.ChallC[:])
		b.AddASN1OctetString(d.ChallM[:])
		marshalSuite(b, d.Suite)
		marshalSuites(b, d.OfferedSuites)
		b.AddASN1OctetString(d.PEThumb[:])
	})
}

func (d *PInitResData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.TransIDs.parse(r, "transIDs")
		readFixed(r, "rrpid", d.RRPID[:])
		readFixed(r, "chall-C", d.ChallC[:])
		readFixed(r, "chall-M", d.ChallM[:])
		d.Suite = parseSuite(r, "suite")
		d.OfferedSuites = parseSuites(r, "offeredSuites")
		readFixed(r, "peThumb", d.PEThumb[:])
	})
}

// PInitRes is the merchant's signed answer to PInitReq. Certificates carries
// the merchant's signature chain and the gateway's key-exchange chain, less
// those the cardholder listed in Thumbs.
//
//	PInitRes ::= SEQUENCE { data PInitResData, signature Signature, certificates Certificates }
type PInitRes struct {
	Signed[PInitResData, *PInitResData]
}

func (*PInitRes) Type() MessageType { return TypePInitRes }

// OIData is the order information the merchant sees. It names the gateway
// (peThumb) so that the dual signature, which covers H(OIData), binds the
// cardholder's choice of gateway on the merchant's side too.
//
//	OIData ::= SEQUENCE {
//	  transIDs  TransIDs,
//	  rrpid     RRPID,
//	  chall-C   Challenge,
//	  hod       Digest,
//	  odSalt    Nonce,
//	  chall-M   Challenge,
//	  brandID   BrandID,
//	  bin       BIN,
//	  peThumb   Thumbprint }
type OIData struct {
	TransIDs TransIDs
	RRPID    RRPID // of this PReq; PRes echoes it
	ChallC   Challenge
	HOD      Digest
	ODSalt   Nonce
	ChallM   Challenge
	BrandID  string
	BIN      string
	PEThumb  Thumbprint
}

func (d *OIData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		d.TransIDs.marshal(b)
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.ChallC[:])
		b.AddASN1OctetString(d.HOD[:])
		b.AddASN1OctetString(d.ODSalt[:])
		b.AddASN1OctetString(d.ChallM[:])
		der.AddUTF8(b, d.BrandID)
		der.AddNumeric(b, d.BIN)
		b.AddASN1OctetString(d.PEThumb[:])
	})
}

func (d *OIData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.TransIDs.parse(r, "transIDs")
		readFixed(r, "rrpid", d.RRPID[:])
		readFixed(r, "chall-C", d.ChallC[:])
		readFixed(r, "hod", d.HOD[:])
		readFixed(r, "odSalt", d.ODSalt[:])
		readFixed(r, "chall-M", d.ChallM[:])
		d.BrandID = r.UTF8("brandID", 1, 40)
		d.BIN = r.Numeric("bin", 6, 8)
		readFixed(r, "peThumb", d.PEThumb[:])
	})
}

// PI is the payment instruction as the merchant receives it and forwards it,
// unchanged, to the gateway inside AuthReq. The merchant cannot open Sealed.
//
//	PI ::= CHOICE {
//	  dualSigned [0] PIDualSigned,
//	  unsigned   [1] PIUnsigned }
//	PIDualSigned ::= SEQUENCE { sealedPI Envelope, dualSignature Signature, certificates Certificates }
//	PIUnsigned   ::= SEQUENCE { sealedPI Envelope }
type PI struct {
	Sealed Envelope // HPKE of PIContent to the gateway
	// DualSignature is nil for a cardholder without a certificate.
	DualSignature *Signature
	Certificates  [][]byte // the cardholder's chain (dual-signed only)
}

// DualSigned reports whether p carries a dual signature.
func (p *PI) DualSigned() bool { return p.DualSignature != nil }

// marshalBody writes the PIDualSigned or PIUnsigned SEQUENCE.
func (p *PI) marshalBody(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		p.Sealed.marshal(b)
		if p.DualSignature != nil {
			p.DualSignature.marshal(b)
			marshalCerts(b, p.Certificates)
		}
	})
}

func (p *PI) parseBody(r *der.Reader, name string, dual bool) {
	r.Sequence(name, func(r *der.Reader) {
		p.Sealed.parse(r, "sealedPI")
		if dual {
			p.DualSignature = new(Signature)
			p.DualSignature.parse(r, "dualSignature")
			p.Certificates = parseCerts(r, "certificates")
		}
	})
}

// choiceTag is the PI (and PReq) CHOICE alternative: 0 dual-signed, 1 unsigned.
func (p *PI) choiceTag() int {
	if p.DualSignature != nil {
		return 0
	}
	return 1
}

func (p *PI) marshal(b *cryptobyte.Builder) { der.AddExplicit(b, p.choiceTag(), p.marshalBody) }

func (p *PI) parse(r *der.Reader, name string) {
	r.Choice(name, []int{0, 1}, func(tag int, r *der.Reader) { p.parseBody(r, "", tag == 0) })
}

// PReq is the purchase request: the order information for the merchant and
// the payment instruction for the gateway, linked by the dual signature. A
// cardholder without a certificate sends the unsigned variant (PI without
// dual signature, no PIMD).
//
//	PReq ::= CHOICE {
//	  dualSigned [0] PReqDualSigned,
//	  unsigned   [1] PReqUnsigned }
//	PReqDualSigned ::= SEQUENCE { oiData OIData, piMD Digest, pi PIDualSigned }
//	PReqUnsigned   ::= SEQUENCE { oiData OIData, pi PIUnsigned }
//
// On the wire the pi field is the PIDualSigned or PIUnsigned SEQUENCE itself
// (no PI CHOICE tag): the PReq alternative already says which it is.
type PReq struct {
	OIData OIData
	PIMD   Digest // H(PIData), dual-signed only: lets the merchant check the dual signature
	PI     PI
}

func (*PReq) Type() MessageType { return TypePReq }

func (m *PReq) marshal(b *cryptobyte.Builder) {
	der.AddExplicit(b, m.PI.choiceTag(), func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			m.OIData.marshal(b)
			if m.PI.DualSignature != nil {
				b.AddASN1OctetString(m.PIMD[:])
			}
			m.PI.marshalBody(b)
		})
	})
}

func (m *PReq) parse(r *der.Reader, name string) {
	r.Choice(name, []int{0, 1}, func(tag int, r *der.Reader) {
		r.Sequence("", func(r *der.Reader) {
			m.OIData.parse(r, "oiData")
			if tag == 0 {
				readFixed(r, "piMD", m.PIMD[:])
			}
			m.PI.parseBody(r, "pi", tag == 0)
		})
	})
}

// PurchStatus is the outcome reported in PRes.
type PurchStatus int

const (
	PurchApproved      PurchStatus = 0
	PurchDeclined      PurchStatus = 1
	PurchOrderReceived PurchStatus = 2 // authorization not yet performed
)

// PResData is what the merchant signs in PRes.
//
//	PResData ::= SEQUENCE {
//	  transIDs  TransIDs,
//	  rrpid     RRPID,            -- echoes OIData.rrpid
//	  chall-C   Challenge,        -- echoes OIData.chall-C
//	  status    ENUMERATED { approved(0), declined(1), orderReceived(2) },
//	  authAmt   [0] CurrencyAmount OPTIONAL,   -- present iff approved
//	  reason    [1] DeclineReason OPTIONAL }   -- present iff declined
type PResData struct {
	TransIDs TransIDs
	RRPID    RRPID
	ChallC   Challenge
	Status   PurchStatus
	AuthAmt  *Amount
	Reason   DeclineReason
}

func (d *PResData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		d.TransIDs.marshal(b)
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.ChallC[:])
		b.AddASN1Enum(int64(d.Status))
		if d.AuthAmt != nil {
			der.AddExplicit(b, 0, d.AuthAmt.marshal)
		}
		if d.Reason != 0 {
			der.AddExplicit(b, 1, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(d.Reason)) })
		}
	})
}

func (d *PResData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.TransIDs.parse(r, "transIDs")
		readFixed(r, "rrpid", d.RRPID[:])
		readFixed(r, "chall-C", d.ChallC[:])
		d.Status = PurchStatus(r.Enum("status", 0, 2))
		r.OptionalExplicit(0, "authAmt", func(r *der.Reader) {
			d.AuthAmt = new(Amount)
			d.AuthAmt.parse(r, "")
		})
		r.OptionalExplicit(1, "reason", func(r *der.Reader) { d.Reason = DeclineReason(r.Enum("", 1, maxDeclineReason)) })
		if (d.AuthAmt != nil) != (d.Status == PurchApproved) {
			r.Fail("authAmt", "present iff status is approved")
		}
		if (d.Reason != 0) != (d.Status == PurchDeclined) {
			r.Fail("reason", "present iff status is declined")
		}
	})
}

// PRes is the merchant's signed purchase response.
//
//	PRes ::= SEQUENCE { data PResData, signature Signature, certificates Certificates }
type PRes struct {
	Signed[PResData, *PResData]
}

func (*PRes) Type() MessageType { return TypePRes }
