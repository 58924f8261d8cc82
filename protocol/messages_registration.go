package protocol

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// This file holds the registration messages (docs/PROTOCOL.md,
// "Registration"): the cardholder's CardCInitReq/Res and RegFormReq/Res, the
// merchant's and gateway's Me-AqCInitReq/Res, and the CertReq/Res and
// CertInqReq/Res both use. Requests that carry card data or keys are sealed
// to the CA's key-exchange certificate; the CA's replies are signed by its
// registration signature certificate, and CertRes/CertInqRes are moreover
// encrypted under a key exported from the request's HPKE context, so that
// only the applicant reads its NonceCCA.

// Role is the kind of end entity a registration is for.
type Role int

const (
	RoleCardholder Role = 1
	RoleMerchant   Role = 2
	RoleGateway    Role = 3
)

func (r Role) String() string {
	switch r {
	case RoleCardholder:
		return "cardholder"
	case RoleMerchant:
		return "merchant"
	case RoleGateway:
		return "gateway"
	}
	return "role(?)"
}

// CAType returns the type of the CA that registers r.
func (r Role) CAType() CertType {
	switch r {
	case RoleCardholder:
		return CertCardholderCA
	case RoleMerchant:
		return CertMerchantCA
	case RoleGateway:
		return CertGatewayCA
	}
	return 0
}

// CertTypes returns the signature, key-exchange and TLS certificate types
// of r's end entities (key-exchange is 0 for cardholders).
func (r Role) CertTypes() (sig, ke, tls CertType) {
	switch r {
	case RoleCardholder:
		return CertCardholderSignature, 0, CertCardholderTLS
	case RoleMerchant:
		return CertMerchantSignature, CertMerchantKeyExchange, CertMerchantTLS
	case RoleGateway:
		return CertGatewaySignature, CertGatewayKeyExchange, CertGatewayTLS
	}
	return 0, 0, 0
}

// RequestType says whether a registration is a first one or a renewal.
type RequestType int

const (
	RequestInitial RequestType = 1
	// RequestRenewal replaces a certificate the applicant holds (named by
	// CertReqData.Renews); the CA revokes the old one (reason superseded)
	// when it issues the new one.
	RequestRenewal RequestType = 2
)

// Identity names a merchant (its merchant ID and its acquirer's BIN) or a
// gateway (its gateway ID, no BIN) in registration.
//
//	Identity ::= SEQUENCE { id UTF8String (SIZE(1..30)), acquirerBIN [0] NumericString (SIZE(6..8)) OPTIONAL }
type Identity struct {
	ID          string
	AcquirerBIN string
}

func (i *Identity) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		der.AddUTF8(b, i.ID)
		if i.AcquirerBIN != "" {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { der.AddNumeric(b, i.AcquirerBIN) })
		}
	})
}

func (i *Identity) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		i.ID = r.UTF8("id", 1, 30)
		r.OptionalExplicit(0, "acquirerBIN", func(r *der.Reader) { i.AcquirerBIN = r.Numeric("", 6, 8) })
	})
}

// RegField is one field of a registration form.
//
//	RegField ::= SEQUENCE { name PrintableString (SIZE(1..32)), label UTF8String (SIZE(1..128)), secret BOOLEAN }
type RegField struct {
	Name   string // e.g. "activation-code"
	Label  string // what the applicant is shown
	Secret bool   // the value is a secret (the applicant's software hides it)
}

// RegForm is the form the issuer (cardholder) or acquirer/brand (merchant,
// gateway) wants filled.
//
//	RegForm ::= SEQUENCE { policy UTF8String (SIZE(1..1024)), fields SEQUENCE SIZE(0..16) OF RegField }
type RegForm struct {
	Policy string
	Fields []RegField
}

func (f *RegForm) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		der.AddUTF8(b, f.Policy)
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			for _, fl := range f.Fields {
				der.AddSequence(b, func(b *cryptobyte.Builder) {
					der.AddPrintable(b, fl.Name)
					der.AddUTF8(b, fl.Label)
					b.AddASN1Boolean(fl.Secret)
				})
			}
		})
	})
}

