package vectors

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"slices"
	"sort"
	"time"

	"github.com/setpay/setpay/protocol"
)

// Committed holds the vector files of this directory, so that the CLI can
// check them from anywhere.
//
//go:embed *.json
var Committed embed.FS

// Report is the outcome of checking a set of vector files.
type Report struct {
	Passed   int
	Failed   int
	Failures []string // "file: vector: what went wrong"
	// Counts of vectors checked by file kind.
	ByKind map[string]int
}

// String is the summary line: "N passed, M failed".
func (r *Report) String() string { return fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed) }

func (r *Report) result(file, name string, err error) {
	r.ByKind[path.Base(file)]++
	if err == nil {
		r.Passed++
		return
	}
	r.Failed++
	r.Failures = append(r.Failures, fmt.Sprintf("%s: %s: %v", file, name, err))
}

// Check checks every vector file (*.json) of fsys: each positive vector must
// verify and re-encode byte for byte, each negative vector must be rejected
// by the named party with exactly the named code. It returns an error only
// when the files cannot be read or have another schema.
func Check(fsys fs.FS) (*Report, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("vectors: no *.json files")
	}
	sort.Strings(names)
	r := &Report{ByKind: map[string]int{}}
	files := map[string][]byte{}
	pkis := map[string]*state{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		var h Header
		if err := json.Unmarshal(b, &h); err != nil {
			return nil, fmt.Errorf("vectors: %s: %w", n, err)
		}
		if h.Schema != Schema {
			return nil, fmt.Errorf("vectors: %s: schema %q, want %q", n, h.Schema, Schema)
		}
		files[n] = b
		if h.Kind == "pki" {
			var p PKI
			if err := json.Unmarshal(b, &p); err != nil {
				return nil, fmt.Errorf("vectors: %s: %w", n, err)
			}
			st, err := loadPKI(&p)
			r.result(n, "pki", err)
			if err == nil {
				pkis[h.Suite] = st
			}
		}
	}
	for _, n := range names {
		var h Header
		json.Unmarshal(files[n], &h)
		if h.Kind == "pki" {
			continue
		}
		st := pkis[h.Suite]
		if st == nil && (h.Suite != "" || h.Kind != "negative") {
			// Only negative files (of Parse vectors) may be suite-independent.
			return nil, fmt.Errorf("vectors: %s: no pki file for suite %q", n, h.Suite)
		}
		if err := checkFile(r, n, h.Kind, files[n], st); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func checkFile(r *Report, name, kind string, b []byte, st *state) error {
	switch kind {
	case "construction":
		var f ConstructionFile
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		for _, v := range f.Vectors {
			r.result(name, v.Name, st.construction(&v))
		}
	case "message":
		var f MessageFile
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		for _, v := range f.Vectors {
			r.result(name, v.Name, checkMessage(&v))
		}
	case "transcript":
		var f TranscriptFile
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		for _, v := range f.Transcripts {
			r.result(name, v.Name, st.transcript(&v))
		}
	case "negative":
		var f NegativeFile
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		for _, v := range f.Vectors {
			r.result(name, v.ID, st.negative(&v))
		}
	default:
		return fmt.Errorf("vectors: %s: unknown kind %q", name, kind)
	}
	return nil
}

// state is one suite's PKI, turned into the parties' keys.
type state struct {
	suite      protocol.Suite
	now        time.Time
	root       []byte
	certs      map[string][]byte
	chains     map[string][][]byte
	cardholder *protocol.SigningKey
	merchant   *protocol.MerchantKeys
	gateway    *protocol.GatewayKeys
	card       Card
}

func loadPKI(p *PKI) (*state, error) {
	s, err := protocol.ParseSuite(p.Suite)
	if err != nil {
		return nil, err
	}
	now, err := time.Parse(time.RFC3339, p.Now)
	if err != nil {
		return nil, err
	}
	st := &state{suite: s, now: now, root: p.Certificates["root"], certs: map[string][]byte{}, chains: map[string][][]byte{}, card: p.Card}
	for k, v := range p.Certificates {
		st.certs[k] = v
	}
	for k, names := range p.Chains {
		for _, n := range names {
			c, ok := st.certs[n]
			if !ok {
				return nil, fmt.Errorf("chain %s names unknown certificate %s", k, n)
			}
			st.chains[k] = append(st.chains[k], c)
		}
	}
	sig := func(name string) (*protocol.SigningKey, error) {
		k, ok := p.PrivateKeys[name]
		if !ok {
			return nil, fmt.Errorf("no private key %s", name)
		}
		switch k.Encoding {
		case "ed25519-seed":
			if len(k.Key) != ed25519.SeedSize {
				return nil, fmt.Errorf("key %s: want a 32-byte seed", name)
			}
			return protocol.NewSigningKey(ed25519.NewKeyFromSeed(k.Key), st.chains[name])
		case "p256-scalar":
			e, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), k.Key)
			if err != nil {
				return nil, err
			}
			return protocol.NewSigningKey(e, st.chains[name])
		}
		return nil, fmt.Errorf("key %s: encoding %q is not a signature key", name, k.Encoding)
	}
	ke := func(name string) (*protocol.KeyExchangeKey, error) {
		k, ok := p.PrivateKeys[name]
		if !ok {
			return nil, fmt.Errorf("no private key %s", name)
		}
		sk, err := s.KEM().UnmarshalBinaryPrivateKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		return protocol.NewKeyExchangeKey(sk, st.chains[name])
	}
	if st.cardholder, err = sig("cardholder"); err != nil {
		return nil, err
	}
	st.merchant, st.gateway = &protocol.MerchantKeys{}, &protocol.GatewayKeys{}
	if st.merchant.Sig, err = sig("merchant-sig"); err != nil {
		return nil, err
	}
	if st.merchant.KE, err = ke("merchant-ke"); err != nil {
		return nil, err
	}
	if st.gateway.Sig, err = sig("gateway-sig"); err != nil {
		return nil, err
	}
	if st.gateway.KE, err = ke("gateway-ke"); err != nil {
		return nil, err
	}
	if len(p.GatewayTokenKey) != 32 {
		return nil, fmt.Errorf("gateway token key must be 32 bytes")
	}
	copy(st.gateway.TokenKey[:], p.GatewayTokenKey)
	return st, nil
}

