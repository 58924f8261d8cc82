package protocol_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
	"github.com/setpay/setpay/vectors"
)

// The test vectors in ../vectors are generated here, from the same flows
// and the same negative cases as the protocol's tests: every case of
// caseTables becomes a negative vector with the receiving party's context.
//
//	go generate ./vectors    (runs: go test ./protocol -run ^TestGenerateVectors$ -args -update)
//
// Without -update the test regenerates into memory and fails if the
// committed files differ (drift).

var update = flag.Bool("update", false, "rewrite the test vectors in ../vectors")

const vectorsDir = "../vectors"

// vectorSeed seeds the hierarchies of the published vectors.
const vectorSeed = "setpay vectors"

func TestGenerateVectors(t *testing.T) {
	files := generateVectors(t)
	if *update {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(vectorsDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	committed, _ := filepath.Glob(filepath.Join(vectorsDir, "*.json"))
	for _, path := range committed {
		if _, ok := files[filepath.Base(path)]; !ok {
			t.Errorf("%s is committed but no longer generated; run go generate ./vectors", path)
		}
	}
	for name, b := range files {
		old, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil || !bytes.Equal(old, b) {
			t.Errorf("vectors/%s differs from a fresh generation (drift); run go generate ./vectors and commit", name)
		}
	}
}

// generateVectors returns every vector file by name. It swaps in hierarchies
// of its own seed so that the published bytes do not depend on which other
// tests ran before.
func generateVectors(t *testing.T) map[string][]byte {
	savedPKIs, savedSeed := pkis, pkiSeed
	pkis, pkiSeed = map[Suite]*testpki.PKI{}, vectorSeed
	defer func() { pkis, pkiSeed = savedPKIs, savedSeed }()

	files := map[string][]byte{}
	put := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		files[name] = append(b, '\n')
	}
	for _, s := range Suites {
		p := pkiFor(s)
		hdr := func(kind string) vectors.Header {
			return vectors.Header{Schema: vectors.Schema, Kind: kind, Suite: s.String()}
		}
		put("pki-"+s.String()+".json", pkiVector(t, p, hdr("pki")))

		f := newFlow(t, s)
		rec := &recorder{r: f.rnd}
		f.rnd = rec
		f.run()
		unsigned := newFlow(t, s)
		unsigned.cardholder = nil
		unsigned.rnd = rand.NewChaCha8([32]byte{byte(s), 'u'})
		unsigned.run()

		put("construction-"+s.String()+".json", vectors.ConstructionFile{Header: hdr("construction"), Vectors: constructionVectors(t, f, rec)})
		put("message-"+s.String()+".json", vectors.MessageFile{Header: hdr("message"), Vectors: append(messageVectors(t, "dual-signed", f), messageVectors(t, "unsigned", unsigned)...)})
		put("transcript-"+s.String()+".json", vectors.TranscriptFile{Header: hdr("transcript"), Transcripts: []vectors.Transcript{
			transcript(t, "dual-signed purchase", f), transcript(t, "purchase without a cardholder certificate", unsigned)}})
		put("negative-"+s.String()+".json", vectors.NegativeFile{Header: hdr("negative"), Vectors: negativeVectors(t, s)})
	}
	put("negative-encoding.json", vectors.NegativeFile{Header: vectors.Header{Schema: vectors.Schema, Kind: "negative", Suite: "",
		Notes: "Parse failures: each input is rejected by Parse (docs/PROTOCOL.md 2.3) with the code given, whatever the party."},
		Vectors: encodingNegatives(t)})
	return files
}

func pkiVector(t *testing.T, p *testpki.PKI, h vectors.Header) vectors.PKI {
	certs := map[string]vectors.Hex{
		"root": p.Root.Cert, "brand-ca": p.Brand.Cert, "cardholder-ca": p.CCA.Cert, "merchant-ca": p.MCA.Cert, "gateway-ca": p.PCA.Cert,
		"cardholder": p.Cardholder.Chain[0], "merchant-sig": p.Merchant.Sig.Chain[0], "merchant-ke": p.Merchant.KE.Chain[0],
		"gateway-sig": p.Gateway.Sig.Chain[0], "gateway-ke": p.Gateway.KE.Chain[0],
	}
	keys := map[string]vectors.PrivateKey{
		"cardholder":   signingKey(t, testpki.SigningKey(p.Suite, p.Seed(), "cardholder")),
		"merchant-sig": signingKey(t, testpki.SigningKey(p.Suite, p.Seed(), "merchant")),
		"gateway-sig":  signingKey(t, testpki.SigningKey(p.Suite, p.Seed(), "gateway")),
		"merchant-ke":  kemKey(t, p.Suite, "merchant", p),
		"gateway-ke":   kemKey(t, p.Suite, "gateway", p),
	}
	ca := []string{"brand-ca"}
	return vectors.PKI{
		Header:       h,
		Now:          testpki.Epoch.Format("2006-01-02T15:04:05Z"),
		Certificates: certs,
		Chains: map[string][]string{
			"cardholder":   append([]string{"cardholder", "cardholder-ca"}, ca...),
			"merchant-sig": append([]string{"merchant-sig", "merchant-ca"}, ca...),
			"merchant-ke":  append([]string{"merchant-ke", "merchant-ca"}, ca...),
			"gateway-sig":  append([]string{"gateway-sig", "gateway-ca"}, ca...),
			"gateway-ke":   append([]string{"gateway-ke", "gateway-ca"}, ca...),
		},
		PrivateKeys:     keys,
		GatewayTokenKey: p.Gateway.TokenKey[:],
		Card: vectors.Card{PAN: p.Card.PAN.Digits(), CardExpiry: p.Card.CardExpiry,
			CardSecret: p.Card.CardSecret[:], PANSecret: p.Card.PANSecret[:]},
	}
}

func signingKey(t *testing.T, k crypto.Signer) vectors.PrivateKey {
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return vectors.PrivateKey{Encoding: "ed25519-seed", Key: k.Seed()}
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return vectors.PrivateKey{Encoding: "p256-scalar", Key: b}
	}
	t.Fatalf("key type %T", k)
	return vectors.PrivateKey{}
}