func (f *RegForm) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		f.Policy = r.UTF8("policy", 1, 1024)
		r.SequenceOf("fields", 0, 16, func(r *der.Reader) {
			var fl RegField
			r.Sequence("", func(r *der.Reader) {
				fl.Name = r.Printable("name", 1, 32)
				fl.Label = r.UTF8("label", 1, 128)
				fl.Secret = r.Bool("secret")
			})
			f.Fields = append(f.Fields, fl)
		})
	})
}

// FormValue is one filled field.
//
//	FormValue ::= SEQUENCE { name PrintableString (SIZE(1..32)), value UTF8String (SIZE(1..128)) }
type FormValue struct {
	Name  string
	Value string // may be a secret: never logged
}

// ---- Cardholder: CardCInitReq / CardCInitRes ----

// CardCInitReq opens a cardholder registration. It travels in the clear.
//
//	CardCInitReq ::= SEQUENCE {
//	  rrpid    RRPID,
//	  lid-EE   LocalID,
//	  chall-EE Challenge,
//	  brandID  BrandID,
//	  suite    SuiteID,
//	  thumbs   [0] SEQUENCE SIZE(1..16) OF Thumbprint OPTIONAL }
type CardCInitReq struct {
	RRPID   RRPID
	LIDEE   []byte
	ChallEE Challenge
	BrandID string
	Suite   Suite
	Thumbs  []Thumbprint
}

func (*CardCInitReq) Type() MessageType { return TypeCardCInitReq }

func (m *CardCInitReq) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(m.RRPID[:])
		b.AddASN1OctetString(m.LIDEE)
		b.AddASN1OctetString(m.ChallEE[:])
		der.AddUTF8(b, m.BrandID)
		marshalSuite(b, m.Suite)
		if len(m.Thumbs) > 0 {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { marshalThumbs(b, m.Thumbs) })
		}
	})
}

func (m *CardCInitReq) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", m.RRPID[:])
		m.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE", m.ChallEE[:])
		m.BrandID = r.UTF8("brandID", 1, 40)
		m.Suite = parseSuite(r, "suite")
		r.OptionalExplicit(0, "thumbs", func(r *der.Reader) { m.Thumbs = parseThumbs(r, "") })
	})
}

// CAInitData is what a role CA signs in reply to CardCInitReq or
// Me-AqCInitReq: it echoes the applicant's values, names its key-exchange
// certificate (caeThumb) and, for merchants and gateways, opens the
// CA's side of the registration (lid-CA, chall-CA) with the form to fill.
//
//	CAInitData ::= SEQUENCE {
//	  rrpid       RRPID,
//	  lid-EE      LocalID,
//	  chall-EE    Challenge,
//	  suite       SuiteID,
//	  caeThumb    Thumbprint,
//	  session     [0] CASession OPTIONAL,   -- Me-AqCInitRes only
//	  bci         [1] BCI OPTIONAL }
//	CASession ::= SEQUENCE { lid-CA LocalID, chall-CA Challenge, requestType RequestType, form RegForm }
type CAInitData struct {
	RRPID    RRPID
	LIDEE    []byte
	ChallEE  Challenge
	Suite    Suite
	CAEThumb Thumbprint
	Session  *CASession
	BCI      *BCI
}

// CASession is the CA's side of a registration: its local id and challenge,
// which the CertReq must carry, and the form to fill.
type CASession struct {
	LIDCA       []byte
	ChallCA     Challenge
	RequestType RequestType
	Form        RegForm
}

func (s *CASession) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(s.LIDCA)
		b.AddASN1OctetString(s.ChallCA[:])
		b.AddASN1Enum(int64(s.RequestType))
		s.Form.marshal(b)
	})
}

