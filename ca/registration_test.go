package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/ca"
	"github.com/setpay/setpay/protocol"
)

// Accounts of the test issuer.
const (
	testPAN      = "4111111111111111"
	testExpiry   = "202912"
	testCode     = "482-913"
	reviewPAN    = "4000000000000002"
	blockedPAN   = "4000000000000010"
	unknownPAN   = "4242424242424242"
	merchantCode = "m-7730"
	gatewayCode  = "g-1208"
)

var regNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// rig is a CA with its registrar, a test issuer and enrolled merchants and
// gateway, at a fixed time and with a seeded random source.
type rig struct {
	t      testing.TB
	c      *ca.CA
	reg    *ca.Registrar
	issuer *ca.AccountIssuer
	rnd    io.Reader
	seq    int
}

func newRig(t testing.TB) *rig {
	t.Helper()
	dir := t.TempDir()
	o := ca.Options{Rand: rand.NewChaCha8([32]byte{'r', 'e', 'g'}), Now: func() time.Time { return regNow }}
	if err := ca.Init(dir, o); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := ca.NewAccountIssuer([]ca.Account{
		{PAN: testPAN, Expiry: testExpiry, ActivationCode: testCode},
		{PAN: reviewPAN, Expiry: testExpiry, ActivationCode: testCode, Status: "review"},
		{PAN: blockedPAN, Expiry: testExpiry, ActivationCode: testCode, Status: "blocked"},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := ca.NewRegistrar(c, issuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(); c.Close() })
	for _, e := range []ca.Enrollment{
		{Role: protocol.RoleMerchant, ID: "M-0001", Name: "Test Shop", AcquirerBIN: "400000", ActivationCode: merchantCode},
		{Role: protocol.RoleMerchant, ID: "M-0002", Name: "Other Shop", AcquirerBIN: "400000", ActivationCode: merchantCode},
		{Role: protocol.RoleGateway, ID: "gateway-1", Name: "Test Gateway", ActivationCode: gatewayCode},
	} {
		if err := reg.Enroll(e); err != nil {
			t.Fatal(err)
		}
	}
	return &rig{t: t, c: c, reg: reg, issuer: issuer, rnd: rand.NewChaCha8([32]byte{'a', 'p', 'p'})}
}

// trust is an applicant's Trust: the CA's roots and clock.
func (r *rig) trust() *protocol.Trust {
	var roots [][]byte
	for _, s := range r.c.Suites() {
		roots = append(roots, r.c.Hierarchy(s).Root.Cert)
	}
	t, err := protocol.NewTrust(roots...)
	if err != nil {
		r.t.Fatal(err)
	}
	t.Now = func() time.Time { return regNow }
	return t
}

// send delivers m to the registrar as an applicant would and returns the
// reply's message.
func (r *rig) send(m protocol.Message) protocol.Message {
	r.t.Helper()
	out := r.reg.Handle(r.t.Context(), protocol.NewWrapper(m, regNow, nil, nil).Marshal())
	w, err := protocol.Parse(out)
	if err != nil {
		r.t.Fatalf("reply to %s does not parse: %v", m.Type(), err)
	}
	return w.Message
}

// issuedCount is the number of certificates the CA has issued.
func (r *rig) issuedCount() int {
	recs, err := r.c.List()
	if err != nil {
		r.t.Fatal(err)
	}
	return len(recs)
}

// wantError checks that reply is an Error with code, signed by the CA's
// registration certificate of type from (0: unsigned).
func (r *rig) wantError(reply protocol.Message, code protocol.Code) {
	r.t.Helper()
	e, ok := reply.(*protocol.Error)
	if !ok {
		r.t.Fatalf("got %s, want an Error %d (%s)", reply.Type(), code, code)
	}
	if e.Data.Code != code {
		r.t.Fatalf("got error %d (%s: %q), want %d (%s)", e.Data.Code, e.Data.Code, e.Data.Detail, code, code)
	}
}

func (r *rig) signingKey(s protocol.Suite) crypto.Signer {
	seed := make([]byte, 32)
	io.ReadFull(r.rnd, seed)
	if s == protocol.SuitePQ {
		return ed25519.NewKeyFromSeed(seed)
	}
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
	if err != nil {
		r.t.Fatal(err)
	}
	return k
}

func (r *rig) kemKey(s protocol.Suite) (kem.PublicKey, kem.PrivateKey) {
	seed := make([]byte, s.KEM().SeedSize())
	io.ReadFull(r.rnd, seed)
	return s.KEM().DeriveKeyPair(seed)
}

func (r *rig) applicant(role protocol.Role, s protocol.Suite) *protocol.Registration {
	r.seq++
	return &protocol.Registration{Role: role, Suite: s, Brand: ca.DefaultBrand, Language: "en", Trust: r.trust(),
		Rand: r.rnd, LIDEE: fmt.Appendf(nil, "applicant-%d", r.seq)}
}

// cardholderUpTo runs a cardholder registration up to the form, for pan.
func (r *rig) cardholderForm(s protocol.Suite, pan string) (*protocol.Registration, protocol.Message) {
	r.t.Helper()
	a := r.applicant(protocol.RoleCardholder, s)
	req, err := a.CardCInitReq(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	res, ok := r.send(req).(*protocol.CardCInitRes)
	if !ok {
		r.t.Fatal("CardCInitReq not answered with CardCInitRes")
	}
	if err := a.CheckCardCInitRes(res, nil); err != nil {
		r.t.Fatal(err)
	}
	p, err := protocol.NewPAN(pan)
	if err != nil {
		r.t.Fatal(err)
	}
	rf, err := a.RegFormReq(p, protocol.RequestInitial)
	if err != nil {
		r.t.Fatal(err)
	}
	return a, r.send(rf)
}

type cardholderReq struct {
	pan, expiry, code string
	key               crypto.Signer
}

// cardholderCertReq builds the CertReq of a registration that got its form.
func (r *rig) cardholderCertReq(a *protocol.Registration, c cardholderReq) *protocol.CertReq {
	r.t.Helper()
	p, err := protocol.NewPAN(c.pan)
	if err != nil {
		r.t.Fatal(err)
	}
	acct := &protocol.AccountData{PAN: p, CardExpiry: c.expiry}
	io.ReadFull(r.rnd, acct.CardSecret[:])
	io.ReadFull(r.rnd, acct.EXNonce[:])
	tlsKey := r.signingKey(protocol.SuiteNIST)
	req, err := a.CertReq(protocol.CertReqParams{RequestType: protocol.RequestInitial, Account: acct,
		FormValues: []protocol.FormValue{{Name: ca.FieldActivationCode, Value: c.code}}, SignatureKey: c.key, TLSKey: tlsKey.Public()})
	if err != nil {
		r.t.Fatal(err)
	}
	return req
}

func (r *rig) registerCardholder(s protocol.Suite, c cardholderReq) (*protocol.Registration, *protocol.Issued) {
	r.t.Helper()
	a, res := r.cardholderForm(s, c.pan)
	form, ok := res.(*protocol.RegFormRes)
	if !ok {
		r.t.Fatalf("RegFormReq answered with %s", res.Type())
	}
	if _, err := a.CheckRegFormRes(form); err != nil {
		r.t.Fatal(err)
	}
	if c.key == nil {
		c.key = r.signingKey(s)
	}
	out, err := a.CheckCertRes(r.send(r.cardholderCertReq(a, c)))
	if err != nil {
		r.t.Fatal(err)
	}
	return a, out
}

func TestRegisterCardholder(t *testing.T) {
	for _, s := range protocol.Suites {
		t.Run(s.String(), func(t *testing.T) {
			r := newRig(t)
			before := r.issuedCount()
			key := r.signingKey(s)
			_, out := r.registerCardholder(s, cardholderReq{pan: testPAN, expiry: testExpiry, code: testCode, key: key})
			if out == nil {
				t.Fatal("registration pending, want issued")
			}
			if got := r.issuedCount(); got != before+2 {
				t.Errorf("CA issued %d certificates, want 2 (signature and TLS)", got-before)
			}
			sk, err := protocol.NewSigningKey(key, out.Signature)
			if err != nil {
				t.Fatal(err)
			}
			if sk.Cert.Type != protocol.CertCardholderSignature || sk.Cert.AccountHash == nil || sk.Cert.Brand != ca.DefaultBrand {
				t.Errorf("cardholder certificate: type %s, account hash %v, brand %q", sk.Cert.Type, sk.Cert.AccountHash != nil, sk.Cert.Brand)
			}
			if _, err := r.c.Trust().Verify(out.TLS, protocol.ThumbprintOf(out.TLS[0]), protocol.CertCardholderTLS, 0); err != nil {
				t.Errorf("TLS certificate: %v", err)
			}
			// The issued certificate is usable by the cardholder's software
			// and verifies at any party that trusts the CA.
			if _, err := r.c.Trust().Verify(out.Signature, sk.Cert.Thumb, protocol.CertCardholderSignature, s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRegisterMerchantAndGateway(t *testing.T) {
	for _, s := range protocol.Suites {
		t.Run(s.String(), func(t *testing.T) {
			r := newRig(t)
			for _, tc := range []struct {
				role protocol.Role
				id   protocol.Identity
				code string
			}{
				{protocol.RoleMerchant, protocol.Identity{ID: "M-0001", AcquirerBIN: "400000"}, merchantCode},
				{protocol.RoleGateway, protocol.Identity{ID: "gateway-1"}, gatewayCode},
			} {
				sig := r.signingKey(s)
				kePub, kePriv := r.kemKey(s)
				_, out := r.registerMeAq(s, tc.role, tc.id, tc.id, tc.code, sig, kePub)
				if out == nil {
					t.Fatalf("%s: no certificates", tc.role)
				}
				sk, err := protocol.NewSigningKey(sig, out.Signature)
				if err != nil {
					t.Fatal(err)
				}
				ke, err := protocol.NewKeyExchangeKey(kePriv, out.KeyExchange)
				if err != nil {
					t.Fatal(err)
				}
				if tc.role == protocol.RoleMerchant && (sk.Cert.MerchantID() != "M-0001" || ke.Cert.MerchantID() != "M-0001") {
					t.Errorf("merchant certificates name merchant %q and %q", sk.Cert.MerchantID(), ke.Cert.MerchantID())
				}
				if sk.Cert.X509.Subject.String() != ke.Cert.X509.Subject.String() {
					t.Errorf("%s signature and key-exchange certificates have different subjects", tc.role)
				}
			}
		})
	}
}

// registerMeAq registers a merchant or gateway: the session is opened for
// opened, the CertReq names asked.
func (r *rig) registerMeAq(s protocol.Suite, role protocol.Role, opened, asked protocol.Identity, code string, sig crypto.Signer, ke kem.PublicKey) (protocol.Message, *protocol.Issued) {
	r.t.Helper()
	a := r.applicant(role, s)
	req, err := a.MeAqCInitReq(opened, protocol.RequestInitial, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	res := r.send(req)
	init, ok := res.(*protocol.MeAqCInitRes)
	if !ok {
		return res, nil
	}
	if err := a.CheckMeAqCInitRes(init, nil); err != nil {
		r.t.Fatal(err)
	}
	cr, err := a.CertReq(protocol.CertReqParams{RequestType: protocol.RequestInitial, Identity: &asked,
		FormValues: []protocol.FormValue{{Name: ca.FieldActivationCode, Value: code}}, SignatureKey: sig, KeyExchangeKey: ke})
	if err != nil {
		r.t.Fatal(err)
	}
	reply := r.send(cr)
	if _, isErr := reply.(*protocol.Error); isErr {
		return reply, nil
	}
	out, err := a.CheckCertRes(reply)
	if err != nil {
		r.t.Fatal(err)
	}
	return reply, out
}

// TestRegistrationRefusals: each refusal gives its own code and issues
// nothing.
func TestRegistrationRefusals(t *testing.T) {
	s := protocol.SuitePQ
	cases := []struct {
		name string
		code protocol.Code
		run  func(r *rig) protocol.Message
	}{
		{"unknown PAN", protocol.CodeUnknownAccount, func(r *rig) protocol.Message {
			_, res := r.cardholderForm(s, unknownPAN)
			return res
		}},
		{"wrong expiry", protocol.CodeAccountExpiry, func(r *rig) protocol.Message {
			return r.cardholderAttempt(s, cardholderReq{pan: testPAN, expiry: "203001", code: testCode}, nil)
		}},
		{"wrong activation code", protocol.CodeRegSecret, func(r *rig) protocol.Message {
			return r.cardholderAttempt(s, cardholderReq{pan: testPAN, expiry: testExpiry, code: "000-000"}, nil)
		}},
		{"blocked account", protocol.CodeAccountRefused, func(r *rig) protocol.Message {
			return r.cardholderAttempt(s, cardholderReq{pan: blockedPAN, expiry: testExpiry, code: testCode}, nil)
		}},
		{"CertReq for another account than the form", protocol.CodeIdentityMismatch, func(r *rig) protocol.Message {
			a, res := r.cardholderForm(s, testPAN)
			if _, err := a.CheckRegFormRes(res.(*protocol.RegFormRes)); err != nil {
				r.t.Fatal(err)
			}
			return r.send(r.cardholderCertReq(a, cardholderReq{pan: reviewPAN, expiry: testExpiry, code: testCode, key: r.signingKey(s)}))
		}},
		{"wrong challenge", protocol.CodeChallCAMismatch, func(r *rig) protocol.Message {
			return r.cardholderAttempt(s, cardholderReq{pan: testPAN, expiry: testExpiry, code: testCode}, func(a *protocol.Registration) {
				a.Session.ChallCA[0] ^= 1
			})
		}},
		{"wrong LID-CA", protocol.CodeChallCAMismatch, func(r *rig) protocol.Message {
			return r.cardholderAttempt(s, cardholderReq{pan: testPAN, expiry: testExpiry, code: testCode}, func(a *protocol.Registration) {
				a.Session.LIDCA = []byte("not-the-CA-s")
			})
		}},
		{"merchant not enrolled", protocol.CodeNotEnrolled, func(r *rig) protocol.Message {
			id := protocol.Identity{ID: "M-9999", AcquirerBIN: "400000"}
			res, _ := r.registerMeAq(s, protocol.RoleMerchant, id, id, merchantCode, r.signingKey(s), nil)
			return res
		}},
		{"merchant enrolled with another acquirer", protocol.CodeNotEnrolled, func(r *rig) protocol.Message {
			id := protocol.Identity{ID: "M-0001", AcquirerBIN: "499999"}
			res, _ := r.registerMeAq(s, protocol.RoleMerchant, id, id, merchantCode, r.signingKey(s), nil)
			return res
		}},
		{"identity in the signed merchant request is not the applicant's", protocol.CodeIdentityMismatch, func(r *rig) protocol.Message {
			res, _ := r.registerMeAq(s, protocol.RoleMerchant, protocol.Identity{ID: "M-0001", AcquirerBIN: "400000"},
				protocol.Identity{ID: "M-0002", AcquirerBIN: "400000"}, merchantCode, r.signingKey(s), nil)
			return res
		}},
		{"merchant activation code wrong", protocol.CodeRegSecret, func(r *rig) protocol.Message {
			id := protocol.Identity{ID: "M-0001", AcquirerBIN: "400000"}
			res, _ := r.registerMeAq(s, protocol.RoleMerchant, id, id, "nope", r.signingKey(s), nil)
			return res
		}},
		{"gateway registering with the merchant activation code", protocol.CodeRegSecret, func(r *rig) protocol.Message {
			id := protocol.Identity{ID: "gateway-1"}
			res, _ := r.registerMeAq(s, protocol.RoleGateway, id, id, merchantCode, r.signingKey(s), nil)
			return res
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			before := r.issuedCount()
			r.wantError(tc.run(r), tc.code)
			if got := r.issuedCount(); got != before {
				t.Errorf("CA issued %d certificates on a refused registration", got-before)
			}
		})
	}
}

// cardholderAttempt runs a cardholder registration to its CertReq, with
// tamper applied to the applicant's state before the CertReq, and returns
// the CA's answer.
func (r *rig) cardholderAttempt(s protocol.Suite, c cardholderReq, tamper func(*protocol.Registration)) protocol.Message {
	r.t.Helper()
	a, res := r.cardholderForm(s, c.pan)
	form, ok := res.(*protocol.RegFormRes)
	if !ok {
		return res
	}
	if _, err := a.CheckRegFormRes(form); err != nil {
		r.t.Fatal(err)
	}
	if tamper != nil {
		tamper(a)
	}
	if c.key == nil {
		c.key = r.signingKey(s)
	}
	return r.send(r.cardholderCertReq(a, c))
}

func TestReplayedCertReq(t *testing.T) {
	r := newRig(t)
	s := protocol.SuitePQ
	a, res := r.cardholderForm(s, testPAN)
	if _, err := a.CheckRegFormRes(res.(*protocol.RegFormRes)); err != nil {
		t.Fatal(err)
	}
	req := r.cardholderCertReq(a, cardholderReq{pan: testPAN, expiry: testExpiry, code: testCode, key: r.signingKey(s)})
	if _, err := a.CheckCertRes(r.send(req)); err != nil {
		t.Fatal(err)
	}
	after := r.issuedCount()
	r.wantError(r.send(req), protocol.CodeReplay)
	if r.issuedCount() != after {
		t.Error("the replayed CertReq issued certificates")
	}
}

func TestKeyReused(t *testing.T) {
	r := newRig(t)
	s := protocol.SuiteNIST
	key := r.signingKey(s)
	r.registerCardholder(s, cardholderReq{pan: testPAN, expiry: testExpiry, code: testCode, key: key})
	before := r.issuedCount()
	r.wantError(r.cardholderAttempt(s, cardholderReq{pan: testPAN, expiry: testExpiry, code: testCode, key: key}, nil), protocol.CodeKeyReused)
	if r.issuedCount() != before {
		t.Error("a reused key was certified")
	}
}

func TestPendingThenInquiry(t *testing.T) {
	r := newRig(t)
	s := protocol.SuitePQ
	a, res := r.cardholderForm(s, reviewPAN)
	if _, err := a.CheckRegFormRes(res.(*protocol.RegFormRes)); err != nil {
		t.Fatal(err)
	}
	before := r.issuedCount()
	out, err := a.CheckCertRes(r.send(r.cardholderCertReq(a, cardholderReq{pan: reviewPAN, expiry: testExpiry, code: testCode, key: r.signingKey(s)})))
	if err != nil || out != nil {
		t.Fatalf("CertRes for an account under review: %v, %v; want pending", out, err)
	}
	inq, err := a.CertInqReq()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := a.CheckCertRes(r.send(inq)); err != nil || out != nil {
		t.Fatalf("inquiry while under review: %v, %v; want pending", out, err)
	}
	// A replayed inquiry would be answered under the same reply key.
	r.wantError(r.send(inq), protocol.CodeReplay)
	if r.issuedCount() != before {
		t.Fatal("certificates issued while pending")
	}
	if err := r.issuer.SetStatus(reviewPAN, "active"); err != nil {
		t.Fatal(err)
	}
	inq, err = a.CertInqReq()
	if err != nil {
		t.Fatal(err)
	}
	out, err = a.CheckCertRes(r.send(inq))
	if err != nil || out == nil {
		t.Fatalf("inquiry after approval: %v, %v; want the certificates", out, err)
	}
	// The request is answered: asking again finds nothing.
	inq, _ = a.CertInqReq()
	r.wantError(r.send(inq), protocol.CodeUnknownRequest)
}

func TestMerchantRenewalRevokesOld(t *testing.T) {
	r := newRig(t)
	s := protocol.SuitePQ
	id := protocol.Identity{ID: "M-0001", AcquirerBIN: "400000"}
	sig := r.signingKey(s)
	kePub, _ := r.kemKey(s)
	_, first := r.registerMeAq(s, protocol.RoleMerchant, id, id, merchantCode, sig, kePub)
	cur, err := protocol.NewSigningKey(sig, first.Signature)
	if err != nil {
		t.Fatal(err)
	}
	oldKE := protocol.ThumbprintOf(first.KeyExchange[0])

	// Renew the key-exchange certificate, signed by the current signature
	// certificate.
	a := r.applicant(protocol.RoleMerchant, s)
	req, _ := a.MeAqCInitReq(id, protocol.RequestRenewal, nil)
	init := r.send(req).(*protocol.MeAqCInitRes)
	if err := a.CheckMeAqCInitRes(init, nil); err != nil {
		t.Fatal(err)
	}
	newPub, _ := r.kemKey(s)
	cr, err := a.CertReq(protocol.CertReqParams{RequestType: protocol.RequestRenewal, Identity: &id, Current: cur,
		FormValues: []protocol.FormValue{{Name: ca.FieldActivationCode, Value: merchantCode}}, KeyExchangeKey: newPub, Renews: &oldKE})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.CheckCertRes(r.send(cr))
	if err != nil {
		t.Fatal(err)
	}
	tr := r.c.Trust()
	if _, err := tr.Verify(out.KeyExchange, protocol.ThumbprintOf(out.KeyExchange[0]), protocol.CertMerchantKeyExchange, s); err != nil {
		t.Errorf("renewed certificate: %v", err)
	}
	_, err = tr.Verify(first.KeyExchange, oldKE, protocol.CertMerchantKeyExchange, s)
	if !errors.Is(err, protocol.CodeCertRevoked) {
		t.Errorf("renewed-away certificate: %v, want revoked", err)
	}
}

// BenchmarkRegisterCardholder is the whole cardholder registration through
// the registration path, in process: CardCInitReq, RegFormReq and CertReq
// (new signature key, no TLS key) answered by Registrar.Handle, with the
// applicant's checks. One op is one certificate.
func BenchmarkRegisterCardholder(b *testing.B) {
	for _, s := range protocol.Suites {
		b.Run(s.String(), func(b *testing.B) {
			r := newRig(b)
			pan, _ := protocol.NewPAN(testPAN)
			b.ReportAllocs()
			for b.Loop() {
				a := r.applicant(protocol.RoleCardholder, s)
				req, _ := a.CardCInitReq(nil)
				if err := a.CheckCardCInitRes(r.send(req).(*protocol.CardCInitRes), nil); err != nil {
					b.Fatal(err)
				}
				rf, _ := a.RegFormReq(pan, protocol.RequestInitial)
				if _, err := a.CheckRegFormRes(r.send(rf).(*protocol.RegFormRes)); err != nil {
					b.Fatal(err)
				}
				acct := &protocol.AccountData{PAN: pan, CardExpiry: testExpiry}
				cr, err := a.CertReq(protocol.CertReqParams{RequestType: protocol.RequestInitial, Account: acct,
					FormValues: []protocol.FormValue{{Name: ca.FieldActivationCode, Value: testCode}}, SignatureKey: r.signingKey(s)})
				if err != nil {
					b.Fatal(err)
				}
				if out, err := a.CheckCertRes(r.send(cr)); err != nil || out == nil {
					b.Fatal(err)
				}
			}
		})
	}
}
