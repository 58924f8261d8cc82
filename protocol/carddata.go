package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/cryptobyte"

	"github.com/setpay/setpay/internal/der"
)

// PAN is a primary account number (card number). Its digits are unexported:
// printing a PAN with any fmt verb or logging it with slog shows
// "[PAN redacted]". Only [PAN.Digits] returns them, for the parties entitled
// to them (the gateway and its bank, the cardholder's wallet).
type PAN struct{ digits string }

// NewPAN checks a card number (12 to 19 ASCII digits with a valid Luhn check
// digit) and returns it as a PAN. The error never repeats the digits.
func NewPAN(digits string) (PAN, error) {
	if len(digits) < 12 || len(digits) > 19 {
		return PAN{}, fail(CodeCardData, "card number must have 12 to 19 digits, has %d characters", len(digits))
	}
	sum := 0
	for i := range len(digits) {
		c := digits[len(digits)-1-i]
		if c < '0' || c > '9' {
			return PAN{}, fail(CodeCardData, "card number must be digits only")
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if sum%10 != 0 {
		return PAN{}, fail(CodeCardData, "card number fails the Luhn check")
	}
	return PAN{digits: digits}, nil
}

// Digits returns the card number.
func (p PAN) Digits() string { return p.digits }

// String returns "[PAN redacted]".
func (p PAN) String() string { return "[PAN redacted]" }

// GoString returns "[PAN redacted]".
func (p PAN) GoString() string { return p.String() }

// Format prints "[PAN redacted]" for every verb.
func (p PAN) Format(f fmt.State, _ rune) { fmt.Fprint(f, p.String()) }

// LogValue keeps the digits out of structured logs.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.String()) }

// Secret is a 32-byte secret (CardSecret, NonceCCA, PANSecret). Like PAN it
// never prints its value.
type Secret [nonceSize]byte

func (Secret) String() string               { return "[secret redacted]" }
func (s Secret) GoString() string           { return s.String() }
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }
func (s Secret) LogValue() slog.Value       { return slog.StringValue(s.String()) }

// PANSecret returns CardSecret XOR NonceCCA, the secret under which the
// cardholder certificate's account hash is keyed (SET Book 2; setpay uses
// 32-byte values). The registration issue sets NonceCCA; the cardholder keeps
// CardSecret and NonceCCA in its wallet.
func PANSecret(cardSecret, nonceCCA Secret) Secret {
	var s Secret
	subtle.XORBytes(s[:], cardSecret[:], nonceCCA[:])
	return s
}

// PANData is the card data only the cardholder and the gateway ever see.
//
//	PANData ::= SEQUENCE {
//	  pan         NumericString (SIZE(12..19)),
//	  cardExpiry  NumericString (SIZE(6)),   -- YYYYMM
//	  panSecret   Nonce,                     -- all zeros without a certificate
//	  exNonce     Nonce }
type PANData struct {
	PAN        PAN
	CardExpiry string // YYYYMM
	PANSecret  Secret
	EXNonce    Nonce
}

func (d *PANData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		der.AddNumeric(b, d.PAN.digits)
		der.AddNumeric(b, d.CardExpiry)
		b.AddASN1OctetString(d.PANSecret[:])
		b.AddASN1OctetString(d.EXNonce[:])
	})
}

func (d *PANData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.PAN = PAN{digits: r.Numeric("pan", 12, 19)}
		d.CardExpiry = r.Numeric("cardExpiry", 6, 6)
		readFixed(r, "panSecret", d.PANSecret[:])
		readFixed(r, "exNonce", d.EXNonce[:])
	})
}

// check validates the card data the parser does not: the Luhn digit and the
// month of the expiry.
func (d *PANData) check() error {
	if _, err := NewPAN(d.PAN.digits); err != nil {
		return err
	}
	if len(d.CardExpiry) != 6 || d.CardExpiry[4:] < "01" || d.CardExpiry[4:] > "12" {
		return fail(CodeCardData, "card expiry is not YYYYMM")
	}
	return nil
}

// PIHead is the payment part the gateway sees beside the card data. It names
// the gateway the cardholder means (peThumb) — setpay's fix of the first flaw
// the formal analysis found — and the merchant (merchantID, from the
// merchant's signature certificate).
//
//	PIHead ::= SEQUENCE {
//	  transIDs    TransIDs,
//	  hod         Digest,
//	  purchAmt    CurrencyAmount,
//	  merchantID  MerchantID,
//	  transStain  Digest,
//	  peThumb     Thumbprint }
type PIHead struct {
	TransIDs   TransIDs
	HOD        Digest
	PurchAmt   Amount
	MerchantID string
	TransStain Digest
	PEThumb    Thumbprint
}

func (h *PIHead) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		h.TransIDs.marshal(b)
		b.AddASN1OctetString(h.HOD[:])
		h.PurchAmt.marshal(b)
		der.AddUTF8(b, h.MerchantID)
		b.AddASN1OctetString(h.TransStain[:])
		b.AddASN1OctetString(h.PEThumb[:])
	})
}

