// Package adversary attacks running setpay agents on the wire, for tests.
//
// An [Attacker] stands beside an agenttest rig (the CA, the gateway with its
// bank, merchants and cardholders on loopback HTTPS) and does what a
// dishonest party or a network attacker can: it records genuine messages
// (through the rig's Tap, from a cardholder's receipt, or by registering
// itself), sends them again, reflects answers back as requests, cuts and
// pastes parts of one transaction into another, signs with keys of the wrong
// kind, seals its own envelopes, forges certificates (expired, not yet
// valid, of another CA that copies the genuine one's names), truncates,
// pads and nests messages, and opens raw TLS connections that stall or
// trickle bytes.
//
// After each attempt a test compares a [State] (every row the gateway's
// ledger and the merchants' stores hold, the bank's holds and captures,
// the certificates the CA issued) with the one before: an attack must be
// refused clearly and change nothing.
//
// The package counts what it tries ([Cases], [Attempts]); the suite prints
// the totals.
package adversary

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/agenttest"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

var cases, attempts atomic.Int64

// Cases returns how many adversarial cases were tried (see [Attacker.Case]).
func Cases() int64 { return cases.Load() }

// Attempts returns how many requests and connections the attackers made.
func Attempts() int64 { return attempts.Load() }

// Attacker attacks the agents of one rig.
type Attacker struct {
	Rig *agenttest.Rig

	mu        sync.Mutex
	merchants []*agenttest.Merchant
}

// New returns an attacker of r that watches r.Merchant's store.
func New(r *agenttest.Rig) *Attacker {
	return &Attacker{Rig: r, merchants: []*agenttest.Merchant{r.Merchant}}
}

// Watch adds merchants whose stores State reads.
func (a *Attacker) Watch(ms ...*agenttest.Merchant) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.merchants = append(a.merchants, ms...)
}

// Case runs f as the subtest name and counts it as one adversarial case.
func (a *Attacker) Case(t *testing.T, name string, f func(t *testing.T)) bool {
	t.Helper()
	cases.Add(1)
	return t.Run(name, f)
}

// Reply is a server's answer to one attempt.
type Reply struct {
	Status int    // HTTP status; 0 if there was no HTTP answer
	Body   []byte // the answer's body
	Err    error  // why there was no HTTP answer (connection, TLS handshake)
}

// String describes the reply for a failure message.
func (r Reply) String() string {
	switch {
	case r.Err != nil:
		return "no answer: " + r.Err.Error()
	case r.Status != http.StatusOK:
		return fmt.Sprintf("HTTP %d: %q", r.Status, firstLine(r.Body))
	}
	w, err := protocol.Parse(r.Body)
	if err != nil {
		return fmt.Sprintf("HTTP 200, a body that does not parse: %v", err)
	}
	if e, ok := w.Message.(*protocol.Error); ok {
		return fmt.Sprintf("Error %d (%s): %q", e.Data.Code, e.Data.Code, e.Data.Detail)
	}
	return "a " + w.Message.Type().String()
}

func firstLine(b []byte) []byte {
	b, _, _ = bytes.Cut(b, []byte("\n"))
	if len(b) > 200 {
		b = b[:200]
	}
	return b
}

// Error returns the Error message of a 200 reply, nil for anything else.
func (r Reply) Error() *protocol.Error {
	if r.Err != nil || r.Status != http.StatusOK {
		return nil
	}
	w, err := protocol.Parse(r.Body)
	if err != nil {
		return nil
	}
	e, _ := w.Message.(*protocol.Error)
	return e
}

// Post sends body to u as a setpay message (POST, agent.ContentType) with
// c, and returns the answer as it came. It never retries.
func Post(ctx context.Context, c *http.Client, u string, body []byte) Reply {
	return Send(ctx, c, http.MethodPost, u, agent.ContentType, body)
}

// Send sends a request of method with body of type contentType to u with
// c, and returns the answer as it came.
func Send(ctx context.Context, c *http.Client, method, u, contentType string, body []byte) Reply {
	attempts.Add(1)
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return Reply{Err: err}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return Reply{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxMessageSize+1))
	return Reply{Status: resp.StatusCode, Body: b, Err: err}
}