func kemKey(t *testing.T, s Suite, name string, p *testpki.PKI) vectors.PrivateKey {
	_, sk := testpki.KEMKey(s, p.Seed(), name)
	b, err := sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	enc := "x-wing"
	if s == SuiteNIST {
		enc = "p256-scalar"
	}
	return vectors.PrivateKey{Encoding: enc, Key: b}
}

// recorder remembers every byte read from r, so that the HPKE encapsulation
// seed of a seal can be published.
type recorder struct {
	r    io.Reader
	seen []byte
}

func (r *recorder) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.seen = append(r.seen, b[:n]...)
	return n, err
}

func constructionVectors(t *testing.T, f *flow, rec *recorder) []vectors.Construction {
	s := f.s
	oi := &f.preq.OIData
	xid := oi.TransIDs.XID
	pi := f.auth // the gateway's view: PIHead and PANData
	piData := PIData{PIHead: pi.PIHead, PANData: pi.PANData}
	piContent, err := OpenEnvelope(f.p.Gateway.KE, &f.preq.PI.Sealed, LabelSealPIDual, PIAAD(xid))
	if err != nil {
		t.Fatal(err)
	}
	hodIn := HODInput(f.order.OD, f.order.PurchAmt, oi.ODSalt)
	dsIn := DualSignatureInput(f.preqRes.PIMD, f.preqRes.OIMD)
	seedLen := s.KEM().EncapsulationSeedSize()
	sealSeed := encapSeed(t, rec, f.preq.PI.Sealed.Enc, seedLen, s, f.p.Gateway.KE.Cert, piContent, xid)
	tokPlain, err := OpenCapToken(f.p.Gateway, f.authData.CapToken, xid)
	if err != nil {
		t.Fatal(err)
	}
	gwSK := kemKey(t, s, "gateway", f.p)
	return []vectors.Construction{
		{Name: "labelled-input", Inputs: map[string]any{"label": "setpay/1 HOD", "suite": int(s), "content": "00ff"},
			Output: map[string]vectors.Hex{"labelled": Labelled("setpay/1 HOD", s, []byte{0, 0xff})}},
		{Name: "HOD", Inputs: map[string]any{"od": hx(f.order.OD), "currency": f.order.PurchAmt.Currency, "amount": f.order.PurchAmt.Value, "od_salt": hx(oi.ODSalt[:])},
			Intermediate: map[string]vectors.Hex{"hod_input": hodIn, "labelled": Labelled("setpay/1 HOD", s, hodIn)},
			Output:       map[string]vectors.Hex{"hod": hodOf(s, f)}},
		{Name: "OIMD", Inputs: map[string]any{"oidata": hx(Encode(oi))},
			Output: map[string]vectors.Hex{"oimd": f.preqRes.OIMD[:]}},
		{Name: "PIMD", Inputs: map[string]any{"pidata": hx(Encode(&piData))},
			Output: map[string]vectors.Hex{"pimd": f.preqRes.PIMD[:]}},
		{Name: "dual-signature", Inputs: map[string]any{"pimd": hx(f.preqRes.PIMD[:]), "oimd": hx(f.preqRes.OIMD[:]), "signer": "cardholder"},
			Intermediate: map[string]vectors.Hex{"dual_signature_input": dsIn, "labelled": Labelled("setpay/1 dual signature", s, dsIn)},
			Output:       map[string]vectors.Hex{"signature": f.preq.PI.DualSignature.Value}},
		{Name: "PI-seal", Inputs: map[string]any{"recipient": "gateway-ke", "recipient_private_key": hx(gwSK.Key),
			"info": hx(Labelled("setpay/1 PI dual-signed", s, nil)), "aad": hx(PIAAD(xid)), "plaintext": hx(piContent), "encapsulation_seed": hx(sealSeed)},
			Output: map[string]vectors.Hex{"enc": f.preq.PI.Sealed.Enc, "ciphertext": f.preq.PI.Sealed.Ciphertext}},
		{Name: "account-hash", Inputs: map[string]any{"pan": f.card.PAN.Digits(), "card_expiry": f.card.CardExpiry, "pan_secret": hx(f.card.PANSecret[:])},
			Output: map[string]vectors.Hex{"account_hash": acctHash(s, f)}},
		{Name: "TransStain", Inputs: map[string]any{"xid": hx(xid[:]), "card_secret": hx(f.card.CardSecret[:])},
			Output: map[string]vectors.Hex{"trans_stain": stain(s, f, xid)}},
		{Name: "CapToken", Inputs: map[string]any{"token_key": hx(f.p.Gateway.TokenKey[:]), "salt": hx(f.authData.CapToken.Enc),
			"plaintext": hx(tokPlain), "aad": hx(PIAAD(xid))},
			Output: map[string]vectors.Hex{"key_id": f.authData.CapToken.Recipient[:], "ciphertext": f.authData.CapToken.Ciphertext}},
	}
}