func (s *CASession) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		s.LIDCA = r.Octets("lid-CA", 1, maxLocalID)
		readFixed(r, "chall-CA", s.ChallCA[:])
		s.RequestType = RequestType(r.Enum("requestType", 1, 2))
		s.Form.parse(r, "form")
	})
}

func (d *CAInitData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.LIDEE)
		b.AddASN1OctetString(d.ChallEE[:])
		marshalSuite(b, d.Suite)
		b.AddASN1OctetString(d.CAEThumb[:])
		if d.Session != nil {
			der.AddExplicit(b, 0, d.Session.marshal)
		}
		if d.BCI != nil {
			der.AddExplicit(b, 1, d.BCI.marshal)
		}
	})
}

func (d *CAInitData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE", d.ChallEE[:])
		d.Suite = parseSuite(r, "suite")
		readFixed(r, "caeThumb", d.CAEThumb[:])
		r.OptionalExplicit(0, "session", func(r *der.Reader) {
			d.Session = new(CASession)
			d.Session.parse(r, "")
		})
		r.OptionalExplicit(1, "bci", func(r *der.Reader) {
			d.BCI = new(BCI)
			d.BCI.parse(r, "")
		})
	})
}

// CardCInitRes is the cardholder CA's signed reply to CardCInitReq.
// Certificates carries the CA's registration signature chain and its
// key-exchange certificate, less those the cardholder listed in Thumbs.
//
//	CardCInitRes ::= SEQUENCE { data CAInitData, signature Signature, certificates Certificates }
type CardCInitRes struct {
	Signed[CAInitData, *CAInitData]
}

func (*CardCInitRes) Type() MessageType { return TypeCardCInitRes }

// ---- Cardholder: RegFormReq / RegFormRes ----

// RegFormReqData asks the cardholder CA for the registration form of the
// card's issuer. It carries the PAN, so it travels sealed (RegFormReq).
//
//	RegFormReqData ::= SEQUENCE {
//	  rrpid       RRPID,
//	  lid-EE      LocalID,
//	  chall-EE2   Challenge,
//	  requestType RequestType,
//	  language    Language,
//	  pan         NumericString (SIZE(12..19)) }
type RegFormReqData struct {
	RRPID       RRPID
	LIDEE       []byte
	ChallEE2    Challenge
	RequestType RequestType
	Language    string
	PAN         PAN
}

func (d *RegFormReqData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.LIDEE)
		b.AddASN1OctetString(d.ChallEE2[:])
		b.AddASN1Enum(int64(d.RequestType))
		der.AddPrintable(b, d.Language)
		der.AddNumeric(b, d.PAN.digits)
	})
}

func (d *RegFormReqData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE2", d.ChallEE2[:])
		d.RequestType = RequestType(r.Enum("requestType", 1, 2))
		d.Language = r.Printable("language", 1, 35)
		d.PAN = PAN{digits: r.Numeric("pan", 12, 19)}
	})
}

// RegFormReq is RegFormReqData sealed to the cardholder CA's key-exchange
// certificate.
//
//	RegFormReq ::= Envelope   -- of RegFormReqData
type RegFormReq struct{ Envelope }

func (*RegFormReq) Type() MessageType { return TypeRegFormReq }

// RegFormResData is the cardholder CA's signed reply: the issuer's form and
// the CA's side of the registration.
//
//	RegFormResData ::= SEQUENCE {
//	  rrpid     RRPID,
//	  lid-EE    LocalID,
//	  chall-EE2 Challenge,
//	  session   CASession,
//	  bci       [0] BCI OPTIONAL }
type RegFormResData struct {
	RRPID    RRPID
	LIDEE    []byte
	ChallEE2 Challenge
	Session  CASession
	BCI      *BCI
}

func (d *RegFormResData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.LIDEE)
		b.AddASN1OctetString(d.ChallEE2[:])
		d.Session.marshal(b)
		if d.BCI != nil {
			der.AddExplicit(b, 0, d.BCI.marshal)
		}
	})
}