// Client returns an HTTPS client with a transport of its own presenting
// cert (nil: none) that accepts a server certificate of type server from
// the rig's CA. Its connections are closed when the test ends.
func (a *Attacker) Client(t testing.TB, cert *tls.Certificate, server protocol.CertType) *http.Client {
	tc := mtls.Client(cert, func() []*protocol.Trust { return []*protocol.Trust{a.Rig.Trust()} }, nil, server)
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// MerchantClient returns a client of the gateway presenting m's TLS
// certificate: the attacker is merchant m.
func (a *Attacker) MerchantClient(t testing.TB, m *agenttest.Merchant) *http.Client {
	cert := m.TLSCertificate()
	return a.Client(t, &cert, protocol.CertGatewayTLS)
}

// WantError fails t unless rep is a 200 answer holding an Error of code,
// signed by a certificate of type from (0: not checked) that verifies with
// the rig's trust.
func (a *Attacker) WantError(t testing.TB, rep Reply, code protocol.Code, from protocol.CertType) {
	t.Helper()
	e := rep.Error()
	if e == nil {
		t.Fatalf("got %s; want an Error %d (%s)", rep, code, code)
	}
	if e.Data.Code != code {
		t.Fatalf("got Error %d (%s: %q); want %d (%s)", e.Data.Code, e.Data.Code, e.Data.Detail, code, code)
	}
	if from != 0 {
		if _, err := protocol.VerifyError(a.Rig.Trust(), e, from, agenttest.Suite); err != nil {
			t.Errorf("the Error is not signed by a %s certificate: %v", from, err)
		}
	}
}

// WantStatus fails t unless rep is an HTTP answer of status.
func WantStatus(t testing.TB, rep Reply, status int) {
	t.Helper()
	if rep.Err != nil || rep.Status != status {
		t.Fatalf("got %s; want HTTP %d", rep, status)
	}
}

// WantMessage fails t unless rep is a 200 answer holding a message of type
// T, and returns it.
func WantMessage[T protocol.Message](t testing.TB, rep Reply) T {
	t.Helper()
	var zero T
	if rep.Err != nil || rep.Status != http.StatusOK {
		t.Fatalf("got %s; want a %T", rep, zero)
	}
	w, err := protocol.Parse(rep.Body)
	if err != nil {
		t.Fatalf("the answer does not parse: %v", err)
	}
	m, ok := w.Message.(T)
	if !ok {
		t.Fatalf("got %s; want a %T", rep, zero)
	}
	return m
}

// ---- What the parties stored ----

// State is everything the rig's parties stored, row by row: name of the
// row -> a digest of its content. Rows are the gateway's ledger tables
// (answers, authorizations, captures), each watched merchant's store
// (orders, batches), the bank's holds and captures, and the certificates
// the CA issued (with their revocation).
type State map[string]string

// State reads what the rig's parties stored now. The SQLite stores are
// opened read-only beside the agents' own connections.
func (a *Attacker) State(t testing.TB) State {
	t.Helper()
	s := State{}
	r := a.Rig
	readDB(t, s, "gateway", r.Gateway.LedgerPath(), "answers", "authorizations", "captures")
	a.mu.Lock()
	ms := slices.Clone(a.merchants)
	a.mu.Unlock()
	for _, m := range ms {
		readDB(t, s, "merchant "+m.ID, m.StorePath(), "orders", "batches")
	}
	ctx := context.Background()
	holds, err := r.Bank.Holds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range holds {
		s["bank/holds/"+h.MerchantID+"/"+h.RRN] = fmt.Sprint(h)
	}
	for _, id := range agenttest.MerchantIDs {
		cs, err := r.Bank.Captures(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			s["bank/captures/"+id+"/"+c.RRN] = fmt.Sprint(c)
		}
	}
	certs, err := r.CA.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		s[fmt.Sprintf("ca/certificates/%s/%s", c.Issuer, c.Serial)] = fmt.Sprintf("%s %s %s", c.Type, c.Subject, c.Status(agenttest.Now))
	}
	return s
}