// trust is the receiving party's Trust for a context.
func (st *state) trust(ctx *Context) (*protocol.Trust, error) {
	roots := [][]byte{st.root}
	if len(ctx.Roots) > 0 {
		roots = nil
		for _, r := range ctx.Roots {
			roots = append(roots, r)
		}
	}
	t, err := protocol.NewTrust(roots...)
	if err != nil {
		return nil, err
	}
	t.Now = func() time.Time { return st.now }
	if len(ctx.Revoked) > 0 {
		var serials []*big.Int
		for _, s := range ctx.Revoked {
			n, ok := new(big.Int).SetString(s, 10)
			if !ok {
				return nil, fmt.Errorf("bad revoked serial %q", s)
			}
			serials = append(serials, n)
		}
		t.Revoked = func(c *x509.Certificate) bool {
			return slices.ContainsFunc(serials, func(n *big.Int) bool { return n.Cmp(c.SerialNumber) == 0 })
		}
	}
	return t, nil
}

func parseAs[T protocol.Message](b []byte) (T, error) {
	var zero T
	w, err := protocol.Parse(b)
	if err != nil {
		return zero, err
	}
	if !bytes.Equal(w.Marshal(), b) {
		return zero, fmt.Errorf("re-encoding differs from the vector")
	}
	return protocol.Expect[T](w)
}

func hexesToBytes(hs []Hex) [][]byte {
	var out [][]byte
	for _, h := range hs {
		out = append(out, h)
	}
	return out
}

// negative runs the check the vector names and requires exactly its code.
func (st *state) negative(v *Negative) error {
	err := st.runCheck(v)
	if err == nil {
		return fmt.Errorf("accepted; want rejection by the %s with code %d (%s)", v.Party, v.Expect.Code, v.Expect.Name)
	}
	var ce *setupError
	if asSetup(err, &ce) {
		return ce
	}
	if got := protocol.CodeOf(err); got != protocol.Code(v.Expect.Code) {
		return fmt.Errorf("rejected with code %d (%v), want code %d (%s)", got, err, v.Expect.Code, v.Expect.Name)
	}
	return nil
}

// setupError is a vector whose context itself does not hold up.
type setupError struct{ err error }

func (e *setupError) Error() string { return "bad vector context: " + e.err.Error() }

func asSetup(err error, target **setupError) bool {
	e, ok := err.(*setupError)
	if ok {
		*target = e
	}
	return ok
}

func setup(err error) error {
	if err == nil {
		return nil
	}
	return &setupError{err}
}

