package protocol_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
)

// This file checks the encoding of every message and of every structure
// sealed inside one: round trips in both directions, and rejection of
// truncated, extended, oversized, non-canonical and wrong-version inputs. The
// corpus it builds also seeds the fuzz targets of fuzz_test.go.

// wireSample is one wrapped message of the corpus.
type wireSample struct {
	name string   // e.g. "pq dual-signed PReq"
	w    *Wrapper // as the parties built it
	der  []byte   // w.Marshal()
}

// sealedSample is one encoding of a structure that travels sealed.
type sealedSample struct {
	name string
	der  []byte
	// want is the structure the parties built or learned, when the test can
	// reconstruct it (nil: only the bytes are known).
	want Structure
}

// wireCorpus holds real encodings from complete purchases: for each suite,
// dual-signed and unsigned, every message of the flow (and variants with the
// optional fields set), the plaintexts of every envelope, and the
// certificates of the test PKIs.
type wireCorpus struct {
	messages []wireSample
	inner    map[string][]sealedSample // by structure name, e.g. "PIContent"
	certs    [][]byte
	isCert   map[string]bool
}

var cachedWireCorpus *wireCorpus

// corpus builds the corpus once per process (two purchases per suite, about
// 30 ms each).
func wireCorpusFor(t testing.TB) *wireCorpus {
	t.Helper()
	if cachedWireCorpus != nil {
		return cachedWireCorpus
	}
	c := &wireCorpus{inner: map[string][]sealedSample{}, isCert: map[string]bool{}}
	for _, s := range Suites {
		c.addPKI(pkiFor(s))
		c.addFlow(t, s, true)
		c.addFlow(t, s, false)
	}
	cachedWireCorpus = c
	return c
}

func (c *wireCorpus) addPKI(p *testpki.PKI) {
	certs := [][]byte{p.Root.Cert, p.Brand.Cert, p.CCA.Cert, p.MCA.Cert, p.PCA.Cert,
		p.Cardholder.Chain[0], p.Merchant.Sig.Chain[0], p.Merchant.KE.Chain[0], p.Gateway.Sig.Chain[0], p.Gateway.KE.Chain[0]}
	for _, d := range certs {
		if !c.isCert[string(d)] {
			c.isCert[string(d)] = true
			c.certs = append(c.certs, d)
		}
	}
}

func (c *wireCorpus) addInner(kind, name string, der []byte, want Structure) {
	c.inner[kind] = append(c.inner[kind], sealedSample{name: name, der: der, want: want})
}

func openSealed(t testing.TB, k *KeyExchangeKey, e *Envelope, label string, aad []byte) []byte {
	t.Helper()
	pt, err := OpenEnvelope(k, e, label, aad)
	if err != nil {
		t.Fatalf("opening %s: %v", label, err)
	}
	return pt
}