// readDB adds the rows of tables of the SQLite database at path to s, as
// "party/table/first column".
func readDB(t testing.TB, s State, party, path string, tables ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatalf("%s %s: %v", party, table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			for i, v := range vals {
				fmt.Fprintf(h, "%s=%x;", cols[i], fmt.Sprint(v))
			}
			key := fmt.Sprint(vals[0])
			if b, ok := vals[0].([]byte); ok {
				key = hex.EncodeToString(b)
			}
			s[party+"/"+table+"/"+key] = hex.EncodeToString(h.Sum(nil))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
}

// Diff lists the rows added, removed or changed from before to s.
func (s State) Diff(before State) []string {
	var out []string
	for k, v := range s {
		switch w, ok := before[k]; {
		case !ok:
			out = append(out, "added "+k)
		case w != v:
			out = append(out, "changed "+k)
		}
	}
	for k := range before {
		if _, ok := s[k]; !ok {
			out = append(out, "removed "+k)
		}
	}
	sort.Strings(out)
	return out
}

// Count returns how many rows' names start with prefix ("gateway/answers/",
// "bank/holds/", "ca/certificates/").
func (s State) Count(prefix string) int {
	n := 0
	for k := range s {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// Unchanged fails t if what the parties stored differs from before, but
// for the rows named in allowed (as "added ROW", "changed ROW"...: what the
// attacked party records by design, such as a merchant's refusal of an
// order). It also fails t if a party logged a panic.
func (a *Attacker) Unchanged(t testing.TB, before State, allowed ...string) {
	t.Helper()
	var bad []string
	for _, d := range a.State(t).Diff(before) {
		if !slices.Contains(allowed, d) {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the attack changed what is stored:\n\t%s", strings.Join(bad, "\n\t"))
	}
	a.NoPanics(t)
}

// stdLog holds what the standard logger printed once CaptureStdLog was
// called: the CA server's log (its http.Server has no logger of its own).
var stdLog agenttest.Buffer

// CaptureStdLog sends the standard logger's output to a buffer NoPanics
// reads (instead of stderr, where every stalled connection the attacker
// closes would print a line).
func CaptureStdLog() { log.SetOutput(&stdLog) }

// NoPanics fails t if the gateway, a watched merchant or the CA server
// (through the standard logger, see CaptureStdLog) logged a panic.
func (a *Attacker) NoPanics(t testing.TB) {
	t.Helper()
	logs := map[string]string{"gateway": a.Rig.Gateway.Log.String(), "CA server (standard log)": stdLog.String()}
	a.mu.Lock()
	for _, m := range a.merchants {
		logs["merchant "+m.ID] = m.Log.String()
	}
	a.mu.Unlock()
	for who, log := range logs {
		if strings.Contains(log, "panic") {
			t.Errorf("the %s logged a panic:\n%s", who, log)
		}
	}
}

// OrderRow names the row of order id in m's store, for Unchanged.
func OrderRow(m *agenttest.Merchant, id string) string { return "merchant " + m.ID + "/orders/" + id }

// ---- Recording ----

// Recorder is an HTTP transport that records the bodies of what it sends
// and receives: the attacker as a party, keeping its own genuine messages.
type Recorder struct {
	Next http.RoundTripper
	// Hold, if set, is asked about every POST body: true keeps the request
	// (recorded in Held) from the server, and the round trip fails.
	Hold func(body []byte) bool

	mu        sync.Mutex
	requests  [][]byte
	responses [][]byte
	held      [][]byte
}

// ErrHeld is the error of a round trip the Recorder held.
var ErrHeld = errors.New("adversary: request held by the attacker")

// RoundTrip implements http.RoundTripper.
func (rec *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	if req.Method == http.MethodPost && rec.Hold != nil && rec.Hold(body) {
		rec.mu.Lock()
		rec.held = append(rec.held, body)
		rec.mu.Unlock()
		return nil, ErrHeld
	}
	resp, err := rec.Next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	if req.Method == http.MethodPost {
		rec.mu.Lock()
		rec.requests = append(rec.requests, body)
		rec.responses = append(rec.responses, out)
		rec.mu.Unlock()
	}
	return resp, nil
}

// Exchanges returns the POST bodies sent and the answers, in order.
func (rec *Recorder) Exchanges() (requests, responses [][]byte) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.requests), slices.Clone(rec.responses)
}

// Held returns the POST bodies the Recorder held, in order.
func (rec *Recorder) Held() [][]byte {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.held)
}

// Registered is a registration the attacker ran, with what was sent and
// answered.
type Registered struct {
	*agent.Registered
	Requests, Responses [][]byte
	// Held is the request the registration stopped at (RegisterUntil).
	Held []byte
}

// Register registers with the rig's CA as a party of role (for a merchant
// or gateway, with identity id), recording every message.
func (a *Attacker) Register(t testing.TB, role protocol.Role, id protocol.Identity) *Registered {
	t.Helper()
	return a.register(t, role, id, 0)
}

// RegisterUntil runs a registration as Register does, but keeps its first
// request of type stop from the CA: Held is that request, which the CA has
// not seen.
func (a *Attacker) RegisterUntil(t testing.TB, role protocol.Role, id protocol.Identity, stop protocol.MessageType) *Registered {
	t.Helper()
	return a.register(t, role, id, stop)
}

func (a *Attacker) register(t testing.TB, role protocol.Role, id protocol.Identity, stop protocol.MessageType) *Registered {
	t.Helper()
	reg := a.Rig.Registration(role)
	reg.Identity = id
	rec := &Recorder{Next: reg.Client.Transport}
	if stop != 0 {
		rec.Hold = func(b []byte) bool { return MessageType(b) == stop }
	}
	reg.Client = &http.Client{Timeout: 30 * time.Second, Transport: rec}
	out, err := agent.Register(context.Background(), &reg)
	reqs, ress := rec.Exchanges()
	rg := &Registered{Registered: out, Requests: reqs, Responses: ress}
	switch held := rec.Held(); {
	case stop == 0 && err != nil:
		t.Fatalf("registering a %s: %v", role, err)
	case stop != 0 && len(held) == 0:
		t.Fatalf("registering a %s: no %s was sent (%v)", role, stop, err)
	case stop != 0:
		rg.Held = held[0]
	}
	return rg
}

// MessageType returns the type of the message der holds, 0 if it does not
// parse.
func MessageType(der []byte) protocol.MessageType {
	w, err := protocol.Parse(der)
	if err != nil {
		return 0
	}
	return w.Message.Type()
}

// ---- Message surgery ----

// Prefixes returns up to n+16 proper prefixes of b: the 8 shortest, the 8
// longest and n spread evenly in between, each once.
func Prefixes(b []byte, n int) [][]byte {
	var lens []int
	for i := range 8 {
		lens = append(lens, i, len(b)-1-i)
	}
	for i := range n {
		lens = append(lens, len(b)*(i+1)/(n+1))
	}
	var out [][]byte
	seen := map[int]bool{}
	for _, l := range lens {
		if l < 0 || l >= len(b) || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, b[:l:l])
	}
	return out
}