func (d *RegFormResData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE2", d.ChallEE2[:])
		d.Session.parse(r, "session")
		r.OptionalExplicit(0, "bci", func(r *der.Reader) {
			d.BCI = new(BCI)
			d.BCI.parse(r, "")
		})
	})
}

// RegFormRes is the cardholder CA's signed RegFormResData.
//
//	RegFormRes ::= SEQUENCE { data RegFormResData, signature Signature, certificates Certificates }
type RegFormRes struct {
	Signed[RegFormResData, *RegFormResData]
}

func (*RegFormRes) Type() MessageType { return TypeRegFormRes }

// ---- Merchant and gateway: Me-AqCInitReq / Me-AqCInitRes ----

// MeAqCInitReq opens a merchant or gateway registration, in the clear.
//
//	Me-AqCInitReq ::= SEQUENCE {
//	  rrpid       RRPID,
//	  lid-EE      LocalID,
//	  chall-EE    Challenge,
//	  role        ENUMERATED { merchant(2), gateway(3) },
//	  requestType RequestType,
//	  identity    Identity,
//	  brandID     BrandID,
//	  suite       SuiteID,
//	  language    Language,
//	  thumbs      [0] SEQUENCE SIZE(1..16) OF Thumbprint OPTIONAL }
type MeAqCInitReq struct {
	RRPID       RRPID
	LIDEE       []byte
	ChallEE     Challenge
	Role        Role
	RequestType RequestType
	Identity    Identity
	BrandID     string
	Suite       Suite
	Language    string
	Thumbs      []Thumbprint
}

func (*MeAqCInitReq) Type() MessageType { return TypeMeAqCInitReq }

func (m *MeAqCInitReq) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(m.RRPID[:])
		b.AddASN1OctetString(m.LIDEE)
		b.AddASN1OctetString(m.ChallEE[:])
		b.AddASN1Enum(int64(m.Role))
		b.AddASN1Enum(int64(m.RequestType))
		m.Identity.marshal(b)
		der.AddUTF8(b, m.BrandID)
		marshalSuite(b, m.Suite)
		der.AddPrintable(b, m.Language)
		if len(m.Thumbs) > 0 {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { marshalThumbs(b, m.Thumbs) })
		}
	})
}

func (m *MeAqCInitReq) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", m.RRPID[:])
		m.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE", m.ChallEE[:])
		m.Role = Role(r.Enum("role", int64(RoleMerchant), int64(RoleGateway)))
		m.RequestType = RequestType(r.Enum("requestType", 1, 2))
		m.Identity.parse(r, "identity")
		m.BrandID = r.UTF8("brandID", 1, 40)
		m.Suite = parseSuite(r, "suite")
		m.Language = r.Printable("language", 1, 35)
		r.OptionalExplicit(0, "thumbs", func(r *der.Reader) { m.Thumbs = parseThumbs(r, "") })
	})
}

// MeAqCInitRes is the merchant or gateway CA's signed reply, with the CA's
// session (lid-CA, chall-CA, form) always present.
//
//	Me-AqCInitRes ::= SEQUENCE { data CAInitData, signature Signature, certificates Certificates }
type MeAqCInitRes struct {
	Signed[CAInitData, *CAInitData]
}

func (*MeAqCInitRes) Type() MessageType { return TypeMeAqCInitRes }

// ---- CertReq / CertRes ----

// AccountData is the card data of a cardholder's CertReq.
//
//	AccountData ::= SEQUENCE {
//	  pan        NumericString (SIZE(12..19)),
//	  cardExpiry NumericString (SIZE(6)),   -- YYYYMM
//	  cardSecret Nonce,
//	  exNonce    Nonce }
type AccountData struct {
	PAN        PAN
	CardExpiry string
	CardSecret Secret
	EXNonce    Nonce
}

func (d *AccountData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		der.AddNumeric(b, d.PAN.digits)
		der.AddNumeric(b, d.CardExpiry)
		b.AddASN1OctetString(d.CardSecret[:])
		b.AddASN1OctetString(d.EXNonce[:])
	})
}