func (c *wireCorpus) addFlow(t testing.TB, s Suite, dual bool) {
	t.Helper()
	f := newFlow(t, s)
	variant := "dual-signed"
	if !dual {
		f.cardholder = nil
		variant = "unsigned"
	}
	f.run()
	p := f.p
	prefix := s.String() + " " + variant + " "
	tids := f.pinitRes.Data.TransIDs
	xid := tids.XID

	type named struct {
		name string
		m    Message
	}
	msgs := []named{
		{"PInitReq", f.pinitReq}, {"PInitRes", f.pinitRes}, {"PReq", f.preq}, {"AuthReq", f.authReq},
		{"AuthRes", f.authRes}, {"PRes", f.pres}, {"CapReq", f.capReq}, {"CapRes", f.capRes},
	}

	// The sealed structures.
	label := LabelSealPIDual
	if !dual {
		label = LabelSealPIUnsig
	}
	pic := &PIContent{PIData: PIData{PIHead: f.auth.PIHead, PANData: f.auth.PANData}, OIMD: f.verified.OIMD}
	c.addInner("PIContent", prefix+"PIContent", openSealed(t, p.Gateway.KE, &f.preq.PI.Sealed, label, PIAAD(xid)), pic)
	c.addInner("PIData", prefix+"PIData", Encode(&pic.PIData), &pic.PIData)
	c.addInner("OIData", prefix+"OIData", Encode(&f.preq.OIData), &f.preq.OIData)
	c.addInner("AuthReqSigned", prefix+"AuthReqSigned", openSealed(t, p.Gateway.KE, &f.authReq.Sealed, LabelSealAuthReq, nil), nil)
	c.addInner("AuthResSigned", prefix+"approving AuthResSigned", openSealed(t, p.Merchant.KE, &f.authRes.Sealed, LabelSealAuthRes, nil), nil)
	// The gateway's CapToken is sealed with its own token key; the strict
	// decoder makes its plaintext the encoding of the token it opened.
	c.addInner("CapTokenData", prefix+"CapTokenData", Encode(f.batch.Items[0].Token), f.batch.Items[0].Token)
	c.addInner("CapReqSigned", prefix+"CapReqSigned", openSealed(t, p.Gateway.KE, &f.capReq.Sealed, LabelSealCapReq, nil), nil)
	c.addInner("CapResSigned", prefix+"CapResSigned", openSealed(t, p.Merchant.KE, &f.capRes.Sealed, LabelSealCapRes, nil), nil)

	if dual {
		// Once per suite, the messages with their other optional fields and
		// alternatives.
		req, err := NewPInitReq(f.rnd, []byte("C-order-2"), "en-US", testpki.TestBrand, testpki.TestBIN, Suites, p.Cardholder.Chain)
		if err != nil {
			t.Fatal(err)
		}
		req.LIDM = []byte("M-43")
		declined, err := NewPRes(p.Merchant.Sig, &f.preq.OIData, PurchDeclined, nil, DeclineExpiredCard)
		if err != nil {
			t.Fatal(err)
		}
		received, err := NewPRes(p.Merchant.Sig, &f.preq.OIData, PurchOrderReceived, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		authDeclined, err := NewAuthRes(p.Gateway, f.auth, &AuthDecision{Result: AuthDeclined, Reason: DeclineSuspectedFraud}, testpki.Epoch, f.rnd)
		if err != nil {
			t.Fatal(err)
		}
		c.addInner("AuthResSigned", prefix+"declining AuthResSigned", openSealed(t, p.Merchant.KE, &authDeclined.Sealed, LabelSealAuthRes, nil), nil)
		var nonce Challenge
		f.random(nonce[:])
		cause := &CheckError{Code: CodeHODMismatch, Detail: "OIData HOD is not H(order description, amount, ODSalt) of the agreed order"}
		offending := NewWrapper(f.preq, testpki.Epoch, nil, nil).Marshal()
		signedErr, err := NewError(cause, nonce, s, offending, p.Merchant.Sig)
		if err != nil {
			t.Fatal(err)
		}
		unsignedErr, err := NewError(errors.New("not a CheckError"), nonce, s, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs,
			named{"PInitReq with LID-M and thumbprints", req},
			named{"declining PRes", declined},
			named{"order-received PRes", received},
			named{"declining AuthRes", authDeclined},
			named{"signed Error", signedErr},
			named{"unsigned Error", unsignedErr})
	}

	var rrpid RRPID
	f.random(rrpid[:])
	for _, m := range msgs {
		for _, w := range []struct {
			suffix string
			w      *Wrapper
		}{
			{"", NewWrapper(m.m, testpki.Epoch, nil, nil)},
			{" with TransIDs and RRPID in the header", NewWrapper(m.m, testpki.Epoch, &tids, &rrpid)},
		} {
			c.messages = append(c.messages, wireSample{name: prefix + m.name + w.suffix, w: w.w, der: w.w.Marshal()})
		}
	}
}

// --- comparing structures ---

var timeTypeOf = reflect.TypeFor[time.Time]()

// diff returns "" if got and want are equal, or the path of the first
// difference. Times compare with time.Time.Equal, and a nil slice equals an
// empty one (the encoding does not tell them apart). Values are not printed:
// they may be card data.
func diffStructs(got, want any) string {
	return diffStructValue("", reflect.ValueOf(got), reflect.ValueOf(want))
}

func diffStructValue(path string, a, b reflect.Value) string {
	if a.IsValid() != b.IsValid() {
		return path + ": nil vs non-nil"
	}
	if !a.IsValid() {
		return ""
	}
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: %s vs %s", path, a.Type(), b.Type())
	}
	if a.Type() == timeTypeOf {
		if !a.CanInterface() {
			return path + ": unexported time"
		}
		if ta, tb := a.Interface().(time.Time), b.Interface().(time.Time); !ta.Equal(tb) {
			return fmt.Sprintf("%s: %v vs %v", path, ta, tb)
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() != b.IsNil() {
			return path + ": nil vs non-nil"
		}
		if a.IsNil() {
			return ""
		}
		return diffStructValue(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if d := diffStructValue(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d vs %d", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diffStructValue(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
	case reflect.String:
		if a.String() != b.String() {
			return path + ": strings differ"
		}
	case reflect.Bool:
		if a.Bool() != b.Bool() {
			return path + ": booleans differ"
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if a.Int() != b.Int() {
			return path + ": integers differ"
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if a.Uint() != b.Uint() {
			return path + ": integers differ"
		}
	default:
		return fmt.Sprintf("%s: cannot compare a %s", path, a.Kind())
	}
	return ""
}

// --- editing DER ---

// derNode is one DER element, for tests that re-encode an input with one thing
// changed. Certificates are kept whole: to the message parser they are
// opaque elements.
type derNode struct {
	tag     cbasn1.Tag
	content []byte     // contents of a primitive or opaque element
	kids    []*derNode // contents of a constructed element
	leaf    bool
}

// parseDER splits b into a tree of elements; elements for which opaque
// returns true are not descended into.
func parseDER(t testing.TB, b []byte, opaque func([]byte) bool) []*derNode {
	t.Helper()
	s := cryptobyte.String(b)
	var out []*derNode
	for !s.Empty() {
		var elem, content cryptobyte.String
		var tag cbasn1.Tag
		if !s.ReadAnyASN1Element(&elem, &tag) {
			t.Fatalf("test input is not DER")
		}
		full := []byte(elem)
		elem.ReadAnyASN1(&content, &tag)
		n := &derNode{tag: tag}
		if tag&0x20 != 0 && !opaque(full) {
			n.kids = parseDER(t, content, opaque)
		} else {
			n.leaf, n.content = true, content
		}
		out = append(out, n)
	}
	return out
}

// encodeDER writes the tree back, with the length of derNode long (if not nil)
// in a non-minimal form.
func encodeDER(ns []*derNode, long *derNode) []byte {
	var b []byte
	for _, n := range ns {
		body := n.content
		if !n.leaf {
			body = encodeDER(n.kids, long)
		}
		b = append(b, byte(n.tag))
		b = appendLength(b, len(body), n == long)
		b = append(b, body...)
	}
	return b
}

// appendLength appends a DER length, or with nonMinimal a BER one: the long
// form for a length below 128, else one leading zero length octet.
func appendLength(b []byte, n int, nonMinimal bool) []byte {
	var l []byte
	for v := n; v > 0; v >>= 8 {
		l = append([]byte{byte(v)}, l...)
	}
	switch {
	case !nonMinimal && n < 0x80:
		return append(b, byte(n))
	case !nonMinimal:
		return append(append(b, 0x80|byte(len(l))), l...)
	case n < 0x80:
		return append(b, 0x81, byte(n))
	default:
		return append(append(b, 0x80|byte(len(l)+1), 0), l...)
	}
}

// derPreorder lists every derNode of the tree.
func derPreorder(ns []*derNode) []*derNode {
	var out []*derNode
	for _, n := range ns {
		out = append(out, n)
		out = append(out, derPreorder(n.kids)...)
	}
	return out
}

// tree parses a message or inner structure of the corpus.
func (c *wireCorpus) tree(t testing.TB, b []byte) []*derNode {
	t.Helper()
	ns := parseDER(t, b, func(e []byte) bool { return c.isCert[string(e)] })
	if !bytes.Equal(encodeDER(ns, nil), b) {
		t.Fatal("the DER editor does not reproduce its input")
	}
	return ns
}

// wantCodeOf fails unless err carries code.
// strictSample holds one decoder to strict DER on one accepted sample: every
// strict prefix, each trailing octet string of extras, every length in
// non-minimal form and a NULL appended inside every structure must fail with
// CodeMalformed. Parse and the inner decoders share it.
func strictSample(t *testing.T, c *wireCorpus, name string, der []byte, decode func([]byte) error, extras [][]byte) {
	t.Run("no strict prefix of "+name+" is accepted", func(t *testing.T) {
		for i := range len(der) {
			wantCodeOf(t, decode(der[:i]), CodeMalformed, fmt.Sprintf("prefix of %d of %d bytes", i, len(der)))
		}
	})
	t.Run(name+" with a trailing byte is rejected", func(t *testing.T) {
		for _, extra := range extras {
			wantCodeOf(t, decode(append(slices.Clip(der), extra...)), CodeMalformed, fmt.Sprintf("trailing %x", extra))
		}
	})
	t.Run(name+" with any length in non-minimal form is rejected", func(t *testing.T) {
		ns := c.tree(t, der)
		for i, n := range derPreorder(ns) {
			wantCodeOf(t, decode(encodeDER(ns, n)), CodeMalformed, fmt.Sprintf("element %d (tag 0x%02x) with a non-minimal length", i, uint8(n.tag)))
		}
	})
	t.Run(name+" with an element added inside any structure is rejected", func(t *testing.T) {
		ns := c.tree(t, der)
		for i, n := range derPreorder(ns) {
			if n.leaf {
				continue
			}
			save := n.kids
			n.kids = append(slices.Clip(save), &derNode{tag: cbasn1.NULL, leaf: true})
			err := decode(encodeDER(ns, nil))
			n.kids = save
			wantCodeOf(t, err, CodeMalformed, fmt.Sprintf("NULL appended inside element %d (tag 0x%02x)", i, uint8(n.tag)))
		}
	})
}

func wantCodeOf(t testing.TB, err error, code Code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want %v", what, code)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("%s: code %d (%v), want %d (%v): %v", what, got, got, code, code, err)
	}
}

// --- messages ---

func TestMessagesRoundTrip(t *testing.T) {
	c := wireCorpusFor(t)
	for _, s := range c.messages {
		t.Run(s.name+" survives marshal, parse, marshal", func(t *testing.T) {
			w, err := Parse(s.der)
			if err != nil {
				t.Fatalf("does not parse: %v", err)
			}
			if !bytes.Equal(w.Marshal(), s.der) {
				t.Error("re-encoding differs from the input")
			}
			if d := diffStructs(w, s.w); d != "" {
				t.Errorf("parse(marshal(x)) != x at %s", d)
			}
			if w.Message.Type() != s.w.Message.Type() {
				t.Errorf("type %v, want %v", w.Message.Type(), s.w.Message.Type())
			}
		})
	}
}

func TestMalformedMessagesAreRejected(t *testing.T) {
	c := wireCorpusFor(t)
	parse := func(b []byte) error { _, err := Parse(b); return err }
	for _, s := range c.messages {
		strictSample(t, c, s.name, s.der, parse, [][]byte{{0}, {0x30}, {0xff}, {0x05, 0x00}})
	}
	t.Run("a message with an indefinite length is rejected", func(t *testing.T) {
		// The constructed wrapper SEQUENCE with the BER indefinite form.
		der := c.messages[0].der
		ns := c.tree(t, der)
		body := encodeDER(ns[0].kids, nil)
		b := append(append([]byte{0x30, 0x80}, body...), 0, 0)
		_, err := Parse(b)
		wantCodeOf(t, err, CodeMalformed, "indefinite length")
	})
	t.Run("a message of an unknown type is rejected", func(t *testing.T) {
		ns := c.tree(t, c.messages[0].der)
		ns[0].kids[1].tag = cbasn1.Tag(10).ContextSpecific().Constructed()
		_, err := Parse(encodeDER(ns, nil))
		wantCodeOf(t, err, CodeMalformed, "message [10]")
	})
	t.Run("a message in a primitive CHOICE tag is rejected", func(t *testing.T) {
		ns := c.tree(t, c.messages[0].der)
		m := ns[0].kids[1]
		m.leaf, m.content, m.kids = true, encodeDER(m.kids, nil), nil
		m.tag = cbasn1.Tag(1).ContextSpecific()
		_, err := Parse(encodeDER(ns, nil))
		wantCodeOf(t, err, CodeMalformed, "primitive [1]")
	})
}

func TestMessageVersion(t *testing.T) {
	c := wireCorpusFor(t)
	for _, tc := range []struct {
		name    string
		version []byte // contents of the version INTEGER
		want    Code
	}{
		{"version 2 is unsupported", []byte{2}, CodeUnsupportedVersion},
		{"version 0 is unsupported", []byte{0}, CodeUnsupportedVersion},
		{"version 256 is unsupported", []byte{1, 0}, CodeUnsupportedVersion},
		{"version -1 is malformed", []byte{0xff}, CodeMalformed},
		{"a non-minimal INTEGER 1 is malformed, not a version", []byte{0, 1}, CodeMalformed},
		{"a version beyond 64 bits is malformed", bytes.Repeat([]byte{0x7f}, 9), CodeMalformed},
		{"an empty INTEGER is malformed", []byte{}, CodeMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range c.messages {
				ns := c.tree(t, s.der)
				v := ns[0].kids[0].kids[0] // MessageWrapper.header.version
				if v.tag != cbasn1.INTEGER || !bytes.Equal(v.content, []byte{1}) {
					t.Fatalf("%s: first element of the header is not INTEGER 1", s.name)
				}
				v.content = tc.version
				_, err := Parse(encodeDER(ns, nil))
				wantCodeOf(t, err, tc.want, s.name)
			}
		})
	}
}

// authResOfSize returns an AuthRes wrapper of exactly n bytes (n above 64 KiB).
func authResOfSize(t *testing.T, n int) []byte {
	t.Helper()
	env := Envelope{Suite: SuitePQ, Enc: []byte{1}, Ciphertext: make([]byte, 1<<20)}
	m := &AuthRes{Sealed: env}
	overhead := len(NewWrapper(m, testpki.Epoch, nil, nil).Marshal()) - len(env.Ciphertext)
	m.Sealed.Ciphertext = make([]byte, n-overhead)
	b := NewWrapper(m, testpki.Epoch, nil, nil).Marshal()
	if len(b) != n {
		t.Fatalf("built %d bytes, want %d", len(b), n)
	}
	return b
}

func TestMessageSizeLimit(t *testing.T) {
	t.Run("a well-formed message of MaxMessageSize bytes parses", func(t *testing.T) {
		b := authResOfSize(t, MaxMessageSize)
		w, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Marshal(), b) {
			t.Error("re-encoding differs")
		}
	})
	t.Run("a well-formed message one byte over MaxMessageSize is too large", func(t *testing.T) {
		_, err := Parse(authResOfSize(t, MaxMessageSize+1))
		wantCodeOf(t, err, CodeTooLarge, "MaxMessageSize+1")
	})
	t.Run("any input over MaxMessageSize is too large", func(t *testing.T) {
		_, err := Parse(make([]byte, MaxMessageSize+1))
		wantCodeOf(t, err, CodeTooLarge, "zeros")
	})
}

func expectMessageAs[T Message](w *Wrapper) error { _, err := Expect[T](w); return err }

func TestExpectChecksTheMessageType(t *testing.T) {
	expect := map[MessageType]func(*Wrapper) error{
		TypePInitReq: expectMessageAs[*PInitReq], TypePInitRes: expectMessageAs[*PInitRes],
		TypePReq: expectMessageAs[*PReq], TypePRes: expectMessageAs[*PRes],
		TypeAuthReq: expectMessageAs[*AuthReq], TypeAuthRes: expectMessageAs[*AuthRes],
		TypeCapReq: expectMessageAs[*CapReq], TypeCapRes: expectMessageAs[*CapRes],
		TypeError: expectMessageAs[*Error],
	}
	seen := map[MessageType]bool{}
	for _, s := range wireCorpusFor(t).messages {
		got := s.w.Message.Type()
		if seen[got] {
			continue
		}
		seen[got] = true
		w, err := Parse(s.der)
		if err != nil {
			t.Fatal(err)
		}
		for want, fn := range expect {
			if want == got {
				t.Run(fmt.Sprintf("Expect[%v] accepts a %v", want, got), func(t *testing.T) {
					if err := fn(w); err != nil {
						t.Fatal(err)
					}
				})
				continue
			}
			t.Run(fmt.Sprintf("Expect[%v] rejects a %v", want, got), func(t *testing.T) {
				err := fn(w)
				wantCodeOf(t, err, CodeUnexpectedMessage, "wrong type")
				if !strings.Contains(err.Error(), want.String()) || !strings.Contains(err.Error(), got.String()) {
					t.Errorf("error %q does not name both types", err)
				}
			})
		}
	}
	if len(seen) != len(expect) {
		t.Errorf("corpus has %d message types, want %d", len(seen), len(expect))
	}
}

// --- Error messages ---

func TestNewErrorSurvivesTheWire(t *testing.T) {
	p := pkiFor(SuitePQ)
	long := strings.Repeat("é", 200) // 400 bytes: truncated at a rune boundary
	for _, tc := range []struct {
		name  string
		cause error
	}{
		{"a plain check error", &CheckError{Code: CodeDualSignature, Detail: "setpay/1 dual signature does not verify"}},
		{"a code without detail", CodeCertExpired},
		{"an error without a code", errors.New("boom")},
		{"a detail over 256 bytes", &CheckError{Code: CodeMalformed, Detail: long}},
		{"a detail with a control character", &CheckError{Code: CodeCertRevoked, Detail: "certificate serial 18000002 (line one\nline two) is revoked"}},
		{"a detail that is not UTF-8", &CheckError{Code: CodeCertRevoked, Detail: "certificate serial 18000002 (caf\xe9) is revoked"}},
	} {
		for _, key := range []*SigningKey{nil, p.Merchant.Sig} {
			kind := "an unsigned"
			if key != nil {
				kind = "a signed"
			}
			t.Run(fmt.Sprintf("%s Error for %s parses", kind, tc.name), func(t *testing.T) {
				m, err := NewError(tc.cause, Challenge{1}, SuitePQ, []byte("offending"), key)
				if err != nil {
					t.Fatal(err)
				}
				w := NewWrapper(m, testpki.Epoch, nil, nil)
				b := w.Marshal()
				got, err := Parse(b)
				if err != nil {
					t.Fatalf("the peer cannot parse this Error: %v", err)
				}
				if !bytes.Equal(got.Marshal(), b) {
					t.Error("re-encoding differs")
				}
				if d := diffStructs(got, w); d != "" {
					t.Errorf("parse(marshal(x)) != x at %s", d)
				}
				if key != nil {
					e, _ := Expect[*Error](got)
					if _, err := VerifyError(p.Trust, e, CertMerchantSignature, SuitePQ); err != nil {
						t.Errorf("signed Error does not verify after the wire: %v", err)
					}
				}
			})
		}
	}
}

func TestNewErrorForARevokedCertificateSurvivesTheWire(t *testing.T) {
	// A CA may put any UTF8String in a CommonName. Trust.Verify names the
	// revoked certificate's CommonName in its detail, and NewError copies the
	// detail into ErrorDetail, which the peer parses as a UTF8String without
	// control characters.
	p := pkiFor(SuiteNIST)
	name := "revoked\ncardholder"
	ch := p.NewCardholder(name, p.Card, testpki.Options{})
	trust, err := NewTrust(p.Root.Cert)
	if err != nil {
		t.Fatal(err)
	}
	trust.Now = func() time.Time { return testpki.Epoch }
	trust.Revoked = func(c *x509.Certificate) bool { return c.Subject.CommonName == name }
	_, verr := trust.Verify(ch.Chain, ch.Cert.Thumb, CertCardholderSignature, SuiteNIST)
	wantCodeOf(t, verr, CodeCertRevoked, "revoked certificate")
	m, err := NewError(verr, Challenge{2}, SuiteNIST, nil, p.Merchant.Sig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(NewWrapper(m, testpki.Epoch, nil, nil).Marshal()); err != nil {
		t.Fatalf("the peer cannot parse the Error reporting a revoked certificate: %v", err)
	}
}

// --- sealed structures ---

// sealedKind is a structure that travels sealed, with its strict decoder.
type sealedKind struct {
	name   string
	decode func([]byte) (Structure, error)
}

func sealedKindOf[T any, PT interface {
	*T
	Structure
}](name string, _ func([]byte) (*T, error)) sealedKind {
	return sealedKind{name, func(b []byte) (Structure, error) {
		v, err := Decode[T, PT](b)
		if err != nil {
			return nil, err
		}
		return PT(v), nil
	}}
}

var sealedKinds = []sealedKind{
	sealedKindOf("PIContent", Decode[PIContent]),
	sealedKindOf("PIData", Decode[PIData]),
	sealedKindOf("OIData", Decode[OIData]),
	sealedKindOf("AuthReqSigned", Decode[AuthReqSigned]),
	sealedKindOf("AuthResSigned", Decode[AuthResSigned]),
	sealedKindOf("CapReqSigned", Decode[CapReqSigned]),
	sealedKindOf("CapResSigned", Decode[CapResSigned]),
	sealedKindOf("CapTokenData", Decode[CapTokenData]),
}

func TestInnerStructures(t *testing.T) { checkInnerStructures(t, wireCorpusFor(t), sealedKinds) }

// checkInnerStructures holds every sample of each kind in corpus c to the
// strict decoders: a round trip to the same bytes and value, the value the
// parties hold (if recorded), strictSample, and the size limit.
func checkInnerStructures(t *testing.T, c *wireCorpus, kinds []sealedKind) {
	for _, k := range kinds {
		samples := c.inner[k.name]
		if len(samples) == 0 {
			t.Fatalf("no %s in the corpus", k.name)
		}
		for _, s := range samples {
			t.Run(s.name+" survives decode and encode", func(t *testing.T) {
				v, err := k.decode(s.der)
				if err != nil {
					t.Fatalf("does not decode: %v", err)
				}
				if !bytes.Equal(Encode(v), s.der) {
					t.Error("re-encoding differs from the input")
				}
				v2, err := k.decode(Encode(v))
				if err != nil {
					t.Fatal(err)
				}
				if d := diffStructs(v2, v); d != "" {
					t.Errorf("decode(encode(x)) != x at %s", d)
				}
				if s.want != nil {
					if !bytes.Equal(Encode(s.want), s.der) {
						t.Error("the structure the parties hold does not encode to the bytes they exchanged")
					}
					if d := diffStructs(v, s.want); d != "" {
						t.Errorf("decode(encode(x)) != x at %s", d)
					}
				}
			})
			strictSample(t, c, s.name, s.der, func(b []byte) error { _, err := k.decode(b); return err }, [][]byte{{0}, {0x05, 0x00}})
		}
		t.Run(k.name+" over MaxMessageSize is too large", func(t *testing.T) {
			_, err := k.decode(make([]byte, MaxMessageSize+1))
			wantCodeOf(t, err, CodeTooLarge, "zeros")
		})
	}
}

func TestCardDataIsNotEchoedInErrors(t *testing.T) {
	c := wireCorpusFor(t)
	for _, tc := range []struct {
		name string
		pan  string
	}{
		{"a PAN too long", testpki.TestPAN + "1234"},
		{"a PAN with a letter", testpki.TestPAN[:15] + "x"},
		{"a PAN with a space", testpki.TestPAN[:8] + " " + testpki.TestPAN[8:15]},
	} {
		t.Run("the PIContent error for "+tc.name+" does not repeat it", func(t *testing.T) {
			s := c.inner["PIContent"][0]
			ns := c.tree(t, s.der)
			found := false
			for _, n := range derPreorder(ns) {
				if n.leaf && string(n.content) == testpki.TestPAN {
					n.content, found = []byte(tc.pan), true
				}
			}
			if !found {
				t.Fatal("no PAN in PIContent")
			}
			_, err := Decode[PIContent](encodeDER(ns, nil))
			wantCodeOf(t, err, CodeMalformed, tc.name)
			for _, secret := range []string{testpki.TestPAN[:12], tc.pan} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats card digits", err)
				}
			}
			if !strings.Contains(err.Error(), "panData.pan") {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}

// TestNonCanonicalCertificatesAreRejected covers what the message parser
// leaves to ParseCertificate: certificates travel as opaque elements, so a
// non-minimal length inside one is caught when the certificate is parsed.
func TestNonCanonicalCertificatesAreRejected(t *testing.T) {
	c := wireCorpusFor(t)
	for i, cert := range c.certs {
		t.Run(fmt.Sprintf("certificate %d with any length in non-minimal form is rejected", i), func(t *testing.T) {
			ns := parseDER(t, cert, func([]byte) bool { return false })
			if !bytes.Equal(encodeDER(ns, nil), cert) {
				t.Fatal("the DER editor does not reproduce the certificate")
			}
			if _, err := ParseCertificate(cert); err != nil {
				t.Fatal(err)
			}
			for j, n := range derPreorder(ns) {
				_, err := ParseCertificate(encodeDER(ns, n))
				if err == nil {
					t.Fatalf("element %d (tag 0x%02x) with a non-minimal length is accepted", j, uint8(n.tag))
				}
				if CodeOf(err) == 0 {
					t.Fatalf("error without a Code: %v", err)
				}
			}
		})
	}
}

// --- registration ---

var cachedRegCorpus *wireCorpus

// regCorpusFor builds, once per process, a corpus of real registrations in
// both suites (see addRegistrations): every registration message, wrapped,
// and every structure sealed, encrypted or signed inside one. Certificates
// and the SubjectPublicKeyInfos of CertReqData are opaque to the DER editor,
// as they are to the parsers (ParseCertificate and OpenCertReq check them).
func regCorpusFor(t testing.TB) *wireCorpus {
	t.Helper()
	if cachedRegCorpus != nil {
		return cachedRegCorpus
	}
	c := &wireCorpus{inner: map[string][]sealedSample{}, isCert: map[string]bool{}}
	for _, s := range Suites {
		c.addPKI(pkiFor(s))
		c.addRegistrations(t, s)
	}
	cachedRegCorpus = c
	return c
}

// opaque marks elements the DER editor must not descend into.
func (c *wireCorpus) opaque(ders ...[]byte) {
	for _, d := range ders {
		if len(d) > 0 {
			c.isCert[string(d)] = true
		}
	}
}

func (c *wireCorpus) addMessage(name string, m Message) {
	rrpid := RRPID{7}
	for _, w := range []struct {
		suffix string
		w      *Wrapper
	}{
		{"", NewWrapper(m, testpki.Epoch, nil, nil)},
		{" with an RRPID in the header", NewWrapper(m, testpki.Epoch, nil, &rrpid)},
	} {
		c.messages = append(c.messages, wireSample{name: name + w.suffix, w: w.w, der: w.w.Marshal()})
	}
}

// addCertReq adds the plaintext of a CertReq and what it holds.
func (c *wireCorpus) addCertReq(t testing.TB, f *regFlow, name string) {
	pt := openSealed(t, f.ca.keys.KE, &f.certReq.Envelope, LabelSealCertReq, nil)
	s, err := Decode[CertReqSigned](pt)
	if err != nil {
		t.Fatal(err)
	}
	d := &s.Data
	c.opaque(d.SignatureKey, d.KeyExchangeKey, d.TLSKey)
	c.opaque(s.Certificates...)
	c.addInner("CertReqSigned", name+" CertReqSigned", pt, nil)
	c.addInner("CertReqData", name+" CertReqData", Encode(d), &f.request.Data)
	if d.Identity != nil {
		c.addInner("Identity", name+" Identity", Encode(d.Identity), &f.identity)
	}
	if d.Account != nil {
		c.addInner("AccountData", name+" AccountData", Encode(d.Account), &f.account)
	}
}

// addCertRes adds the plaintext of a CertRes or CertInqRes.
func (c *wireCorpus) addCertRes(t testing.TB, name string, pt []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Decode[CertResSigned](pt)
	if err != nil {
		t.Fatal(err)
	}
	c.opaque(s.Certificates...)
	c.opaque(s.Data.Issued...)
	if s.Data.BCI != nil {
		c.opaque(s.Data.BCI.Certificates...)
	}
	c.addInner("CertResSigned", name+" CertResSigned", pt, nil)
	c.addInner("CertResData", name+" CertResData", Encode(&s.Data), &s.Data)
}

// addRegistrations runs, in suite s: a cardholder registration with
// thumbprints, a BCI in every CA reply, a TLS key and a pending answer
// followed by CertInqReq; a plain cardholder registration; a merchant
// registration; a merchant renewal signed by its current certificate; and a
// gateway registration.
func (c *wireCorpus) addRegistrations(t testing.TB, s Suite) {
	t.Helper()
	p := pkiFor(s)
	prefix := s.String() + " "
	crl := p.CRL(p.CCA, 1, p.Cardholder.Cert.X509.SerialNumber)
	bci := p.BCI(1, crl, p.CRL(p.Brand, 1))
	c.opaque(bci.Certificates...)
	c.addInner("BCI", prefix+"BCI", Encode(bci), bci)
	c.addInner("BCIData", prefix+"BCIData", Encode(&bci.Data), &bci.Data)

	// The cardholder with every optional field.
	f := newRegFlow(t, s, RoleCardholder)
	f.ca.bci = bci
	f.thumbs, f.held = []Thumbprint{ThumbprintOf(p.Brand.Cert)}, [][]byte{p.Brand.Cert}
	f.params.TLSKey = testpki.SigningKey(SuiteNIST, regSeed, "cardholder TLS").Public()
	f.ca.pend = true
	f.ca.resEdit = func(d *CertResData) { d.BCI = bci }
	f.do(f.open, f.certRequest, f.answer, f.inquire)
	k := f.ca.keys
	c.opaque(k.Sig.Chain...)
	c.opaque(k.KE.Chain...)
	c.opaque(f.issued.Signature...)
	c.opaque(f.issued.TLS...)
	name := prefix + "cardholder "
	for _, m := range []struct {
		name string
		m    Message
	}{
		{"CardCInitReq with thumbprints", f.cardInitReq}, {"CardCInitRes with a BCI", f.cardInitRes},
		{"RegFormReq", f.regFormReq}, {"RegFormRes with a BCI", f.regFormRes}, {"CertReq with a TLS key", f.certReq},
		{"pending CertRes", f.certRes}, {"CertInqReq", f.inqReq}, {"issuing CertInqRes", f.inqRes},
	} {
		c.addMessage(name+m.name, m.m)
	}
	c.addInner("CAInitData", name+"CAInitData", Encode(&f.cardInitRes.Data), &f.cardInitRes.Data)
	c.addInner("RegFormReqData", name+"RegFormReqData", openSealed(t, k.KE, &f.regFormReq.Envelope, LabelSealRegFormReq, nil), f.regFormData)
	c.addInner("RegFormResData", name+"RegFormResData", Encode(&f.regFormRes.Data), &f.regFormRes.Data)
	c.addInner("CASession", name+"CASession", Encode(&f.regFormRes.Data.Session), &f.regFormRes.Data.Session)
	c.addInner("RegForm", name+"RegForm", Encode(&f.ca.form), &f.ca.form)
	c.addCertReq(t, f, name)
	pt, err := OpenCertResponse(s, f.request, &f.certRes.SealedResponse)
	c.addCertRes(t, name+"pending", pt, err)
	pt, err = OpenInquiryResponse(s, f.inquiry, &f.inqRes.SealedResponse)
	c.addCertRes(t, name+"issuing", pt, err)
	inq := openSealed(t, k.KE, &f.inqReq.Envelope, LabelSealCertInqReq, nil)
	c.addInner("CertInqSigned", name+"CertInqSigned", inq, nil)
	c.addInner("CertInqReqData", name+"CertInqReqData", Encode(&f.inquiry.Data), &f.inquiry.Data)
	c.addInner("SealedResponse", name+"pending SealedResponse", Encode(&f.certRes.SealedResponse), &f.certRes.SealedResponse)
	c.addInner("SealedResponse", name+"issuing SealedResponse", Encode(&f.inqRes.SealedResponse), &f.inqRes.SealedResponse)

	// The cardholder without options.
	g := newRegFlow(t, s, RoleCardholder)
	g.do(g.register)
	c.opaque(g.issued.Signature...)
	name = prefix + "plain cardholder "
	c.addMessage(name+"CardCInitReq", g.cardInitReq)
	c.addMessage(name+"CardCInitRes", g.cardInitRes)
	c.addMessage(name+"issuing CertRes", g.certRes)
	pt, err = OpenCertResponse(s, g.request, &g.certRes.SealedResponse)
	c.addCertRes(t, name+"issuing", pt, err)

	// The merchant, then its renewal signed by the test PKI merchant's
	// certificate; the gateway.
	m := newRegFlow(t, s, RoleMerchant)
	m.ca.bci = bci
	m.thumbs, m.held = []Thumbprint{ThumbprintOf(p.Brand.Cert)}, [][]byte{p.Brand.Cert}
	m.do(m.register)
	c.opaque(m.ca.keys.Sig.Chain...)
	c.opaque(m.ca.keys.KE.Chain...)
	c.opaque(m.issued.Signature...)
	c.opaque(m.issued.KeyExchange...)
	name = prefix + "merchant "
	c.addMessage(name+"Me-AqCInitReq with thumbprints", m.meInitReq)
	c.addMessage(name+"Me-AqCInitRes with a BCI", m.meInitRes)
	c.addMessage(name+"CertReq", m.certReq)
	c.addMessage(name+"issuing CertRes", m.certRes)
	c.addInner("CAInitData", name+"CAInitData", Encode(&m.meInitRes.Data), &m.meInitRes.Data)
	c.addInner("CASession", name+"CASession", Encode(m.meInitRes.Data.Session), m.meInitRes.Data.Session)
	c.addCertReq(t, m, name)
	pt, err = OpenCertResponse(s, m.request, &m.certRes.SealedResponse)
	c.addCertRes(t, name+"issuing", pt, err)

	r := newRegFlow(t, s, RoleMerchant)
	r.renewTestPKIMerchant()
	r.do(r.register)
	c.opaque(r.issued.KeyExchange...)
	c.opaque(p.Merchant.Sig.Chain...)
	name = prefix + "merchant renewal "
	c.addMessage(name+"Me-AqCInitReq", r.meInitReq)
	c.addMessage(name+"CertReq", r.certReq)
	c.addCertReq(t, r, name)

	gw := newRegFlow(t, s, RoleGateway)
	gw.do(gw.register)
	c.opaque(gw.ca.keys.Sig.Chain...)
	c.opaque(gw.ca.keys.KE.Chain...)
	c.opaque(gw.issued.Signature...)
	c.opaque(gw.issued.KeyExchange...)
	name = prefix + "gateway "
	c.addMessage(name+"Me-AqCInitReq", gw.meInitReq)
	c.addMessage(name+"Me-AqCInitRes", gw.meInitRes)
	c.addCertReq(t, gw, name)
}

var regSealedKinds = []sealedKind{
	sealedKindOf("CAInitData", Decode[CAInitData]),
	sealedKindOf("CASession", Decode[CASession]),
	sealedKindOf("RegForm", Decode[RegForm]),
	sealedKindOf("Identity", Decode[Identity]),
	sealedKindOf("AccountData", Decode[AccountData]),
	sealedKindOf("RegFormReqData", Decode[RegFormReqData]),
	sealedKindOf("RegFormResData", Decode[RegFormResData]),
	sealedKindOf("CertReqSigned", Decode[CertReqSigned]),
	sealedKindOf("CertReqData", Decode[CertReqData]),
	sealedKindOf("CertResSigned", Decode[CertResSigned]),
	sealedKindOf("CertResData", Decode[CertResData]),
	sealedKindOf("CertInqSigned", Decode[CertInqSigned]),
	sealedKindOf("CertInqReqData", Decode[CertInqReqData]),
	sealedKindOf("SealedResponse", Decode[SealedResponse]),
	sealedKindOf("BCI", Decode[BCI]),
	sealedKindOf("BCIData", Decode[BCIData]),
}

func TestRegistrationCorpusIsComplete(t *testing.T) {
	c := regCorpusFor(t)
	seen := map[MessageType]bool{}
	for _, s := range c.messages {
		seen[s.w.Message.Type()] = true
	}
	for typ := TypeCardCInitReq; typ <= TypeMeAqCInitRes; typ++ {
		if !seen[typ] {
			t.Errorf("no %v in the registration corpus", typ)
		}
	}
}

func TestRegistrationMessagesRoundTrip(t *testing.T) {
	c := regCorpusFor(t)
	for _, s := range c.messages {
		t.Run(s.name+" survives marshal, parse, marshal", func(t *testing.T) {
			w, err := Parse(s.der)
			if err != nil {
				t.Fatalf("does not parse: %v", err)
			}
			if !bytes.Equal(w.Marshal(), s.der) {
				t.Error("re-encoding differs from the input")
			}
			if d := diffStructs(w, s.w); d != "" {
				t.Errorf("parse(marshal(x)) != x at %s", d)
			}
		})
	}
}

func TestMalformedRegistrationMessagesAreRejected(t *testing.T) {
	c := regCorpusFor(t)
	parse := func(b []byte) error { _, err := Parse(b); return err }
	for _, s := range c.messages {
		strictSample(t, c, s.name, s.der, parse, [][]byte{{0}, {0x30}, {0xff}, {0x05, 0x00}})
	}
}

func TestRegistrationInnerStructures(t *testing.T) {
	checkInnerStructures(t, regCorpusFor(t), regSealedKinds)
}

// decodeEdited decodes a corpus sample, lets edit put a value out of the
// range the ASN.1 allows (the encoders write whatever they are given) and
// decodes the result again.
func decodeEdited[T any, PT interface {
	*T
	Structure
}](t *testing.T, der []byte, edit func(*T)) error {
	t.Helper()
	v, err := Decode[T, PT](der)
	if err != nil {
		t.Fatal(err)
	}
	edit(v)
	_, err = Decode[T, PT](Encode(PT(v)))
	return err
}

// parseEdited is decodeEdited for a wrapped message, through Parse.
func parseEdited[M Message](t *testing.T, c *wireCorpus, edit func(M)) error {
	t.Helper()
	for _, s := range c.messages {
		w, err := Parse(s.der)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := w.Message.(M); ok {
			edit(m)
			_, err := Parse(w.Marshal())
			return err
		}
	}
	t.Fatal("no such message in the corpus")
	return nil
}

func TestRegistrationFieldLimits(t *testing.T) {
	c := regCorpusFor(t)
	one := func(kind string) []byte {
		t.Helper()
		if len(c.inner[kind]) == 0 {
			t.Fatalf("no %s", kind)
		}
		return c.inner[kind][0].der
	}
	long := func(n int) string { return strings.Repeat("a", n) }
	digits := func(n int) string { return strings.Repeat("4", n) }
	thumbs := func(n int) []Thumbprint { return make([]Thumbprint, n) }
	bigSPKI := append([]byte{0x30, 0x82, 0x08, 0x01}, make([]byte, 0x801)...) // a SEQUENCE of 2053 bytes
	certResWithCert := func() []byte {
		for _, s := range c.inner["CertResData"] {
			if d, err := Decode[CertResData](s.der); err == nil && len(d.Issued) > 0 {
				return s.der
			}
		}
		t.Fatal("no issuing CertResData")
		return nil
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"CardCInitReq with a 21-byte LID-EE", func(t *testing.T) error {
			return parseEdited(t, c, func(m *CardCInitReq) { m.LIDEE = make([]byte, 21) })
		}},
		{"CardCInitReq with an empty LID-EE", func(t *testing.T) error {
			return parseEdited(t, c, func(m *CardCInitReq) { m.LIDEE = nil })
		}},
		{"CardCInitReq with a 41-character brand", func(t *testing.T) error {
			return parseEdited(t, c, func(m *CardCInitReq) { m.BrandID = long(41) })
		}},
		{"CardCInitReq with 17 thumbprints", func(t *testing.T) error {
			return parseEdited(t, c, func(m *CardCInitReq) { m.Thumbs = thumbs(17) })
		}},
		{"Me-AqCInitReq with a 31-character merchant id", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.Identity.ID = long(31) })
		}},
		{"Me-AqCInitReq with a 5-digit BIN", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.Identity.AcquirerBIN = digits(5) })
		}},
		{"Me-AqCInitReq with a 9-digit BIN", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.Identity.AcquirerBIN = digits(9) })
		}},
		{"Me-AqCInitReq with a BIN that is not digits", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.Identity.AcquirerBIN = "40000A" })
		}},
		{"Me-AqCInitReq with a 36-character language", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.Language = long(36) })
		}},
		{"Me-AqCInitReq from a cardholder", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.Role = RoleCardholder })
		}},
		{"Me-AqCInitReq of request type 3", func(t *testing.T) error {
			return parseEdited(t, c, func(m *MeAqCInitReq) { m.RequestType = 3 })
		}},
		{"SealedResponse with a 15-byte ciphertext", func(t *testing.T) error {
			return decodeEdited(t, one("SealedResponse"), func(m *SealedResponse) { m.Ciphertext = m.Ciphertext[:15] })
		}},
		{"RegForm with 17 fields", func(t *testing.T) error {
			return decodeEdited(t, one("RegForm"), func(f *RegForm) { f.Fields = make([]RegField, 17) })
		}},
		{"RegForm with an empty policy", func(t *testing.T) error {
			return decodeEdited(t, one("RegForm"), func(f *RegForm) { f.Policy = "" })
		}},
		{"RegForm with a 1025-character policy", func(t *testing.T) error {
			return decodeEdited(t, one("RegForm"), func(f *RegForm) { f.Policy = long(1025) })
		}},
		{"RegForm with a 33-character field name", func(t *testing.T) error {
			return decodeEdited(t, one("RegForm"), func(f *RegForm) { f.Fields[0].Name = long(33) })
		}},
		{"CASession of request type 0", func(t *testing.T) error {
			return decodeEdited(t, one("CASession"), func(s *CASession) { s.RequestType = 0 })
		}},
		{"RegFormReqData with an 11-digit PAN", func(t *testing.T) error {
			return decodeEdited(t, one("RegFormReqData"), func(d *RegFormReqData) { d.PAN = ForgePAN(digits(11)) })
		}},
		{"RegFormReqData with a 20-digit PAN", func(t *testing.T) error {
			return decodeEdited(t, one("RegFormReqData"), func(d *RegFormReqData) { d.PAN = ForgePAN(digits(20)) })
		}},
		{"AccountData with a 5-digit expiry", func(t *testing.T) error {
			return decodeEdited(t, one("AccountData"), func(d *AccountData) { d.CardExpiry = digits(5) })
		}},
		{"CertReqData with 17 form values", func(t *testing.T) error {
			return decodeEdited(t, one("CertReqData"), func(d *CertReqData) {
				d.FormValues = slices.Repeat([]FormValue{{Name: "n", Value: "v"}}, 17)
			})
		}},
		{"CertReqData with a 129-character form value", func(t *testing.T) error {
			return decodeEdited(t, one("CertReqData"), func(d *CertReqData) { d.FormValues[0].Value = long(129) })
		}},
		{"CertReqData with a signature key over 2048 bytes", func(t *testing.T) error {
			return decodeEdited(t, one("CertReqData"), func(d *CertReqData) { d.SignatureKey = bigSPKI })
		}},
		{"CertReqData of role 4", func(t *testing.T) error {
			return decodeEdited(t, one("CertReqData"), func(d *CertReqData) { d.Role = 4 })
		}},
		{"CertResData of status 3", func(t *testing.T) error {
			return decodeEdited(t, one("CertResData"), func(d *CertResData) { d.Status = 3 })
		}},
		{"CertResData with 11 certificates", func(t *testing.T) error {
			return decodeEdited(t, certResWithCert(), func(d *CertResData) { d.Issued = slices.Repeat(d.Issued[:1], 11) })
		}},
		{"CertInqReqData with a 21-byte LID-EE", func(t *testing.T) error {
			return decodeEdited(t, one("CertInqReqData"), func(d *CertInqReqData) { d.LIDEE = make([]byte, 21) })
		}},
		{"BCIData numbered 0", func(t *testing.T) error {
			return decodeEdited(t, one("BCIData"), func(d *BCIData) { d.Number = 0 })
		}},
		{"BCIData listing no CRL", func(t *testing.T) error {
			return decodeEdited(t, one("BCIData"), func(d *BCIData) { d.CRLs = nil })
		}},
		{"BCIData listing 65 CRLs", func(t *testing.T) error {
			return decodeEdited(t, one("BCIData"), func(d *BCIData) { d.CRLs = make([]CRLRef, 65) })
		}},
		{"BCIData with a negative CRL number", func(t *testing.T) error {
			return decodeEdited(t, one("BCIData"), func(d *BCIData) { d.CRLs[0].Number = -1 })
		}},
		{"BCIData of a 41-character brand", func(t *testing.T) error {
			return decodeEdited(t, one("BCIData"), func(d *BCIData) { d.Brand = long(41) })
		}},
		{"BCIData with a time in fractional seconds", func(t *testing.T) error {
			// The encoder truncates: only a hand-made encoding has one.
			der := one("BCIData")
			ns := c.tree(t, der)
			for _, n := range derPreorder(ns) {
				if n.tag == cbasn1.GeneralizedTime {
					n.content = append(slices.Clip(n.content[:14]), []byte(".5Z")...)
					break
				}
			}
			_, err := Decode[BCIData](encodeDER(ns, nil))
			return err
		}},
		{"BCI with 11 certificates", func(t *testing.T) error {
			return decodeEdited(t, one("BCI"), func(b *BCI) { b.Certificates = slices.Repeat(b.Certificates[:1], 11) })
		}},
	} {
		t.Run(tc.name+" is malformed", func(t *testing.T) {
			wantCodeOf(t, tc.run(t), CodeMalformed, tc.name)
		})
	}
}