// Trailing returns b followed by extra.
func Trailing(b []byte, extra ...byte) []byte { return append(slices.Clip(b), extra...) }

// Nested returns depth SEQUENCE headers, each holding the next, around an
// empty SEQUENCE: canonical DER, as deep as depth.
func Nested(depth int) []byte { return NestIn([]byte{0x30, 0x00}, depth) }

// NestIn returns der inside depth SEQUENCE headers (canonical DER lengths).
func NestIn(der []byte, depth int) []byte {
	// The headers from the inside out, then written outside in.
	heads := make([][]byte, depth)
	n := len(der)
	for i := range heads {
		heads[i] = append([]byte{0x30}, derLength(n)...)
		n += len(heads[i])
	}
	out := make([]byte, 0, n)
	for i := depth - 1; i >= 0; i-- {
		out = append(out, heads[i]...)
	}
	return append(out, der...)
}

func derLength(n int) []byte {
	if n < 0x80 {
		return []byte{byte(n)}
	}
	var b []byte
	for ; n > 0; n >>= 8 {
		b = append([]byte{byte(n)}, b...)
	}
	return append([]byte{0x80 | byte(len(b))}, b...)
}

// Oversized returns n bytes: b, then a padding of zeros.
func Oversized(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	return out
}

// Rewrap returns der with its MessageWrapper changed by f.
func Rewrap(t testing.TB, der []byte, f func(*protocol.Wrapper)) []byte {
	t.Helper()
	return agenttest.Rewrap(t, der, f)
}