func (d *AccountData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.PAN = PAN{digits: r.Numeric("pan", 12, 19)}
		d.CardExpiry = r.Numeric("cardExpiry", 6, 6)
		readFixed(r, "cardSecret", d.CardSecret[:])
		readFixed(r, "exNonce", d.EXNonce[:])
	})
}

// maxSPKI bounds a SubjectPublicKeyInfo in a CertReq (an X-Wing key is 1216
// bytes plus framing).
const maxSPKI = 2048

// CertReqData is the certificate request. It is signed (CertReqSigned) by
// the new signature key it asks to certify or, when it asks for none, by the
// applicant's current signature certificate; then sealed to the CA.
//
//	CertReqData ::= SEQUENCE {
//	  rrpid          RRPID,
//	  role           Role,
//	  requestType    RequestType,
//	  lid-EE         LocalID,
//	  chall-EE3      Challenge,
//	  lid-CA         LocalID,
//	  chall-CA       Challenge,
//	  identity       [0] Identity OPTIONAL,      -- merchant, gateway
//	  account        [1] AccountData OPTIONAL,   -- cardholder
//	  formValues     [2] SEQUENCE SIZE(1..16) OF FormValue OPTIONAL,
//	  signatureKey   [3] SubjectPublicKeyInfo OPTIONAL,
//	  keyExchangeKey [4] SubjectPublicKeyInfo OPTIONAL,
//	  tlsKey         [5] SubjectPublicKeyInfo OPTIONAL,
//	  renews         [6] Thumbprint OPTIONAL }
type CertReqData struct {
	RRPID       RRPID
	Role        Role
	RequestType RequestType
	LIDEE       []byte
	ChallEE3    Challenge
	LIDCA       []byte
	ChallCA     Challenge
	Identity    *Identity
	Account     *AccountData
	FormValues  []FormValue
	// The keys to certify, as DER SubjectPublicKeyInfo: a signature key of
	// the suite (Ed25519 or ECDSA P-256), a key-exchange key of the suite
	// (X-Wing or P-256) and a TLS key (ECDSA P-256 or Ed25519).
	SignatureKey   []byte
	KeyExchangeKey []byte
	TLSKey         []byte
	Renews         *Thumbprint
}

func (d *CertReqData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1Enum(int64(d.Role))
		b.AddASN1Enum(int64(d.RequestType))
		b.AddASN1OctetString(d.LIDEE)
		b.AddASN1OctetString(d.ChallEE3[:])
		b.AddASN1OctetString(d.LIDCA)
		b.AddASN1OctetString(d.ChallCA[:])
		if d.Identity != nil {
			der.AddExplicit(b, 0, d.Identity.marshal)
		}
		if d.Account != nil {
			der.AddExplicit(b, 1, d.Account.marshal)
		}
		if len(d.FormValues) > 0 {
			der.AddExplicit(b, 2, func(b *cryptobyte.Builder) {
				der.AddSequence(b, func(b *cryptobyte.Builder) {
					for _, v := range d.FormValues {
						der.AddSequence(b, func(b *cryptobyte.Builder) {
							der.AddPrintable(b, v.Name)
							der.AddUTF8(b, v.Value)
						})
					}
				})
			})
		}
		for i, k := range [][]byte{d.SignatureKey, d.KeyExchangeKey, d.TLSKey} {
			if k != nil {
				der.AddExplicit(b, 3+i, func(b *cryptobyte.Builder) { b.AddBytes(k) })
			}
		}
		if d.Renews != nil {
			der.AddExplicit(b, 6, func(b *cryptobyte.Builder) { b.AddASN1OctetString(d.Renews[:]) })
		}
	})
}