func (st *state) runCheck(v *Negative) error {
	ctx := &v.Context
	if v.Check == "Parse" {
		_, err := protocol.Parse(v.Input)
		return err
	}
	if st == nil {
		return setup(fmt.Errorf("check %s needs a suite and its pki file", v.Check))
	}
	t, err := st.trust(ctx)
	if err != nil {
		return setup(err)
	}
	held := hexesToBytes(ctx.Held)
	switch v.Check {
	case "PInitRes":
		req, err := parseAs[*protocol.PInitReq](ctx.PInitReq)
		if err != nil {
			return setup(err)
		}
		res, err := parseAs[*protocol.PInitRes](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyPInitRes(t, req, res, held)
		return err
	case "PReq":
		sent, err := parseAs[*protocol.PInitRes](ctx.PInitRes)
		if err != nil || ctx.Order == nil {
			return setup(fmt.Errorf("pinitres or order: %v", err))
		}
		order := protocol.Order{OD: ctx.Order.OD, PurchAmt: protocol.Amount{Currency: uint16(ctx.Order.Currency), Value: ctx.Order.Amount}}
		req, err := parseAs[*protocol.PReq](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyPReq(t, &sent.Data, &order, req, ctx.RequireCert)
		return err
	case "AuthReq":
		req, err := parseAs[*protocol.AuthReq](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyAuthReq(t, st.gateway, protocol.AmountPolicy{MaxOverPercent: ctx.MaxOverPercent}, req)
		return err
	case "AuthRes":
		sent, err := protocol.Decode[protocol.AuthReqData](ctx.Sent)
		if err != nil {
			return setup(err)
		}
		gw, err := protocol.ParseCertificate(ctx.GatewayKE)
		if err != nil {
			return setup(err)
		}
		res, err := parseAs[*protocol.AuthRes](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyAuthRes(t, st.merchant, gw, sent, res)
		return err
	case "PRes":
		req, err := parseAs[*protocol.PInitReq](ctx.PInitReq)
		if err != nil {
			return setup(err)
		}
		pinitRes, err := parseAs[*protocol.PInitRes](ctx.PInitRes)
		if err != nil {
			return setup(err)
		}
		terms, err := protocol.VerifyPInitRes(t, req, pinitRes, held)
		if err != nil {
			return setup(err)
		}
		oi, err := protocol.Decode[protocol.OIData](ctx.OIData)
		if err != nil {
			return setup(err)
		}
		res, err := parseAs[*protocol.PRes](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyPRes(t, terms, oi, res, held)
		return err
	case "CapReq":
		req, err := parseAs[*protocol.CapReq](v.Input)
		if err != nil {
			return err
		}
		b, err := protocol.VerifyCapReq(t, st.gateway, req)
		if v.Expect.Item == nil || err != nil {
			return err
		}
		i := *v.Expect.Item
		if i < 0 || i >= len(b.Items) {
			return setup(fmt.Errorf("item %d of %d", i, len(b.Items)))
		}
		for j := range i {
			if b.Items[j].Err != nil {
				return fmt.Errorf("item %d refused before item %d: %w", j, i, b.Items[j].Err)
			}
		}
		return b.Items[i].Err
	case "CapRes":
		sent, err := protocol.Decode[protocol.CapReqData](ctx.Sent)
		if err != nil {
			return setup(err)
		}
		gw, err := protocol.ParseCertificate(ctx.GatewayKE)
		if err != nil {
			return setup(err)
		}
		res, err := parseAs[*protocol.CapRes](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyCapRes(t, st.merchant, gw, sent, res)
		return err
	case "Error":
		e, err := parseAs[*protocol.Error](v.Input)
		if err != nil {
			return err
		}
		_, err = protocol.VerifyError(t, e, protocol.CertType(ctx.From), st.suite)
		return err
	}
	return setup(fmt.Errorf("unknown check %q", v.Check))
}

func checkMessage(v *Message) error {
	w, err := protocol.Parse(v.DER)
	if err != nil {
		return err
	}
	if !bytes.Equal(w.Marshal(), v.DER) {
		return fmt.Errorf("re-encoding differs")
	}
	if got := w.Message.Type().String(); got != v.Type {
		return fmt.Errorf("type %s, vector says %s", got, v.Type)
	}
	got, _ := json.Marshal(Decoded(w))
	want, _ := json.Marshal(v.Decoded)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("decoded fields differ:\n got  %s\n want %s", got, want)
	}
	return nil
}

// capTokenOpen opens a CapToken as docs/PROTOCOL.md section 6.9 says, with
// the standard library only.
func capTokenOpen(s protocol.Suite, key, salt, ct, aad []byte) ([]byte, error) {
	okm, err := hkdf.Key(sha256.New, key, salt, string(protocol.Labelled("setpay/1 CapToken", s, nil)), 44)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return g.Open(nil, okm[32:], ct, aad)
}