// Message parses der and returns its message as T, failing t otherwise.
func Message[T protocol.Message](t testing.TB, der []byte) T {
	t.Helper()
	return agenttest.Expect[T](t, der)
}

// SwapPI returns the PReq oi carrying the PI (and PIMD) of the PReq pi:
// the order information of one transaction with the payment instruction
// of another.
func SwapPI(t testing.TB, oi, pi []byte) []byte {
	t.Helper()
	other := Message[*protocol.PReq](t, pi)
	return Rewrap(t, oi, func(w *protocol.Wrapper) {
		m := w.Message.(*protocol.PReq)
		m.PI, m.PIMD = other.PI, other.PIMD
	})
}

// ---- Signing and sealing ----

// Labels of the messages the attacker signs and seals itself
// (docs/PROTOCOL.md, section 4).
const (
	LabelAuthReqSignature = "setpay/1 AuthReq signature"
	LabelAuthReqEnvelope  = "setpay/1 AuthReq envelope"
	LabelCapReqSignature  = "setpay/1 CapReq signature"
	LabelCapReqEnvelope   = "setpay/1 CapReq envelope"
	LabelDualSignature    = "setpay/1 dual signature"
)

// Sign signs Labelled(label, s, tbs) with key the way setpay's algorithms
// do (Ed25519 over the input, ECDSA over its SHA-256), whatever the key's
// certificate says it is for.
func Sign(t testing.TB, key crypto.Signer, s protocol.Suite, label string, tbs []byte) []byte {
	t.Helper()
	in := protocol.Labelled(label, s, tbs)
	var sig []byte
	var err error
	switch key.Public().(type) {
	case ed25519.PublicKey:
		sig, err = key.Sign(rand.Reader, in, crypto.Hash(0))
	case *ecdsa.PublicKey:
		d := sha256.Sum256(in)
		sig, err = key.Sign(rand.Reader, d[:], crypto.SHA256)
	default:
		err = fmt.Errorf("a %T key", key.Public())
	}
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return sig
}