func (d *CertReqData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.Role = Role(r.Enum("role", 1, 3))
		d.RequestType = RequestType(r.Enum("requestType", 1, 2))
		d.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE3", d.ChallEE3[:])
		d.LIDCA = r.Octets("lid-CA", 1, maxLocalID)
		readFixed(r, "chall-CA", d.ChallCA[:])
		r.OptionalExplicit(0, "identity", func(r *der.Reader) {
			d.Identity = new(Identity)
			d.Identity.parse(r, "")
		})
		r.OptionalExplicit(1, "account", func(r *der.Reader) {
			d.Account = new(AccountData)
			d.Account.parse(r, "")
		})
		r.OptionalExplicit(2, "formValues", func(r *der.Reader) {
			r.SequenceOf("", 1, 16, func(r *der.Reader) {
				var v FormValue
				r.Sequence("", func(r *der.Reader) {
					v.Name = r.Printable("name", 1, 32)
					v.Value = r.UTF8("value", 1, 128)
				})
				d.FormValues = append(d.FormValues, v)
			})
		})
		for i, dst := range []*[]byte{&d.SignatureKey, &d.KeyExchangeKey, &d.TLSKey} {
			field := [...]string{"signatureKey", "keyExchangeKey", "tlsKey"}[i]
			r.OptionalExplicit(3+i, field, func(r *der.Reader) { *dst = r.Element("", maxSPKI) })
		}
		r.OptionalExplicit(6, "renews", func(r *der.Reader) {
			d.Renews = new(Thumbprint)
			readFixed(r, "", d.Renews[:])
		})
	})
}

// CertReqSigned is the signed CertReqData. When the request carries a
// signature key, Signature.Signer is [KeyThumbprint] of it and Certificates
// is empty; otherwise Signer is the thumbprint of the applicant's current
// signature certificate, carried in Certificates with its chain.
type CertReqSigned = Signed[CertReqData, *CertReqData]

// CertReq is CertReqSigned sealed to the CA's key-exchange certificate.
//
//	CertReq ::= Envelope   -- of CertReqSigned
type CertReq struct{ Envelope }

func (*CertReq) Type() MessageType { return TypeCertReq }

// CertStatus is the outcome a CertRes reports. Refusals are Error messages.
type CertStatus int

const (
	// CertIssued: the certificates are in the response.
	CertIssued CertStatus = 1
	// CertPending: the issuer has not decided yet; ask again with CertInqReq
	// and the request id.
	CertPending CertStatus = 2
)

// CertResData is the CA's answer to CertReq or CertInqReq.
//
//	CertResData ::= SEQUENCE {
//	  rrpid        RRPID,
//	  lid-EE       LocalID,
//	  chall-EE     Challenge,        -- chall-EE3 of CertReq, chall-EE4 of CertInqReq
//	  status       ENUMERATED { issued(1), pending(2) },
//	  requestID    [0] OCTET STRING (SIZE(16)) OPTIONAL,   -- pending
//	  nonceCCA     [1] Nonce OPTIONAL,                     -- cardholder, issued
//	  issued       [2] Certificates OPTIONAL,              -- issued
//	  bci          [3] BCI OPTIONAL }
type CertResData struct {
	RRPID     RRPID
	LIDEE     []byte
	ChallEE   Challenge
	Status    CertStatus
	RequestID *RequestID
	NonceCCA  *Secret
	Issued    [][]byte
	BCI       *BCI
}

// RequestID names a pending registration request.
type RequestID [16]byte

func (d *CertResData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.LIDEE)
		b.AddASN1OctetString(d.ChallEE[:])
		b.AddASN1Enum(int64(d.Status))
		if d.RequestID != nil {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { b.AddASN1OctetString(d.RequestID[:]) })
		}
		if d.NonceCCA != nil {
			der.AddExplicit(b, 1, func(b *cryptobyte.Builder) { b.AddASN1OctetString(d.NonceCCA[:]) })
		}
		if len(d.Issued) > 0 {
			der.AddExplicit(b, 2, func(b *cryptobyte.Builder) { marshalCerts(b, d.Issued) })
		}
		if d.BCI != nil {
			der.AddExplicit(b, 3, d.BCI.marshal)
		}
	})
}

