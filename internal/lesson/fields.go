package lesson

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/setpay/setpay/protocol"
)

// fieldsOf decodes a protocol value into annotated fields, by reflection
// over its exported fields: the same names as the ASN.1 module of
// docs/PROTOCOL.md, in lowerCamel.
func fieldsOf(v any) []Field {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return []Field{valueField("value", rv)}
	}
	return structFields(rv)
}

func structFields(rv reflect.Value) []Field {
	var out []Field
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		fv := rv.Field(i)
		if sf.Anonymous { // Signed[...] embedded in a message
			out = append(out, structFields(fv)...)
			continue
		}
		if (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) && fv.IsNil() {
			continue
		}
		out = append(out, valueField(fieldName(sf.Name), fv))
	}
	return out
}

var (
	typeTime   = reflect.TypeFor[time.Time]()
	typePAN    = reflect.TypeFor[protocol.PAN]()
	typeSecret = reflect.TypeFor[protocol.Secret]()
	typeAmount = reflect.TypeFor[protocol.Amount]()
	typeSuite  = reflect.TypeFor[protocol.Suite]()
	typeCerts  = reflect.TypeFor[[][]byte]()
)

// valueField renders one value.
func valueField(name string, v reflect.Value) Field {
	f := Field{Name: name, Note: notes[name]}
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	switch {
	case v.Type() == typeTime:
		f.Value = v.Interface().(time.Time).UTC().Format(time.RFC3339)
	case v.Type() == typePAN:
		f.Value = v.Interface().(protocol.PAN).Digits()
	case v.Type() == typeSecret:
		s := v.Interface().(protocol.Secret)
		f.Value = hex.EncodeToString(s[:])
	case v.Type() == typeAmount:
		a := v.Interface().(protocol.Amount)
		f.Value = formatAmount(int(a.Currency), a.Value)
	case v.Type() == typeSuite:
		f.Value = v.Interface().(protocol.Suite).String()
	case v.Type() == typeCerts:
		for i := range v.Len() {
			f.Fields = append(f.Fields, certField(v.Index(i).Bytes()))
		}
		f.Value = fmt.Sprintf("%d certificates", v.Len())
	case v.Kind() == reflect.Struct:
		f.Fields = structFields(v)
	case v.Kind() == reflect.Slice && v.Type().Elem() == typeSuite:
		var names []string
		for i := range v.Len() {
			names = append(names, v.Index(i).Interface().(protocol.Suite).String())
		}
		f.Value = strings.Join(names, ", ")
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		f.Value = bytesValue(v.Bytes())
	case v.Kind() == reflect.Array && v.Type().Elem().Kind() == reflect.Uint8:
		b := make([]byte, v.Len())
		reflect.Copy(reflect.ValueOf(b), v)
		f.Value = hexValue(b)
	case v.Kind() == reflect.Slice:
		var parts []string
		for i := range v.Len() {
			item := valueField(fmt.Sprintf("%s[%d]", name, i), v.Index(i))
			if item.Fields == nil {
				parts = append(parts, item.Value)
				continue
			}
			item.Note = ""
			f.Fields = append(f.Fields, item)
		}
		if parts != nil {
			f.Value = strings.Join(parts, ", ")
		}
	case v.Kind() == reflect.String:
		f.Value = fmt.Sprintf("%q", v.String())
	default:
		if s, ok := v.Interface().(fmt.Stringer); ok && v.CanInt() {
			f.Value = fmt.Sprintf("%d (%s)", v.Int(), s)
		} else {
			f.Value = fmt.Sprint(v.Interface())
		}
	}
	return f
}

// certField names a certificate by its subject and setpay type.
func certField(der []byte) Field {
	f := Field{Name: "certificate", Value: fmt.Sprintf("%d bytes", len(der))}
	if c, err := protocol.ParseCertificate(der); err == nil {
		f.Value = fmt.Sprintf("%s: %q (%d bytes)", c.Type, c.X509.Subject.CommonName, len(der))
	} else if x, err := x509.ParseCertificate(der); err == nil {
		f.Value = fmt.Sprintf("%q (%d bytes)", x.Subject.CommonName, len(der))
	}
	return f
}

// bytesValue shows an identifier: as text when it is printable ASCII
// (local ids), in hex otherwise.
func bytesValue(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return hexValue(b)
		}
	}
	return fmt.Sprintf("%q (%s)", b, hex.EncodeToString(b))
}

func hexValue(b []byte) string {
	if len(b) > 48 {
		return fmt.Sprintf("%s… (%d bytes)", hex.EncodeToString(b[:32]), len(b))
	}
	return hex.EncodeToString(b)
}