// Seal seals plaintext to the key-exchange certificate to (HPKE base mode
// of to's suite, info Labelled(label, suite, ""), aad), as anyone who holds
// the certificate can.
func Seal(t testing.TB, to *protocol.Cert, label string, plaintext, aad []byte) protocol.Envelope {
	t.Helper()
	s, pub, err := protocol.ParseKEMPublicKey(to.X509.RawSubjectPublicKeyInfo)
	if err != nil {
		t.Fatalf("sealing to a %s certificate: %v", to.Type, err)
	}
	snd, err := s.HPKE().NewSender(pub, protocol.Labelled(label, s, nil))
	if err != nil {
		t.Fatal(err)
	}
	enc, sealer, err := snd.Setup(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := sealer.Seal(plaintext, aad)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.Envelope{Suite: s, Recipient: to.Thumb, Enc: enc, Ciphertext: ct}
}

// Signer is who an attacker's signature claims to be: a key, the
// thumbprint of the certificate the signature names, the certificates it
// carries and the suite it claims.
type Signer struct {
	Key   crypto.Signer
	Thumb protocol.Thumbprint
	Certs [][]byte
	Suite protocol.Suite
}

// SignerOf returns the Signer of key with certificate chain (leaf first)
// under the rig's suite.
func SignerOf(key crypto.Signer, chain ...[]byte) Signer {
	return Signer{Key: key, Thumb: protocol.ThumbprintOf(chain[0]), Certs: chain, Suite: agenttest.Suite}
}

func (s Signer) sign(t testing.TB, label string, tbs []byte) protocol.Signature {
	t.Helper()
	return protocol.Signature{Suite: s.Suite, Signer: s.Thumb, Value: Sign(t, s.Key, s.Suite, label, tbs)}
}

// AuthReq returns an AuthReq (DER MessageWrapper) of data signed by
// signer, sealed to the gateway key-exchange certificate gw, with pi as
// its baggage.
func AuthReq(t testing.TB, signer Signer, gw *protocol.Cert, data protocol.AuthReqData, pi protocol.PI) []byte {
	t.Helper()
	signed := &protocol.AuthReqSigned{Data: data, Signature: signer.sign(t, LabelAuthReqSignature, protocol.Encode(&data)), Certificates: signer.Certs}
	req := &protocol.AuthReq{Sealed: Seal(t, gw, LabelAuthReqEnvelope, protocol.Encode(signed), nil), PI: pi}
	return protocol.NewWrapper(req, agenttest.Now, &data.TransIDs, &data.RRPID).Marshal()
}

// CapReq returns a CapReq (DER MessageWrapper) of data signed by signer
// and sealed to gw.
func CapReq(t testing.TB, signer Signer, gw *protocol.Cert, data protocol.CapReqData) []byte {
	t.Helper()
	signed := &protocol.CapReqSigned{Data: data, Signature: signer.sign(t, LabelCapReqSignature, protocol.Encode(&data)), Certificates: signer.Certs}
	req := &protocol.CapReq{Sealed: Seal(t, gw, LabelCapReqEnvelope, protocol.Encode(signed), nil)}
	return protocol.NewWrapper(req, agenttest.Now, nil, &data.RRPID).Marshal()
}

// RRPID returns a fresh RRPID.
func RRPID() protocol.RRPID {
	var r protocol.RRPID
	rand.Read(r[:])
	return r
}

// ---- Certificates ----

var oidX509Extensions = asn1.ObjectIdentifier{2, 5, 29}

// template returns a certificate template with the names, extensions and
// constraints of x and a fresh serial number.
func template(x *x509.Certificate) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tm := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		RawSubject:            x.RawSubject,
		NotBefore:             x.NotBefore,
		NotAfter:              x.NotAfter,
		KeyUsage:              x.KeyUsage,
		ExtKeyUsage:           x.ExtKeyUsage,
		BasicConstraintsValid: x.BasicConstraintsValid,
		IsCA:                  x.IsCA,
		MaxPathLen:            x.MaxPathLen,
		MaxPathLenZero:        x.MaxPathLenZero,
		SubjectKeyId:          x.SubjectKeyId,
		DNSNames:              x.DNSNames,
		IPAddresses:           x.IPAddresses,
	}
	for _, e := range x.Extensions {
		if len(e.Id) > 3 && e.Id[:3].Equal(oidX509Extensions) {
			continue // set by crypto/x509 from the fields above
		}
		tm.ExtraExtensions = append(tm.ExtraExtensions, pkix.Extension{Id: e.Id, Critical: e.Critical, Value: e.Value})
	}
	return tm
}

// Reissue returns a copy of certificate der for the public key pub, signed
// by issuer with key, its fields changed by edit (nil: none): what a
// holder of issuer's key can make. The serial number is fresh.
func Reissue(t testing.TB, der []byte, issuer *x509.Certificate, key crypto.Signer, pub crypto.PublicKey, edit func(*x509.Certificate)) []byte {
	t.Helper()
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	tm := template(x)
	if edit != nil {
		edit(tm)
	}
	out, err := x509.CreateCertificate(rand.Reader, tm, issuer, pub, key)
	if err != nil {
		t.Fatalf("reissuing %q: %v", x.Subject.CommonName, err)
	}
	return out
}

// PublicKey returns the public key of certificate der.
func PublicKey(t testing.TB, der []byte) crypto.PublicKey {
	t.Helper()
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return x.PublicKey
}