func (d *CertResData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE", d.ChallEE[:])
		d.Status = CertStatus(r.Enum("status", 1, 2))
		r.OptionalExplicit(0, "requestID", func(r *der.Reader) {
			d.RequestID = new(RequestID)
			readFixed(r, "", d.RequestID[:])
		})
		r.OptionalExplicit(1, "nonceCCA", func(r *der.Reader) {
			d.NonceCCA = new(Secret)
			readFixed(r, "", d.NonceCCA[:])
		})
		r.OptionalExplicit(2, "issued", func(r *der.Reader) {
			d.Issued = parseCerts(r, "")
			if len(d.Issued) == 0 {
				r.Fail("issued", "empty")
			}
		})
		r.OptionalExplicit(3, "bci", func(r *der.Reader) {
			d.BCI = new(BCI)
			d.BCI.parse(r, "")
		})
	})
}

// CertResSigned is CertResData signed by the CA's registration signature
// certificate.
type CertResSigned = Signed[CertResData, *CertResData]

// SealedResponse is a CA response encrypted for the applicant: the DER of a
// CertResSigned under the AEAD of the suite, keyed by the secret exported
// from the HPKE context of the request it answers (RFC 9180, 5.3), with a
// zero nonce (the key encrypts this one message) and additional data
// Labelled(label, suite, "").
//
//	SealedResponse ::= SEQUENCE { suite SuiteID, ciphertext OCTET STRING (SIZE(16..MAX)) }
type SealedResponse struct {
	Suite      Suite
	Ciphertext []byte
}

func (m *SealedResponse) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		marshalSuite(b, m.Suite)
		b.AddASN1OctetString(m.Ciphertext)
	})
}

func (m *SealedResponse) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		m.Suite = parseSuite(r, "suite")
		m.Ciphertext = r.Octets("ciphertext", 16, MaxMessageSize)
	})
}

// CertRes answers CertReq.
//
//	CertRes ::= SealedResponse   -- of CertResSigned
type CertRes struct{ SealedResponse }

func (*CertRes) Type() MessageType { return TypeCertRes }

// ---- CertInqReq / CertInqRes ----

// CertInqReqData asks about a pending request. It is signed (CertInqSigned)
// by the same key or certificate that signed the CertReq, and sealed.
//
//	CertInqReqData ::= SEQUENCE { rrpid RRPID, lid-EE LocalID, chall-EE4 Challenge, requestID OCTET STRING (SIZE(16)) }
type CertInqReqData struct {
	RRPID     RRPID
	LIDEE     []byte
	ChallEE4  Challenge
	RequestID RequestID
}

func (d *CertInqReqData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(d.RRPID[:])
		b.AddASN1OctetString(d.LIDEE)
		b.AddASN1OctetString(d.ChallEE4[:])
		b.AddASN1OctetString(d.RequestID[:])
	})
}

func (d *CertInqReqData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		readFixed(r, "rrpid", d.RRPID[:])
		d.LIDEE = r.Octets("lid-EE", 1, maxLocalID)
		readFixed(r, "chall-EE4", d.ChallEE4[:])
		readFixed(r, "requestID", d.RequestID[:])
	})
}

// CertInqSigned is the signed CertInqReqData.
type CertInqSigned = Signed[CertInqReqData, *CertInqReqData]

// CertInqReq is CertInqSigned sealed to the CA's key-exchange certificate.
//
//	CertInqReq ::= Envelope   -- of CertInqSigned
type CertInqReq struct{ Envelope }

func (*CertInqReq) Type() MessageType { return TypeCertInqReq }

// CertInqRes answers CertInqReq, like CertRes.
//
//	CertInqRes ::= SealedResponse   -- of CertResSigned
type CertInqRes struct{ SealedResponse }

func (*CertInqRes) Type() MessageType { return TypeCertInqRes }