// fieldName turns a Go field name into the lowerCamel of the ASN.1 module:
// XID -> xid, TransIDs -> transIDs, PIHead -> piHead, OIData -> oiData.
func fieldName(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	switch {
	case n == len(r):
		return strings.ToLower(s)
	case n > 1:
		n-- // the last capital starts the next word
	}
	return strings.ToLower(string(r[:n])) + string(r[n:])
}

func formatAmount(currency int, v int64) string {
	name := fmt.Sprint(currency)
	switch currency {
	case 978:
		name = "EUR"
	case 840:
		name = "USD"
	}
	return fmt.Sprintf("%s %d.%02d", name, v/100, v%100)
}

// notes are the plain-words notes of the fields, by name.
var notes = map[string]string{
	"transIDs":      "the transaction's identifiers, repeated in every message so that none can be moved to another purchase",
	"lidc":          "the cardholder's own reference for this purchase",
	"lidm":          "the merchant's reference: its order number",
	"xid":           "the transaction id, chosen fresh by the merchant in PInitRes",
	"pReqDate":      "when the merchant opened the transaction",
	"language":      "the cardholder's language",
	"rrpid":         "request/response pair id: fresh in each request, echoed by its response, so a response cannot answer another request",
	"challC":        "the cardholder's fresh challenge; the merchant must echo it (freshness)",
	"challM":        "the merchant's fresh challenge; the cardholder must echo it in PReq",
	"brandID":       "the card brand",
	"bin":           "the first six digits of the card number: they say which issuer, not which card",
	"suites":        "the suites the cardholder offers, in its order of preference",
	"suite":         "the cryptographic suite agreed for the purchase",
	"offeredSuites": "the merchant echoes the cardholder's offer, signed: a man in the middle who removed a suite is caught",
	"peThumb":       "SHA-256 of the gateway's key-exchange certificate: the gateway the PI must be sealed to",
	"hod":           "hash of the order description, amount and a salt: it binds the order without showing it",
	"odSalt":        "a random salt in HOD, so that the order description cannot be guessed from its hash",
	"oiData":        "the order information: what the merchant reads",
	"pimd":          "hash of the payment instruction: lets the merchant check the dual signature without seeing the PI",
	"pi":            "the payment instruction, sealed to the gateway: the merchant forwards it unopened",
	"sealed":        "an HPKE envelope: only the holder of the recipient's private key opens it",
	"recipient":     "SHA-256 of the certificate whose key the envelope is sealed to",
	"enc":           "the HPKE encapsulated key",
	"ciphertext":    "the sealed content, authenticated (AEAD)",
	"dualSignature": "one signature over hash(PI) and hash(OI) together: it links the order and the payment without showing either to the wrong party",
	"signature":     "the sender's signature over the data, with a label naming the message",
	"signer":        "SHA-256 of the signer's certificate",
	"value":         "the signature value",
	"certificates":  "the signer's certificate chain (up to, not including, the root)",
	"piHead":        "the payment details the gateway checks: transaction, amount, merchant, gateway",
	"purchAmt":      "the amount the cardholder agreed to pay",
	"merchantID":    "the merchant's id from its certificate",
	"transStain":    "a keyed hash of the XID with the card secret: links the purchase to the cardholder's registration",
	"panData":       "the card data: only the cardholder and the gateway ever read it",
	"pan":           "the card number",
	"cardExpiry":    "the card's expiry, YYYYMM",
	"panSecret":     "the key of the account hash in the cardholder's certificate: proves the card matches the certificate",
	"exNonce":       "a random nonce, so that the sealed card data never repeats",
	"oimd":          "hash of the order information, as the cardholder signed it",
	"authReqData":   "what the merchant asks the gateway to authorize",
	"authAmt":       "the amount to authorize",
	"checkDigests":  "the merchant's hashes of the order: the gateway compares them with the PI's (linkage)",
	"hoiData":       "the merchant's hash of the order information",
	"merchantKE":    "the merchant's key-exchange certificate: the gateway seals its answer to it",
	"result":        "approved or declined",
	"authCode":      "the issuer's approval code",
	"reason":        "why the issuer declined",
	"capToken":      "sealed by the gateway to itself: the merchant keeps it and hands it back to capture",
	"merchantThumb": "the certificate of the merchant this answer is for",
	"status":        "the purchase's outcome as the merchant reports it to the cardholder",
	"batchID":       "the merchant's capture batch number",
	"items":         "one entry per authorization to capture",
	"capAmt":        "the amount to capture (at most the authorized amount)",
	"authRRPID":     "the RRPID of the authorization being captured",
	"code":          "the gateway's result for this item: 0 is captured",
	"data":          "the signed content",
	"thumbs":        "certificates the cardholder already holds, so the merchant may leave them out",
}