// Mirror returns a foreign chain that copies chain (leaf first, up to and
// excluding the root root): the same names, extensions and key
// identifiers, but every certificate signed by a fresh key of a foreign
// CA whose root has root's name. The leaf is for pub.
func Mirror(t testing.TB, chain [][]byte, root []byte, pub crypto.PublicKey) [][]byte {
	t.Helper()
	certs := append(slices.Clone(chain), root)
	keys := make([]ed25519.PrivateKey, len(certs))
	for i := range keys {
		_, keys[i], _ = ed25519.GenerateKey(rand.Reader)
	}
	// The root signs itself; each other certificate is signed by the
	// mirror of the next one up.
	out := make([][]byte, len(certs))
	parents := make([]*x509.Certificate, len(certs))
	for i := len(certs) - 1; i >= 0; i-- {
		x, err := x509.ParseCertificate(certs[i])
		if err != nil {
			t.Fatal(err)
		}
		tm := template(x)
		var key crypto.PublicKey = keys[i].Public()
		if i == 0 {
			key = pub
		}
		parent, signer := tm, keys[i]
		if i < len(certs)-1 {
			parent, signer = parents[i+1], keys[i+1]
		}
		if out[i], err = x509.CreateCertificate(rand.Reader, tm, parent, key, signer); err != nil {
			t.Fatalf("mirroring %q: %v", x.Subject.CommonName, err)
		}
		if parents[i], err = x509.ParseCertificate(out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out[:len(chain)]
}

// TLSCertificate pairs a chain with its private key.
func TLSCertificate(key crypto.Signer, chain ...[]byte) *tls.Certificate {
	return &tls.Certificate{Certificate: chain, PrivateKey: key}
}

// ---- Raw connections ----

// Dial opens a TLS connection (HTTP/1.1 only) to the server at base URL u
// presenting cert (nil: none), and completes the client's side of the
// handshake. It does not check the server: the attacker does not care
// whom it attacks. The connection is closed when the test ends.
func Dial(t testing.TB, u string, cert *tls.Certificate) (*tls.Conn, error) {
	t.Helper()
	attempts.Add(1)
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
	c, err := d.DialContext(context.Background(), "tcp", pu.Host)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn), nil
}

// RawRequest returns an HTTP/1.1 POST of body to the path of u as a setpay
// message, as bytes.
func RawRequest(u, path string, body []byte) []byte {
	pu, _ := url.Parse(u)
	return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		path, pu.Host, agent.ContentType, len(body), body)
}

// Refused connects to u presenting cert (nil: none), sends a request for
// path and returns the error that refused it, nil if an HTTP answer came.
// With TLS 1.3 the server checks the client's certificate after the
// client's side of the handshake is done, so its refusal (an alert) comes
// with the first read.
func Refused(t testing.TB, u, path string, cert *tls.Certificate) error {
	t.Helper()
	c, err := Dial(t, u, cert)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(RawRequest(u, path, []byte{0x30, 0x00})); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Stall opens a connection to u presenting cert, sends the first n bytes
// of req and then nothing. The connection stays open until closed or the
// test ends.
func Stall(t testing.TB, u string, cert *tls.Certificate, req []byte, n int) net.Conn {
	t.Helper()
	c, err := Dial(t, u, cert)
	if err != nil {
		t.Fatalf("stalling: %v", err)
	}
	if _, err := c.Write(req[:n]); err != nil {
		t.Fatalf("stalling: %v", err)
	}
	return c
}

// Silent opens a TCP connection to u and sends nothing, not even a TLS
// ClientHello.
func Silent(t testing.TB, u string) net.Conn {
	t.Helper()
	attempts.Add(1)
	pu, _ := url.Parse(u)
	c, err := net.DialTimeout("tcp", pu.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Trickle opens a connection to u presenting cert and sends req one byte
// every interval, until stop is called (or req is sent). stop closes the
// connection and returns how many bytes were sent.
func Trickle(t testing.TB, u string, cert *tls.Certificate, req []byte, every time.Duration) (stop func() int) {
	t.Helper()
	c, err := Dial(t, u, cert)
	if err != nil {
		t.Fatalf("trickling: %v", err)
	}
	done := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n < len(req) {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if _, err := c.Write(req[n : n+1]); err != nil {
				return
			}
			n++
		}
	}()
	var once sync.Once
	n := 0
	return func() int {
		once.Do(func() {
			close(done)
			n = <-sent
			c.Close()
		})
		return n
	}
}