func (h *PIHead) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		h.TransIDs.parse(r, "transIDs")
		readFixed(r, "hod", h.HOD[:])
		h.PurchAmt.parse(r, "purchAmt")
		h.MerchantID = r.UTF8("merchantID", 1, 30)
		readFixed(r, "transStain", h.TransStain[:])
		readFixed(r, "peThumb", h.PEThumb[:])
	})
}

// PIData is {PIHead, PANData}; PIMD = H("setpay/1 PIData", DER(PIData)).
//
//	PIData ::= SEQUENCE { piHead PIHead, panData PANData }
type PIData struct {
	PIHead  PIHead
	PANData PANData
}

func (d *PIData) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		d.PIHead.marshal(b)
		d.PANData.marshal(b)
	})
}

func (d *PIData) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		d.PIHead.parse(r, "piHead")
		d.PANData.parse(r, "panData")
	})
}

// PIContent is the plaintext sealed to the gateway: the PI data and the OIMD
// it is linked to.
//
//	PIContent ::= SEQUENCE { piData PIData, oiMD Digest }
type PIContent struct {
	PIData PIData
	OIMD   Digest
}

func (c *PIContent) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		c.PIData.marshal(b)
		b.AddASN1OctetString(c.OIMD[:])
	})
}

func (c *PIContent) parse(r *der.Reader, name string) {
	r.Sequence(name, func(r *der.Reader) {
		c.PIData.parse(r, "piData")
		readFixed(r, "oiMD", c.OIMD[:])
	})
}

// HOD returns H("setpay/1 HOD", DER(HODInput)), the hash of the order
// description that cardholder and merchant agreed, the purchase amount and
// ODSalt:
//
//	HODInput ::= SEQUENCE { od OCTET STRING (SIZE(0..65536)), purchAmt CurrencyAmount, odSalt Nonce }
//
// The random ODSalt keeps the gateway, which sees HOD, from guessing OD.
func HOD(s Suite, od []byte, purchAmt Amount, odSalt Nonce) Digest {
	return Hash(labelHOD, s, HODInput(od, purchAmt, odSalt))
}

// HODInput returns DER(HODInput), what HOD hashes.
func HODInput(od []byte, purchAmt Amount, odSalt Nonce) []byte {
	in, _ := der.Marshal(func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(od)
			purchAmt.marshal(b)
			b.AddASN1OctetString(odSalt[:])
		})
	})
	return in
}

// OIMD returns H("setpay/1 OIData", DER(OIData)).
func OIMD(s Suite, oi *OIData) Digest { return Hash(labelOIData, s, encode(oi)) }

// PIMD returns H("setpay/1 PIData", DER(PIData)).
func PIMD(s Suite, pi *PIData) Digest { return Hash(labelPIData, s, encode(pi)) }

// DualSignatureInput returns what the cardholder signs, before labelling:
//
//	DualSignatureInput ::= SEQUENCE { piMD Digest, oiMD Digest }
//
// signed as Labelled("setpay/1 dual signature", suite, DER(DualSignatureInput)).
// Both digests cover the gateway's thumbprint (PIHead.peThumb and
// OIData.peThumb), so the signature names the gateway.
func DualSignatureInput(pimd, oimd Digest) []byte {
	in, _ := der.Marshal(func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(pimd[:])
			b.AddASN1OctetString(oimd[:])
		})
	})
	return in
}

// AccountHash returns the keyed account hash carried by a cardholder
// certificate instead of the PAN:
//
//	HMAC-SHA256(key = PANSecret, Labelled("setpay/1 account hash", suite, DER(AccountHashInput)))
//	AccountHashInput ::= SEQUENCE { pan NumericString, cardExpiry NumericString }
//
// Without PANSecret nobody holding the certificate can test guesses of the PAN.
func AccountHash(s Suite, pan PAN, cardExpiry string, panSecret Secret) Digest {
	in, _ := der.Marshal(func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			der.AddNumeric(b, pan.digits)
			der.AddNumeric(b, cardExpiry)
		})
	})
	m := hmac.New(sha256.New, panSecret[:])
	m.Write(Labelled(labelAccountHash, s, in))
	var d Digest
	m.Sum(d[:0])
	return d
}

// TransStain returns HMAC-SHA256(key = CardSecret,
// Labelled("setpay/1 TransStain", suite, xid)): a per-transaction tag only the
// cardholder can compute, which the gateway records and the cardholder can
// later show to be its own by revealing CardSecret to an arbiter.
func TransStain(s Suite, xid XID, cardSecret Secret) Digest {
	m := hmac.New(sha256.New, cardSecret[:])
	m.Write(Labelled(labelTransStain, s, xid[:]))
	var d Digest
	m.Sum(d[:0])
	return d
}

// piAAD returns the associated data of the sealed PI: DER(XID), binding the
// PI to its transaction.
func piAAD(xid XID) []byte {
	b, _ := der.Marshal(func(b *cryptobyte.Builder) { b.AddASN1OctetString(xid[:]) })
	return b
}