func hx(b []byte) string { return fmt.Sprintf("%x", b) }

func hodOf(s Suite, f *flow) []byte {
	h := HOD(s, f.order.OD, f.order.PurchAmt, f.preq.OIData.ODSalt)
	return h[:]
}

func acctHash(s Suite, f *flow) []byte {
	h := AccountHash(s, f.card.PAN, f.card.CardExpiry, f.card.PANSecret)
	return h[:]
}

func stain(s Suite, f *flow, xid XID) []byte {
	h := TransStain(s, xid, f.card.CardSecret)
	return h[:]
}

// encapSeed finds, among the bytes the flow read from its randomness, the
// encapsulation seed whose seal gives enc, by sealing again.
func encapSeed(t *testing.T, rec *recorder, enc []byte, n int, s Suite, to *Cert, pt []byte, xid XID) []byte {
	for i := 0; i+n <= len(rec.seen); i++ {
		e := ForgeSeal(bytes.NewReader(rec.seen[i:i+n]), to, LabelSealPIDual, pt, PIAAD(xid))
		if bytes.Equal(e.Enc, enc) {
			return slices.Clone(rec.seen[i : i+n])
		}
	}
	t.Fatal("encapsulation seed not found")
	return nil
}

func messageVectors(t *testing.T, variant string, f *flow) []vectors.Message {
	var out []vectors.Message
	for _, m := range []Message{f.pinitReq, f.pinitRes, f.preq, f.authReq, f.authRes, f.pres, f.capReq, f.capRes} {
		der := wireBytes(m)
		w, err := Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vectors.Message{Name: variant + " " + m.Type().String(), Type: m.Type().String(), DER: der, Decoded: vectors.Decoded(w)})
	}
	e, err := NewError(f.checkPInitResBroken(), Challenge{7}, f.s, wireBytes(f.pinitRes), f.p.Merchant.Sig)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := Parse(wireBytes(e))
	out = append(out, vectors.Message{Name: variant + " signed Error", Type: "Error", DER: wireBytes(e), Decoded: vectors.Decoded(w)})
	return out
}

// checkPInitResBroken returns the error a cardholder gets from a PInitRes
// whose signature does not verify, for an Error message vector.
func (f *flow) checkPInitResBroken() error {
	res := *f.pinitRes
	res.Signature.Value = slices.Clone(res.Signature.Value)
	res.Signature.Value[0] ^= 1
	_, err := VerifyPInitRes(f.trust(), f.pinitReq, &res, f.held)
	if err == nil {
		panic("a broken PInitRes verified")
	}
	return err
}

func transcript(t *testing.T, name string, f *flow) vectors.Transcript {
	step := func(from, to string, m Message) vectors.Step {
		return vectors.Step{From: from, To: to, Type: m.Type().String(), Message: wireBytes(m)}
	}
	xid := f.preq.OIData.TransIDs.XID
	label := LabelSealPIUnsig
	if f.preq.PI.DualSigned() {
		label = LabelSealPIDual
	}
	piContent, err := OpenEnvelope(f.p.Gateway.KE, &f.preq.PI.Sealed, label, PIAAD(xid))
	if err != nil {
		t.Fatal(err)
	}
	open := func(k *KeyExchangeKey, e *Envelope, label string) vectors.Hex {
		b, err := OpenEnvelope(k, e, label, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tok, err := OpenCapToken(f.p.Gateway, f.authData.CapToken, xid)
	if err != nil {
		t.Fatal(err)
	}
	inter := map[string]vectors.Hex{
		"hod":            hodOf(f.s, f),
		"oidata":         Encode(&f.preq.OIData),
		"oimd":           f.preqRes.OIMD[:],
		"pimd":           f.preqRes.PIMD[:],
		"picontent":      piContent,
		"authreq_signed": open(f.p.Gateway.KE, &f.authReq.Sealed, LabelSealAuthReq),
		"authres_signed": open(f.p.Merchant.KE, &f.authRes.Sealed, LabelSealAuthRes),
		"captoken_data":  tok,
		"capreq_signed":  open(f.p.Gateway.KE, &f.capReq.Sealed, LabelSealCapReq),
		"capres_signed":  open(f.p.Merchant.KE, &f.capRes.Sealed, LabelSealCapRes),
	}
	if f.preq.PI.DualSigned() {
		inter["dual_signature_input"] = DualSignatureInput(f.preqRes.PIMD, f.preqRes.OIMD)
		inter["account_hash"] = acctHash(f.s, f)
	}
	return vectors.Transcript{
		Name:  name,
		Order: vectors.Order{OD: f.order.OD, Currency: int(f.order.PurchAmt.Currency), Amount: f.order.PurchAmt.Value},
		Steps: []vectors.Step{
			step("cardholder", "merchant", f.pinitReq), step("merchant", "cardholder", f.pinitRes),
			step("cardholder", "merchant", f.preq), step("merchant", "gateway", f.authReq),
			step("gateway", "merchant", f.authRes), step("merchant", "cardholder", f.pres),
			step("merchant", "gateway", f.capReq), step("gateway", "merchant", f.capRes),
		},
		Intermediate: inter,
	}
}

// negativeVectors runs every case of caseTables for suite s and publishes
// the verification each one ends with.
func negativeVectors(t *testing.T, s Suite) []vectors.Negative {
	var out []vectors.Negative
	ids := map[string]bool{}
	for _, table := range caseTables {
		for _, c := range table {
			f := newFlow(t, s)
			err := c.run(f)
			if CodeOf(err) != c.want {
				t.Fatalf("%s/%s: got %v, want code %d", s, c.name, err, c.want)
			}
			if f.last == nil {
				t.Fatalf("%s/%s: no verification recorded", s, c.name)
			}
			v := f.last
			id := fmt.Sprintf("%s-%s-%s", s, strings.ToLower(v.check), slug(c.name))
			if ids[id] {
				t.Fatalf("two vectors with id %s", id)
			}
			ids[id] = true
			out = append(out, vectors.Negative{
				ID:          id,
				Description: c.name,
				Party:       v.party,
				Check:       v.check,
				BugClass:    bugClass(c),
				Expect:      vectors.Expect{Code: uint16(c.want), Name: c.want.String(), Item: v.item},
				Context:     v.ctx,
				Input:       v.input,
			})
		}
	}
	// A valid message of the wrong type: the cardholder expects PInitRes
	// and receives the PRes of another purchase.
	f := newFlow(t, s)
	f.run()
	w, _ := Parse(wireBytes(f.pres))
	if _, err := Expect[*PInitRes](w); CodeOf(err) != CodeUnexpectedMessage {
		t.Fatalf("Expect: %v", err)
	}
	out = append(out, vectors.Negative{
		ID:          s.String() + "-pinitres-a-pres-where-pinitres-is-expected",
		Description: "a PRes where PInitRes is expected",
		Party:       "cardholder", Check: "PInitRes", BugClass: "malformed encoding",
		Expect:  vectors.Expect{Code: uint16(CodeUnexpectedMessage), Name: CodeUnexpectedMessage.String()},
		Context: vectors.Context{PInitReq: wireBytes(f.pinitReq)},
		Input:   wireBytes(f.pres),
	})
	return out
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// bugClass names the class of bug a case catches, as Wycheproof does.
func bugClass(c checkCase) string {
	if strings.Contains(c.name, "another transaction") || strings.Contains(c.name, "swap") {
		return "cut-and-paste"
	}
	switch c.want {
	case CodeDowngrade, CodeSuiteMismatch, CodeUnknownSuite:
		return "downgrade"
	case CodeSignature, CodeDualSignature:
		return "signature forgery"
	case CodeCertRole:
		return "wrong key usage"
	case CodeCertKeyType:
		return "wrong key type"
	case CodeCertMissing:
		return "missing certificate"
	case CodeCertExpired:
		return "expired certificate"
	case CodeCertRevoked:
		return "revoked certificate"
	case CodeCertChain:
		return "untrusted certificate"
	case CodeRRPIDMismatch, CodeChallCMismatch, CodeChallMMismatch:
		return "replay"
	case CodeXIDMismatch, CodeTransIDsMismatch:
		return "transaction mix-up"
	case CodeOIMDMismatch, CodeHODMismatch:
		return "linkage swap"
	case CodeWrongGateway:
		return "wrong gateway"
	case CodeMerchantMismatch:
		return "wrong merchant"
	case CodeAmountMismatch, CodeCaptureExceeds:
		return "amount mismatch"
	case CodeAccountHash:
		return "account hash mismatch"
	case CodeCardData:
		return "malformed card data"
	case CodeDecrypt:
		return "envelope tampering"
	case CodeCapTokenInvalid:
		return "token forgery"
	case CodeCertRequired:
		return "policy bypass"
	case CodeMalformed, CodeTooLarge, CodeUnsupportedVersion, CodeUnexpectedMessage:
		return "malformed encoding"
	}
	return "other"
}

// encodingNegatives are inputs Parse rejects, made from a real PInitRes.
func encodingNegatives(t *testing.T) []vectors.Negative {
	f := newFlow(t, SuitePQ)
	f.must(f.pinit)
	good := wireBytes(f.pinitRes)
	neg := func(name string, code Code, in []byte) vectors.Negative {
		if _, err := Parse(in); CodeOf(err) != code {
			t.Fatalf("%s: Parse gives %v, want code %d", name, err, code)
		}
		return vectors.Negative{ID: "encoding-" + slug(name), Description: name, Party: "any", Check: "Parse",
			BugClass: "malformed encoding", Expect: vectors.Expect{Code: uint16(code), Name: code.String()}, Input: in}
	}
	// good is SEQUENCE { header SEQUENCE { version INTEGER 1, ... }, [2] PInitRes }.
	h := outerHeaderLen(good) // the header SEQUENCE
	hl, hlen := outerHeaderLen(good[h:]), decodeLen(good[h:])
	headerBody, rest := good[h+hl:h+hl+hlen], good[h+hl+hlen:]
	v2 := slices.Clone(good)
	v2[h+hl+2] = 2 // the version INTEGER's content octet
	// The version INTEGER with its length in long form: 02 81 01 01.
	long := append([]byte{0x02, 0x81, 0x01}, headerBody[2:]...)
	inner := append(append(append([]byte{0x30}, encodeLen(len(long))...), long...), rest...)
	nonMinimal := append(append([]byte{0x30}, encodeLen(len(inner))...), inner...)
	retagged := slices.Clone(good)
	retagged[h+hl+hlen] = 0xbe // [30] constructed: no such message
	return []vectors.Negative{
		neg("a trailing octet after the message", CodeMalformed, append(slices.Clone(good), 0)),
		neg("the message cut short by one octet", CodeMalformed, good[:len(good)-1]),
		neg("only the first half of the message", CodeMalformed, good[:len(good)/2]),
		neg("version 2 in the header", CodeUnsupportedVersion, v2),
		neg("a non-minimal length inside the header", CodeMalformed, nonMinimal),
		neg("an empty input", CodeMalformed, []byte{}),
		neg("an indefinite-length outer SEQUENCE", CodeMalformed, append(append([]byte{0x30, 0x80}, good[h:]...), 0, 0)),
		neg("an unknown message alternative [30]", CodeMalformed, retagged),
	}
}

func outerHeaderLen(b []byte) int {
	if b[1]&0x80 == 0 {
		return 2
	}
	return 2 + int(b[1]&0x7f)
}

func decodeLen(b []byte) int {
	if b[1]&0x80 == 0 {
		return int(b[1])
	}
	n := 0
	for _, c := range b[2 : 2+int(b[1]&0x7f)] {
		n = n<<8 | int(c)
	}
	return n
}

func encodeLen(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{byte(n)}
	case n < 0x100:
		return []byte{0x81, byte(n)}
	case n < 0x10000:
		return []byte{0x82, byte(n >> 8), byte(n)}
	}
	return []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)}
}
