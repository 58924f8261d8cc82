package protocol_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
)

// This file runs whole registrations in memory, for both suites: a
// cardholder (CardCInitReq, RegFormReq, CertReq), a merchant and a gateway
// (Me-AqCInitReq, CertReq), a pending answer followed by CertInqReq, and a
// renewal signed by the current certificate. Then, like checks_test.go,
// every check of the applicant (Registration.Check*) and of the CA
// (CAKeys.NewCardCInitRes, CheckMeAqCInitReq, OpenRegFormReq, OpenCertReq,
// OpenCertInqReq, CertInquiry.Verify) has a case that breaks exactly that
// check and expects exactly its code.

// regSeed seeds the keys the registration tests ask to certify.
const regSeed = "registration tests"

// trustAt returns a new Trust anchored at p's root with the clock at Epoch
// (the cached p.Trust is shared by every test and must not change).
func trustAt(t testing.TB, p *testpki.PKI) *Trust {
	t.Helper()
	tr, err := NewTrust(p.Root.Cert)
	if err != nil {
		t.Fatal(err)
	}
	tr.Now = func() time.Time { return testpki.Epoch }
	return tr
}

// revokedSerials makes tr report the certificates with the given serial
// numbers as revoked.
func revokedSerials(tr *Trust, serials ...*big.Int) {
	tr.Revoked = func(c *x509.Certificate) bool {
		return slices.ContainsFunc(serials, func(n *big.Int) bool { return n.Cmp(c.SerialNumber) == 0 })
	}
}

func roleCA(p *testpki.PKI, r Role) *testpki.CA {
	switch r {
	case RoleCardholder:
		return p.CCA
	case RoleMerchant:
		return p.MCA
	}
	return p.PCA
}

// testCA is a role CA in memory: the stateless checks and replies of package
// protocol, and the records package ca keeps (the sessions it opened and
// which were used, the requests it left pending).
type testCA struct {
	t     testing.TB
	p     *testpki.PKI
	ca    *testpki.CA
	keys  *CAKeys
	trust *Trust
	rnd   io.Reader
	bci   *BCI
	form  RegForm

	sessions map[string]CASession // by LID-CA
	used     map[string]bool
	pending  map[RequestID]*CertRequest
	// pend answers the next CertReq with a pending status.
	pend     bool
	nonceCCA Secret

	// Hooks that make the CA answer wrongly, for the applicant's checks.
	issuer   *testpki.CA                          // issues the certificates (nil: ca)
	certOpts func(t CertType, o *testpki.Options) // edits each certificate before it is issued
	resEdit  func(d *CertResData)                 // edits each answer before it is signed
}

func newTestCA(t testing.TB, p *testpki.PKI, ca *testpki.CA) *testCA {
	c := &testCA{
		t: t, p: p, ca: ca, keys: p.RegistrationKeys(ca), trust: trustAt(t, p),
		rnd: rand.NewChaCha8([32]byte{byte(p.Suite), byte(ca.Type), 'C', 'A'}),
		form: RegForm{Policy: "Registration with TestBrand is subject to the issuer's terms.",
			Fields: []RegField{{Name: "activation-code", Label: "Activation code from your bank", Secret: true}}},
		sessions: map[string]CASession{}, used: map[string]bool{}, pending: map[RequestID]*CertRequest{},
	}
	copy(c.nonceCCA[:], testpki.Seed(regSeed, "NonceCCA", 32))
	return c
}

func (c *testCA) random(b []byte) {
	if _, err := io.ReadFull(c.rnd, b); err != nil {
		c.t.Fatal(err)
	}
}

// newSession opens a registration session: a fresh LID-CA and Chall-CA.
func (c *testCA) newSession(rt RequestType) CASession {
	s := CASession{LIDCA: make([]byte, 8), RequestType: rt, Form: c.form}
	c.random(s.LIDCA)
	c.random(s.ChallCA[:])
	c.sessions[string(s.LIDCA)] = s
	return s
}

// openCertReq opens a CertReq and checks what needs the CA's records: the
// session was opened by this CA, for this request type, and is not used yet.
func (c *testCA) openCertReq(req *CertReq) (*CertRequest, error) {
	cr, err := c.keys.OpenCertReq(c.trust, req)
	if err != nil {
		return nil, err
	}
	lid := string(cr.Data.LIDCA)
	s, ok := c.sessions[lid]
	switch {
	case !ok || s.ChallCA != cr.Data.ChallCA:
		return nil, &CheckError{Code: CodeChallCAMismatch, Detail: "no such session"}
	case c.used[lid]:
		return nil, &CheckError{Code: CodeReplay, Detail: "session already used"}
	case s.RequestType != cr.Data.RequestType:
		return nil, &CheckError{Code: CodeRequestType, Detail: "request type differs from the session's"}
	}
	c.used[lid] = true
	return cr, nil
}

// answer decides on cr: pending (once, if c.pend) or issued.
func (c *testCA) answer(cr *CertRequest) *CertRes {
	var d CertResData
	if c.pend {
		c.pend = false
		var id RequestID
		c.random(id[:])
		c.pending[id] = cr
		d = CertResData{Status: CertPending, RequestID: &id}
	} else {
		d = c.issue(cr)
	}
	if c.resEdit != nil {
		c.resEdit(&d)
	}
	res, err := c.keys.NewCertRes(cr, d, c.ca.Chain)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// answerInquiry answers an inquiry about a pending request: the inquiry must
// be signed by the key that signed the request.
func (c *testCA) answerInquiry(q *CertInquiry) (*CertInqRes, error) {
	cr, ok := c.pending[q.Data.RequestID]
	if !ok {
		return nil, &CheckError{Code: CodeUnknownRequest, Detail: "no such request"}
	}
	if err := q.Verify(c.keys.Suite(), cr.SignerKey); err != nil {
		return nil, err
	}
	d := c.issue(cr)
	if c.resEdit != nil {
		c.resEdit(&d)
	}
	res, err := c.keys.NewCertInqRes(q, d, c.ca.Chain)
	if err != nil {
		c.t.Fatal(err)
	}
	return res, nil
}

// issue certifies the keys of cr with the certificates of its role: the
// cardholder's carries the account hash under PANSecret = CardSecret XOR
// NonceCCA, the merchant's its merchant data, the gateway's its id as
// common name.
func (c *testCA) issue(cr *CertRequest) CertResData {
	d := CertResData{Status: CertIssued}
	issuer := c.issuer
	if issuer == nil {
		issuer = c.ca
	}
	s := c.keys.Suite()
	var sigExt, keExt []pkix.Extension
	name := "registered cardholder"
	switch cr.Data.Role {
	case RoleCardholder:
		a := cr.Data.Account
		nonce := c.nonceCCA
		d.NonceCCA = &nonce
		sigExt = []pkix.Extension{AccountHashExtension(AccountHash(s, a.PAN, a.CardExpiry, PANSecret(a.CardSecret, nonce)))}
	case RoleMerchant:
		id := cr.Data.Identity
		name = id.ID
		sigExt = []pkix.Extension{MerchantDataExtension(MerchantData{MerchantID: id.ID, Name: "Registered Shop", AcquirerBIN: id.AcquirerBIN})}
		keExt = sigExt
	case RoleGateway:
		name = cr.Data.Identity.ID
	}
	sigT, keT, tlsT := cr.Data.Role.CertTypes()
	add := func(t CertType, pub any, ext []pkix.Extension) {
		o := testpki.Options{Type: t, Name: name, Public: pub, Extensions: append(slices.Clone(ext), BrandExtension(testpki.TestBrand))}
		if c.certOpts != nil {
			c.certOpts(t, &o)
		}
		d.Issued = append(d.Issued, issuer.Issue(o))
	}
	if cr.SignatureKey != nil {
		add(sigT, cr.SignatureKey, sigExt)
	}
	if cr.KeyExchangeKey != nil {
		add(keT, cr.KeyExchangeKey, keExt)
	}
	if cr.TLSKey != nil {
		add(tlsT, cr.TLSKey, nil)
	}
	return d
}

// regFlow is one registration, step by step, like flow for a purchase: each
// step builds the next message, has the receiver process it and returns the
// receiver's error. Tests change the state between steps to break exactly
// one check.
type regFlow struct {
	t   testing.TB
	p   *testpki.PKI
	s   Suite
	rnd io.Reader
	ca  *testCA
	reg *Registration

	thumbs      []Thumbprint
	held        [][]byte
	identity    Identity
	requestType RequestType
	account     AccountData
	sigKey      crypto.Signer
	kePub       kem.PublicKey
	kePriv      kem.PrivateKey
	params      CertReqParams

	cardInitReq *CardCInitReq
	cardInitRes *CardCInitRes
	meInitReq   *MeAqCInitReq
	meInitRes   *MeAqCInitRes
	regFormReq  *RegFormReq
	regFormData *RegFormReqData
	regFormRes  *RegFormRes
	form        *RegForm
	certReq     *CertReq
	request     *CertRequest
	certRes     *CertRes
	inqReq      *CertInqReq
	inquiry     *CertInquiry
	inqRes      *CertInqRes
	issued      *Issued
}

func newRegFlow(t testing.TB, s Suite, role Role) *regFlow {
	p := pkiFor(s)
	f := &regFlow{t: t, p: p, s: s, rnd: rand.NewChaCha8([32]byte{byte(s), byte(role), 'E', 'E'}), requestType: RequestInitial}
	f.ca = newTestCA(t, p, roleCA(p, role))
	f.reg = &Registration{Role: role, Suite: s, Brand: testpki.TestBrand, Language: "en", Trust: trustAt(t, p),
		Rand: f.rnd, LIDEE: []byte("EE-" + role.String())}
	f.sigKey = testpki.SigningKey(s, regSeed, role.String())
	f.params = CertReqParams{RequestType: RequestInitial, SignatureKey: f.sigKey,
		FormValues: []FormValue{{Name: "activation-code", Value: "314159"}}}
	switch role {
	case RoleCardholder:
		pan, err := NewPAN(testpki.TestPAN)
		if err != nil {
			t.Fatal(err)
		}
		f.account = AccountData{PAN: pan, CardExpiry: testpki.TestCardExpiry}
		copy(f.account.CardSecret[:], testpki.Seed(regSeed, "CardSecret", 32))
		copy(f.account.EXNonce[:], testpki.Seed(regSeed, "EXNonce", 32))
		f.params.Account = &f.account
	case RoleMerchant:
		f.identity = Identity{ID: "M-0002", AcquirerBIN: "400000"}
	case RoleGateway:
		f.identity = Identity{ID: "gateway two"}
	}
	if role != RoleCardholder {
		f.kePub, f.kePriv = testpki.KEMKey(s, regSeed, role.String())
		f.params.Identity = &f.identity
		f.params.KeyExchangeKey = f.kePub
	}
	return f
}

func (f *regFlow) fatal(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("setup: %v", err)
	}
}

// do runs steps that must succeed.
func (f *regFlow) do(steps ...func() error) {
	f.t.Helper()
	mustSteps(f.t, steps...)
}

func (f *regFlow) other() *testpki.PKI { return otherSuitePKI(f.s) }

// ---- CardCInitReq / Me-AqCInitReq ----

func (f *regFlow) sendCardInit() {
	req, err := f.reg.CardCInitReq(f.thumbs)
	f.fatal(err)
	f.cardInitReq = wire(f.t, req)
}

// answerCardInit has the CA answer the CardCInitReq.
func (f *regFlow) answerCardInit() error {
	res, err := f.ca.keys.NewCardCInitRes(f.cardInitReq, f.ca.bci)
	f.cardInitRes = res
	return err
}

// answerCardInitTo has the CA answer a doctored copy of the request.
func (f *regFlow) answerCardInitTo(edit func(*CardCInitReq)) {
	req := *f.cardInitReq
	edit(&req)
	var err error
	f.cardInitRes, err = f.ca.keys.NewCardCInitRes(&req, f.ca.bci)
	f.fatal(err)
}

func (f *regFlow) checkCardInit() error {
	f.cardInitRes = wire(f.t, f.cardInitRes)
	return f.reg.CheckCardCInitRes(f.cardInitRes, f.held)
}

func (f *regFlow) cardInit() error {
	f.sendCardInit()
	if err := f.answerCardInit(); err != nil {
		return err
	}
	return f.checkCardInit()
}

// resignCardInit edits the CA's CardCInitRes and signs it again with key.
func (f *regFlow) resignCardInit(key *SigningKey, edit func(*CAInitData)) {
	edit(&f.cardInitRes.Data)
	f.cardInitRes.Signature = ForgeSign(key, LabelSigCardCInitRes, Encode(&f.cardInitRes.Data))
}

func (f *regFlow) sendMeInit() {
	req, err := f.reg.MeAqCInitReq(f.identity, f.requestType, f.thumbs)
	f.fatal(err)
	f.meInitReq = wire(f.t, req)
}

func (f *regFlow) answerMeInit() error {
	if err := f.ca.keys.CheckMeAqCInitReq(f.meInitReq); err != nil {
		return err
	}
	res, err := f.ca.keys.NewMeAqCInitRes(f.meInitReq, f.ca.newSession(f.meInitReq.RequestType), f.ca.bci)
	f.meInitRes = res
	return err
}

func (f *regFlow) checkMeInit() error {
	f.meInitRes = wire(f.t, f.meInitRes)
	return f.reg.CheckMeAqCInitRes(f.meInitRes, f.held)
}

func (f *regFlow) meInit() error {
	f.sendMeInit()
	if err := f.answerMeInit(); err != nil {
		return err
	}
	return f.checkMeInit()
}

func (f *regFlow) resignMeInit(key *SigningKey, label string, edit func(*CAInitData)) {
	edit(&f.meInitRes.Data)
	f.meInitRes.Signature = ForgeSign(key, label, Encode(&f.meInitRes.Data))
}

// ---- RegFormReq ----

func (f *regFlow) sendRegForm() {
	req, err := f.reg.RegFormReq(f.account.PAN, f.requestType)
	f.fatal(err)
	f.regFormReq = wire(f.t, req)
}

// caRegForm has the CA open the RegFormReq and answer with a session.
func (f *regFlow) caRegForm() error {
	d, err := f.ca.keys.OpenRegFormReq(f.regFormReq)
	if err != nil {
		return err
	}
	f.regFormData = d
	f.answerRegForm(f.ca.keys, d)
	return nil
}

func (f *regFlow) answerRegForm(keys *CAKeys, d *RegFormReqData) {
	var err error
	f.regFormRes, err = keys.NewRegFormRes(d, f.ca.newSession(d.RequestType), f.ca.bci)
	f.fatal(err)
}

func (f *regFlow) checkRegForm() error {
	f.regFormRes = wire(f.t, f.regFormRes)
	var err error
	f.form, err = f.reg.CheckRegFormRes(f.regFormRes)
	return err
}

func (f *regFlow) regForm() error {
	f.sendRegForm()
	if err := f.caRegForm(); err != nil {
		return err
	}
	return f.checkRegForm()
}

// open runs the steps before CertReq.
func (f *regFlow) open() error {
	if f.reg.Role != RoleCardholder {
		return f.meInit()
	}
	if err := f.cardInit(); err != nil {
		return err
	}
	return f.regForm()
}

// ---- CertReq / CertRes ----

func (f *regFlow) sendCertReq() {
	req, err := f.reg.CertReq(f.params)
	f.fatal(err)
	f.certReq = wire(f.t, req)
}

func (f *regFlow) openCertReq() error {
	var err error
	f.request, err = f.ca.openCertReq(f.certReq)
	return err
}

func (f *regFlow) certRequest() error {
	f.sendCertReq()
	return f.openCertReq()
}

func (f *regFlow) checkCertRes() error {
	f.certRes = wire(f.t, f.certRes)
	var err error
	f.issued, err = f.reg.CheckCertRes(f.certRes)
	return err
}

// answer has the CA answer the opened request and the applicant check it.
func (f *regFlow) answer() error {
	f.certRes = f.ca.answer(f.request)
	return f.checkCertRes()
}

func (f *regFlow) register() error {
	for _, st := range []func() error{f.open, f.certRequest, f.answer} {
		if err := st(); err != nil {
			return err
		}
	}
	return nil
}

// renewWith makes the flow a renewal signed by current (no new signature
// key) that names renews.
func (f *regFlow) renewWith(current *SigningKey, renews Thumbprint) {
	f.requestType = RequestRenewal
	f.params.RequestType = RequestRenewal
	f.params.SignatureKey = nil
	f.params.Current = current
	f.params.Renews = &renews
}

// renewTestPKIMerchant makes the flow a key-exchange renewal of the test
// PKI's merchant, signed by its signature certificate.
func (f *regFlow) renewTestPKIMerchant() {
	f.identity = Identity{ID: testpki.TestMerchantID, AcquirerBIN: "400000"}
	f.renewWith(f.p.Merchant.Sig, f.p.Merchant.KE.Cert.Thumb)
}

// forgeCertReq opens the CertReq as the CA would, lets edit change the signed
// request, signs its data again with key (nil: keeps the signature) and seals
// it to the CA: what an applicant building its request by hand sends.
func (f *regFlow) forgeCertReq(key crypto.Signer, edit func(*CertReqSigned)) {
	pt, err := OpenEnvelope(f.ca.keys.KE, &f.certReq.Envelope, LabelSealCertReq, nil)
	f.fatal(err)
	s, err := Decode[CertReqSigned](pt)
	f.fatal(err)
	edit(s)
	if key != nil {
		s.Signature.Value = rawSign(f.s, key, LabelSigCertReq, Encode(&s.Data))
	}
	f.certReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealCertReq, Encode(s), nil)
}

// forgeCertRes opens the CA's CertRes, lets edit change it, signs its data
// again with key (nil: keeps the signature) and encrypts it again for the
// applicant.
func (f *regFlow) forgeCertRes(key *SigningKey, edit func(*CertResSigned)) {
	pt, err := OpenCertResponse(f.s, f.request, &f.certRes.SealedResponse)
	f.fatal(err)
	s, err := Decode[CertResSigned](pt)
	f.fatal(err)
	edit(s)
	if key != nil {
		s.Signature = ForgeSign(key, LabelSigCertRes, Encode(&s.Data))
	}
	f.certRes = ForgeCertRes(f.s, f.request, Encode(s))
}

// ---- CertInqReq / CertInqRes ----

func (f *regFlow) sendInquiry() {
	req, err := f.reg.CertInqReq()
	f.fatal(err)
	f.inqReq = wire(f.t, req)
}

// caInquiry has the CA open the inquiry, check its signature and answer.
func (f *regFlow) caInquiry() error {
	q, err := f.ca.keys.OpenCertInqReq(f.inqReq)
	if err != nil {
		return err
	}
	f.inquiry = q
	f.inqRes, err = f.ca.answerInquiry(q)
	return err
}

func (f *regFlow) checkInqRes() error {
	f.inqRes = wire(f.t, f.inqRes)
	var err error
	f.issued, err = f.reg.CheckCertRes(f.inqRes)
	return err
}

func (f *regFlow) inquire() error {
	f.sendInquiry()
	if err := f.caInquiry(); err != nil {
		return err
	}
	return f.checkInqRes()
}

// pendingRequest runs a registration up to a pending CertRes.
func (f *regFlow) pendingRequest() {
	f.t.Helper()
	f.ca.pend = true
	f.do(f.open, f.certRequest, f.answer)
	if f.issued != nil {
		f.t.Fatal("a pending CertRes returned certificates")
	}
}

// forgeInquiry opens the CertInqReq as the CA would, lets edit change it,
// signs its data again with key (nil: keeps the signature) and seals it.
func (f *regFlow) forgeInquiry(key crypto.Signer, edit func(*CertInqSigned)) {
	pt, err := OpenEnvelope(f.ca.keys.KE, &f.inqReq.Envelope, LabelSealCertInqReq, nil)
	f.fatal(err)
	s, err := Decode[CertInqSigned](pt)
	f.fatal(err)
	edit(s)
	if key != nil {
		s.Signature.Value = rawSign(f.s, key, LabelSigCertInqReq, Encode(&s.Data))
	}
	f.inqReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealCertInqReq, Encode(s), nil)
}

func spkiOf(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nonCanonical returns der (a SEQUENCE shorter than 128 bytes of content or
// not) with a NULL appended inside it: a BER-valid encoding x509 still
// parses, but not the canonical one.
func nonCanonical(t testing.TB, der []byte) []byte {
	t.Helper()
	ns := parseDER(t, der, func([]byte) bool { return true })
	if len(ns) != 1 || !ns[0].leaf {
		t.Fatal("not one element")
	}
	body := append(slices.Clip(ns[0].content), 0x05, 0x00)
	return append(appendLength([]byte{der[0]}, len(body), false), body...)
}

// ---- whole registrations ----

func TestRegistration(t *testing.T) {
	for _, s := range Suites {
		t.Run(s.String()+"/cardholder", func(t *testing.T) {
			f := newRegFlow(t, s, RoleCardholder)
			f.do(f.register)
			if f.form == nil || len(f.form.Fields) != 1 || f.form.Fields[0].Name != "activation-code" {
				t.Fatalf("form %+v", f.form)
			}
			want := PANSecret(f.account.CardSecret, f.ca.nonceCCA)
			if f.issued.PANSecret != want {
				t.Fatal("PANSecret is not CardSecret XOR NonceCCA")
			}
			if f.issued.KeyExchange != nil || f.issued.TLS != nil || len(f.issued.Signature) != 3 {
				t.Fatalf("issued %d/%d/%d certificates", len(f.issued.Signature), len(f.issued.KeyExchange), len(f.issued.TLS))
			}
			key, err := NewSigningKey(f.sigKey, f.issued.Signature)
			if err != nil {
				t.Fatal(err)
			}
			// The new cardholder pays with the certificate and PANSecret.
			pf := newFlow(t, s)
			pf.cardholder = key
			pf.card = Card{PAN: f.account.PAN, CardExpiry: f.account.CardExpiry, CardSecret: f.account.CardSecret, PANSecret: f.issued.PANSecret}
			pf.must(pf.pinit, pf.purchase, pf.authorize, pf.respond)
		})
		t.Run(s.String()+"/cardholder with a TLS key", func(t *testing.T) {
			f := newRegFlow(t, s, RoleCardholder)
			tlsKey := testpki.SigningKey(SuiteNIST, regSeed, "cardholder TLS")
			f.params.TLSKey = tlsKey.Public()
			f.do(f.register)
			if len(f.issued.Signature) == 0 || len(f.issued.TLS) != 3 {
				t.Fatalf("issued %d signature and %d TLS certificates", len(f.issued.Signature), len(f.issued.TLS))
			}
			c, err := trustAt(t, f.p).Verify(f.issued.TLS, ThumbprintOf(f.issued.TLS[0]), CertCardholderTLS, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !c.X509.PublicKey.(*ecdsa.PublicKey).Equal(tlsKey.Public()) {
				t.Fatal("TLS certificate of another key")
			}
		})
		for _, role := range []Role{RoleMerchant, RoleGateway} {
			t.Run(s.String()+"/"+role.String(), func(t *testing.T) {
				f := newRegFlow(t, s, role)
				f.do(f.register)
				sig, err := NewSigningKey(f.sigKey, f.issued.Signature)
				if err != nil {
					t.Fatal(err)
				}
				ke, err := NewKeyExchangeKey(f.kePriv, f.issued.KeyExchange)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(sig.Cert.X509.RawSubject, ke.Cert.X509.RawSubject) {
					t.Fatal("signature and key-exchange certificates name different holders")
				}
				if role == RoleMerchant && (sig.Cert.MerchantID() != f.identity.ID || ke.Cert.Merchant.AcquirerBIN != f.identity.AcquirerBIN) {
					t.Fatal("merchant certificates without the merchant's identity")
				}
				sigT, keT, _ := role.CertTypes()
				if sig.Cert.Type != sigT || ke.Cert.Type != keT || f.issued.TLS != nil {
					t.Fatalf("issued %s and %s", sig.Cert.Type, ke.Cert.Type)
				}
			})
		}
		t.Run(s.String()+"/pending, then CertInqReq", func(t *testing.T) {
			f := newRegFlow(t, s, RoleCardholder)
			f.pendingRequest()
			f.do(f.inquire)
			if f.issued == nil || f.issued.PANSecret != PANSecret(f.account.CardSecret, f.ca.nonceCCA) {
				t.Fatal("CertInqRes did not deliver the certificate and PANSecret")
			}
			if _, err := NewSigningKey(f.sigKey, f.issued.Signature); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(s.String()+"/merchant key-exchange renewal signed by the current certificate", func(t *testing.T) {
			f := newRegFlow(t, s, RoleMerchant)
			f.do(f.register)
			current, err := NewSigningKey(f.sigKey, f.issued.Signature)
			if err != nil {
				t.Fatal(err)
			}
			g := newRegFlow(t, s, RoleMerchant)
			g.ca, g.identity = f.ca, f.identity
			g.renewWith(current, ThumbprintOf(f.issued.KeyExchange[0]))
			g.kePub, g.kePriv = testpki.KEMKey(s, regSeed, "merchant renewed")
			g.params.KeyExchangeKey = g.kePub
			// A pending answer too: the inquiry is signed by the current key.
			g.ca.pend = true
			g.do(g.open, g.certRequest, g.answer)
			if g.request.Current == nil || g.request.Current.Thumb != current.Cert.Thumb || *g.request.Data.Renews != ThumbprintOf(f.issued.KeyExchange[0]) {
				t.Fatal("the CA does not see the renewal's signer and target")
			}
			g.do(g.inquire)
			if g.issued.Signature != nil || len(g.issued.KeyExchange) != 3 {
				t.Fatalf("a key-exchange renewal issued %d signature certificates", len(g.issued.Signature))
			}
			ke, err := NewKeyExchangeKey(g.kePriv, g.issued.KeyExchange)
			if err != nil {
				t.Fatal(err)
			}
			if ke.Cert.MerchantID() != f.identity.ID {
				t.Fatal("renewed certificate of another merchant")
			}
		})
		t.Run(s.String()+"/certificates the cardholder holds are not sent", func(t *testing.T) {
			f := newRegFlow(t, s, RoleCardholder)
			k := f.ca.keys
			f.held = slices.Concat(k.Sig.Chain, k.KE.Chain[:1])
			for _, c := range f.held {
				f.thumbs = append(f.thumbs, ThumbprintOf(c))
			}
			f.do(f.register)
			if len(f.cardInitRes.Certificates) != 0 {
				t.Fatalf("CardCInitRes carries %d certificates the cardholder holds", len(f.cardInitRes.Certificates))
			}
		})
		t.Run(s.String()+"/the CA's BCI reaches the applicant", func(t *testing.T) {
			f := newRegFlow(t, s, RoleCardholder)
			f.ca.bci = f.p.BCI(1, f.p.CRL(f.p.CCA, 1))
			f.do(f.register)
			if f.reg.BCI == nil || f.reg.BCI.Data.Number != 1 {
				t.Fatal("the applicant did not keep the BCI")
			}
		})
	}
}

// TestTestCAKeepsRecords checks the records of the in-test CA processor.
func TestTestCAKeepsRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Code
		run  func(f *regFlow) error
	}{
		{"a Chall-CA the CA never issued", CodeChallCAMismatch, func(f *regFlow) error {
			f.do(f.open)
			f.reg.Session.ChallCA[0] ^= 1
			return f.certRequest()
		}},
		{"a replayed CertReq", CodeReplay, func(f *regFlow) error {
			f.do(f.open, f.certRequest)
			return f.openCertReq()
		}},
		{"an inquiry about an unknown request", CodeUnknownRequest, func(f *regFlow) error {
			f.pendingRequest()
			clear(f.ca.pending)
			f.sendInquiry()
			return f.caInquiry()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRegFlow(t, SuitePQ, RoleCardholder)
			if got := CodeOf(tc.run(f)); got != tc.want {
				t.Fatalf("got code %d, want %d", got, tc.want)
			}
		})
	}
}

// ---- the checks ----

type regCase struct {
	name string
	role Role
	want Code
	run  func(f *regFlow) error
}

// regCaseTables are every table of registration checks, in protocol order.
var regCaseTables = [][]regCase{applicantStateCases, caInitChecksCases, applicantInitChecksCases, regFormChecksCases,
	caCertReqChecksCases, applicantCertResChecksCases, inquiryChecksCases}

func runRegChecks(t *testing.T, cases []regCase) {
	t.Helper()
	for _, s := range Suites {
		for _, c := range cases {
			t.Run(s.String()+"/"+c.role.String()+"/"+c.name, func(t *testing.T) {
				f := newRegFlow(t, s, c.role)
				err := c.run(f)
				if got := CodeOf(err); got != c.want {
					t.Fatalf("got %v (code %d), want code %d (%v)", err, got, c.want, c.want)
				}
			})
		}
	}
}

// TestRegistrationCaseNamesAreUnique keeps the subtest names apart.
func TestRegistrationCaseNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, table := range regCaseTables {
		for _, c := range table {
			k := c.role.String() + "/" + c.name
			if seen[k] {
				t.Errorf("duplicate case %q", k)
			}
			seen[k] = true
		}
	}
}

var applicantStateCases = []regCase{
	{"a CardCInitReq from a merchant", RoleMerchant, CodeRequestType, func(f *regFlow) error {
		_, err := f.reg.CardCInitReq(nil)
		return err
	}},
	{"a Me-AqCInitReq from a cardholder", RoleCardholder, CodeRequestType, func(f *regFlow) error {
		_, err := f.reg.MeAqCInitReq(Identity{ID: "x"}, RequestInitial, nil)
		return err
	}},
	{"a RegFormReq before a checked CardCInitRes", RoleCardholder, CodeUnexpectedMessage, func(f *regFlow) error {
		_, err := f.reg.RegFormReq(f.account.PAN, RequestInitial)
		return err
	}},
	{"a CertReq before the CA opened a session", RoleCardholder, CodeUnexpectedMessage, func(f *regFlow) error {
		f.do(f.cardInit)
		_, err := f.reg.CertReq(f.params)
		return err
	}},
	{"a CertReq neither signed by a new key nor by a current certificate", RoleMerchant, CodeRequestType, func(f *regFlow) error {
		f.do(f.open)
		f.params.SignatureKey = nil
		_, err := f.reg.CertReq(f.params)
		return err
	}},
	{"a CertInqReq without a pending request", RoleCardholder, CodeUnexpectedMessage, func(f *regFlow) error {
		f.do(f.register)
		_, err := f.reg.CertInqReq()
		return err
	}},
	{"a RegFormRes before a checked CardCInitRes", RoleCardholder, CodeUnexpectedMessage, func(f *regFlow) error {
		f.do(f.cardInit, f.regForm)
		g := newRegFlow(f.t, f.s, RoleCardholder)
		_, err := g.reg.CheckRegFormRes(f.regFormRes)
		return err
	}},
}

func TestApplicantState(t *testing.T) { runRegChecks(t, applicantStateCases) }

var caInitChecksCases = []regCase{
	{"a CardCInitReq for the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
		f.reg.Suite = f.other().Suite
		return f.cardInit()
	}},
	{"a CardCInitReq of an unknown suite", RoleCardholder, CodeUnknownSuite, func(f *regFlow) error {
		f.reg.Suite = 99
		return f.cardInit()
	}},
	{"a CardCInitReq sent to the merchant CA", RoleCardholder, CodeRequestType, func(f *regFlow) error {
		f.ca = newTestCA(f.t, f.p, f.p.MCA)
		return f.cardInit()
	}},
	{"a Me-AqCInitReq for the other suite", RoleMerchant, CodeSuiteMismatch, func(f *regFlow) error {
		f.reg.Suite = f.other().Suite
		return f.meInit()
	}},
	{"a Me-AqCInitReq of an unknown suite", RoleMerchant, CodeUnknownSuite, func(f *regFlow) error {
		f.reg.Suite = 99
		return f.meInit()
	}},
	{"a merchant Me-AqCInitReq sent to the gateway CA", RoleMerchant, CodeRequestType, func(f *regFlow) error {
		f.ca = newTestCA(f.t, f.p, f.p.PCA)
		return f.meInit()
	}},
	{"a gateway Me-AqCInitReq sent to the merchant CA", RoleGateway, CodeRequestType, func(f *regFlow) error {
		f.ca = newTestCA(f.t, f.p, f.p.MCA)
		return f.meInit()
	}},
	{"a merchant identity without acquirer BIN", RoleMerchant, CodeMalformed, func(f *regFlow) error {
		f.identity.AcquirerBIN = ""
		return f.meInit()
	}},
	{"a gateway identity with an acquirer BIN", RoleGateway, CodeMalformed, func(f *regFlow) error {
		f.identity.AcquirerBIN = "400000"
		return f.meInit()
	}},
}

func TestCAChecksInitReq(t *testing.T) { runRegChecks(t, caInitChecksCases) }

var applicantInitChecksCases = func() []regCase {
	// card runs CardCInitReq and the CA's answer, lets edit doctor the
	// answer and runs the cardholder's check.
	card := func(f *regFlow, edit func()) error {
		f.sendCardInit()
		f.do(f.answerCardInit)
		edit()
		return f.checkCardInit()
	}
	me := func(f *regFlow, edit func()) error {
		f.sendMeInit()
		f.do(f.answerMeInit)
		edit()
		return f.checkMeInit()
	}
	// caKE issues a key-exchange certificate of the CA's registration
	// subject under ca, and has the CA name it in its (re-signed) reply.
	caKE := func(f *regFlow, ca *testpki.CA, o testpki.Options) error {
		k := f.ca.keys
		o.Type, o.Name = CertCardholderCAKeyExchange, k.KE.Cert.X509.Subject.CommonName
		o.Extensions = []pkix.Extension{BrandExtension(testpki.TestBrand)}
		if o.Public == nil {
			o.Public, _ = testpki.KEMKey(f.s, f.p.Seed(), o.Name)
		}
		der := ca.Issue(o)
		return card(f, func() {
			f.cardInitRes.Certificates = append(f.cardInitRes.Certificates, der, f.p.MCA.Cert)
			f.resignCardInit(k.Sig, func(d *CAInitData) { d.CAEThumb = ThumbprintOf(der) })
		})
	}
	return []regCase{
		{"a changed CAInitData breaks the CA signature", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return card(f, func() { f.cardInitRes.Data.LIDEE = []byte("someone else") })
		}},
		{"a CardCInitRes signed by a merchant certificate", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			return card(f, func() {
				f.resignCardInit(f.p.Merchant.Sig, func(*CAInitData) {})
				f.cardInitRes.Certificates = append(f.cardInitRes.Certificates, f.p.Merchant.Sig.Chain...)
			})
		}},
		{"a CardCInitRes signed by the merchant CA's registration certificate", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			mk := f.p.RegistrationKeys(f.p.MCA)
			return card(f, func() {
				f.resignCardInit(mk.Sig, func(*CAInitData) {})
				f.cardInitRes.Certificates = append(f.cardInitRes.Certificates, mk.Sig.Chain...)
			})
		}},
		{"a CardCInitRes naming the CA's key-exchange certificate as signer", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			return card(f, func() { f.cardInitRes.Signature.Signer = f.ca.keys.KE.Cert.Thumb })
		}},
		{"a CardCInitRes signed with the cardholder CA's certificate-signing key", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			return card(f, func() {
				f.cardInitRes.Signature = Signature{Suite: f.s, Signer: ThumbprintOf(f.p.CCA.Cert),
					Value: rawSign(f.s, f.p.CCA.Key, LabelSigCardCInitRes, Encode(&f.cardInitRes.Data))}
			})
		}},
		{"a CA signature claiming the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return card(f, func() { f.cardInitRes.Signature.Suite = f.other().Suite })
		}},
		{"a CA signature of an unknown suite", RoleCardholder, CodeUnknownSuite, func(f *regFlow) error {
			return card(f, func() { f.cardInitRes.Signature.Suite = 99 })
		}},
		{"a CA signature certificate that is not sent", RoleCardholder, CodeCertMissing, func(f *regFlow) error {
			return card(f, func() {
				f.cardInitRes.Certificates = slices.DeleteFunc(f.cardInitRes.Certificates, func(c []byte) bool {
					return ThumbprintOf(c) == f.ca.keys.Sig.Cert.Thumb
				})
			})
		}},
		{"thumbprints of certificates the cardholder does not hold", RoleCardholder, CodeCertMissing, func(f *regFlow) error {
			f.thumbs = []Thumbprint{f.ca.keys.Sig.Cert.Thumb}
			return f.cardInit()
		}},
		{"an expired CA registration certificate", RoleCardholder, CodeCertExpired, func(f *regFlow) error {
			name := f.ca.keys.Sig.Cert.X509.Subject.CommonName
			key := testpki.SigningKey(f.s, f.p.Seed(), name)
			der := f.p.CCA.Issue(testpki.Options{Type: CertCardholderCASignature, Name: name, Public: key,
				NotAfter: testpki.Epoch.Add(-time.Minute), Extensions: []pkix.Extension{BrandExtension(testpki.TestBrand)}})
			sig, err := NewSigningKey(key, append([][]byte{der}, f.p.CCA.Chain...))
			f.fatal(err)
			f.ca.keys = &CAKeys{Sig: sig, KE: f.ca.keys.KE}
			return f.cardInit()
		}},
		{"a revoked CA registration certificate", RoleCardholder, CodeCertRevoked, func(f *regFlow) error {
			revokedSerials(f.reg.Trust, f.ca.keys.Sig.Cert.X509.SerialNumber)
			return f.cardInit()
		}},
		{"RRPID not echoed", RoleCardholder, CodeRRPIDMismatch, func(f *regFlow) error {
			f.sendCardInit()
			f.answerCardInitTo(func(r *CardCInitReq) { r.RRPID[0] ^= 1 })
			return f.checkCardInit()
		}},
		{"LID-EE not echoed", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			f.sendCardInit()
			f.answerCardInitTo(func(r *CardCInitReq) { r.LIDEE = []byte("EE-someone") })
			return f.checkCardInit()
		}},
		{"Chall-EE not echoed", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			f.sendCardInit()
			f.answerCardInitTo(func(r *CardCInitReq) { r.ChallEE[0] ^= 1 })
			return f.checkCardInit()
		}},
		{"a CAInitData for the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return card(f, func() { f.resignCardInit(f.ca.keys.Sig, func(d *CAInitData) { d.Suite = f.other().Suite }) })
		}},
		{"a CardCInitRes that opens a session", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			return card(f, func() {
				s := f.ca.newSession(RequestInitial)
				f.resignCardInit(f.ca.keys.Sig, func(d *CAInitData) { d.Session = &s })
			})
		}},
		{"caeThumb naming a certificate that is not sent", RoleCardholder, CodeCertMissing, func(f *regFlow) error {
			return card(f, func() { f.resignCardInit(f.ca.keys.Sig, func(d *CAInitData) { d.CAEThumb[0] ^= 1 }) })
		}},
		{"caeThumb naming the CA's signature certificate", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			return card(f, func() {
				f.resignCardInit(f.ca.keys.Sig, func(d *CAInitData) { d.CAEThumb = f.ca.keys.Sig.Cert.Thumb })
			})
		}},
		{"a key-exchange certificate of another holder of the same CA", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			other := f.p.RegistrationKeysNamed(f.p.CCA, "another registration holder")
			return card(f, func() {
				f.cardInitRes.Certificates = append(f.cardInitRes.Certificates, other.KE.Chain[0])
				f.resignCardInit(f.ca.keys.Sig, func(d *CAInitData) { d.CAEThumb = other.KE.Cert.Thumb })
			})
		}},
		{"a key-exchange certificate of the other suite", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			pub, _ := testpki.KEMKey(f.other().Suite, regSeed, "other suite CA")
			return caKE(f, f.p.CCA, testpki.Options{Public: pub})
		}},
		{"a key-exchange certificate issued by the merchant CA", RoleCardholder, CodeCertChain, func(f *regFlow) error {
			return caKE(f, f.p.MCA, testpki.Options{})
		}},
		{"an expired CA key-exchange certificate", RoleCardholder, CodeCertExpired, func(f *regFlow) error {
			return caKE(f, f.p.CCA, testpki.Options{NotAfter: testpki.Epoch.Add(-time.Minute)})
		}},
		{"a Me-AqCInitRes that opens no session", RoleMerchant, CodeMalformed, func(f *regFlow) error {
			return me(f, func() {
				f.resignMeInit(f.ca.keys.Sig, LabelSigMeAqCInitRes, func(d *CAInitData) { d.Session = nil })
			})
		}},
		{"a CardCInitRes signature on a Me-AqCInitRes", RoleMerchant, CodeSignature, func(f *regFlow) error {
			return me(f, func() { f.resignMeInit(f.ca.keys.Sig, LabelSigCardCInitRes, func(*CAInitData) {}) })
		}},
		{"a Me-AqCInitRes signed by the cardholder CA's registration certificate", RoleMerchant, CodeCertRole, func(f *regFlow) error {
			ck := f.p.RegistrationKeys(f.p.CCA)
			return me(f, func() {
				f.resignMeInit(ck.Sig, LabelSigMeAqCInitRes, func(*CAInitData) {})
				f.meInitRes.Certificates = append(f.meInitRes.Certificates, ck.Sig.Chain...)
			})
		}},
		{"Chall-EE not echoed in Me-AqCInitRes", RoleMerchant, CodeChallEEMismatch, func(f *regFlow) error {
			return me(f, func() { f.resignMeInit(f.ca.keys.Sig, LabelSigMeAqCInitRes, func(d *CAInitData) { d.ChallEE[0] ^= 1 }) })
		}},
		{"RRPID not echoed in Me-AqCInitRes", RoleGateway, CodeRRPIDMismatch, func(f *regFlow) error {
			return me(f, func() { f.resignMeInit(f.ca.keys.Sig, LabelSigMeAqCInitRes, func(d *CAInitData) { d.RRPID[0] ^= 1 }) })
		}},
	}
}()

func TestApplicantChecksInitRes(t *testing.T) { runRegChecks(t, applicantInitChecksCases) }

var regFormChecksCases = func() []regCase {
	// toCA runs CardCInitReq/Res, lets edit doctor the RegFormReq and has
	// the CA open it.
	toCA := func(f *regFlow, edit func()) error {
		f.do(f.cardInit)
		f.sendRegForm()
		edit()
		return f.caRegForm()
	}
	// toCardholder runs the exchange up to the CA's RegFormRes, lets edit
	// doctor it and runs the cardholder's check.
	toCardholder := func(f *regFlow, edit func()) error {
		f.do(f.cardInit)
		f.sendRegForm()
		f.do(f.caRegForm)
		edit()
		return f.checkRegForm()
	}
	answerTo := func(f *regFlow, edit func(*RegFormReqData)) {
		d := *f.regFormData
		edit(&d)
		f.answerRegForm(f.ca.keys, &d)
	}
	return []regCase{
		{"a RegFormReq sealed under the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return toCA(f, func() { f.regFormReq.Suite = f.other().Suite })
		}},
		{"a RegFormReq sealed under an unknown suite", RoleCardholder, CodeUnknownSuite, func(f *regFlow) error {
			return toCA(f, func() { f.regFormReq.Suite = 99 })
		}},
		{"a RegFormReq sealed to another recipient", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toCA(f, func() { f.regFormReq.Recipient[0] ^= 1 })
		}},
		{"a changed RegFormReq ciphertext", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toCA(f, func() { f.regFormReq.Ciphertext[0] ^= 1 })
		}},
		{"a RegFormReq holding something else than RegFormReqData", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			return toCA(f, func() {
				f.regFormReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealRegFormReq, Encode(f.cardInitReq), nil)
			})
		}},
		{"a RegFormReq with a card number failing the Luhn check", RoleCardholder, CodeCardData, func(f *regFlow) error {
			return toCA(f, func() {
				pt, err := OpenEnvelope(f.ca.keys.KE, &f.regFormReq.Envelope, LabelSealRegFormReq, nil)
				f.fatal(err)
				d, err := Decode[RegFormReqData](pt)
				f.fatal(err)
				d.PAN = ForgePAN("4111111111111112")
				f.regFormReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealRegFormReq, Encode(d), nil)
			})
		}},
		{"a changed RegFormResData breaks the CA signature", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCardholder(f, func() { f.regFormRes.Data.Session.ChallCA[0] ^= 1 })
		}},
		{"a RegFormRes signed by another registration certificate of the CA", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			other := f.p.RegistrationKeysNamed(f.p.CCA, "another registration holder")
			return toCardholder(f, func() { f.answerRegForm(other, f.regFormData) })
		}},
		{"a RegFormRes signature claiming the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return toCardholder(f, func() { f.regFormRes.Signature.Suite = f.other().Suite })
		}},
		{"RRPID not echoed in RegFormRes", RoleCardholder, CodeRRPIDMismatch, func(f *regFlow) error {
			return toCardholder(f, func() { answerTo(f, func(d *RegFormReqData) { d.RRPID[0] ^= 1 }) })
		}},
		{"LID-EE not echoed in RegFormRes", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			return toCardholder(f, func() { answerTo(f, func(d *RegFormReqData) { d.LIDEE = []byte("EE-someone") }) })
		}},
		{"Chall-EE2 not echoed", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			return toCardholder(f, func() { answerTo(f, func(d *RegFormReqData) { d.ChallEE2[0] ^= 1 }) })
		}},
	}
}()

func TestRegFormChecks(t *testing.T) { runRegChecks(t, regFormChecksCases) }

var caCertReqChecksCases = func() []regCase {
	// toCA runs the registration up to the CertReq, lets edit doctor it and
	// has the CA open it.
	toCA := func(f *regFlow, edit func()) error {
		f.do(f.open)
		f.sendCertReq()
		edit()
		return f.openCertReq()
	}
	other := func(f *regFlow) crypto.Signer { return testpki.SigningKey(f.s, regSeed, "someone else") }
	return []regCase{
		{"a CertReq sealed under the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return toCA(f, func() { f.certReq.Suite = f.other().Suite })
		}},
		{"a CertReq sealed under an unknown suite", RoleCardholder, CodeUnknownSuite, func(f *regFlow) error {
			return toCA(f, func() { f.certReq.Suite = 99 })
		}},
		{"a CertReq sealed to another recipient", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toCA(f, func() { f.certReq.Recipient[0] ^= 1 })
		}},
		{"a changed CertReq ciphertext", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toCA(f, func() { f.certReq.Ciphertext[0] ^= 1 })
		}},
		{"a CertReq holding something else than CertReqSigned", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			return toCA(f, func() {
				pt, err := OpenEnvelope(f.ca.keys.KE, &f.certReq.Envelope, LabelSealCertReq, nil)
				f.fatal(err)
				s, err := Decode[CertReqSigned](pt)
				f.fatal(err)
				f.certReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealCertReq, Encode(&s.Data), nil)
			})
		}},
		{"a merchant CertReq sent to the cardholder CA", RoleMerchant, CodeRequestType, func(f *regFlow) error {
			return toCA(f, func() {
				pt, err := OpenEnvelope(f.ca.keys.KE, &f.certReq.Envelope, LabelSealCertReq, nil)
				f.fatal(err)
				f.ca = newTestCA(f.t, f.p, f.p.CCA)
				f.certReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealCertReq, pt, nil)
			})
		}},
		{"a cardholder CertReq without card data", RoleCardholder, CodeRequestType, func(f *regFlow) error {
			f.params.Account = nil
			return toCA(f, func() {})
		}},
		{"a cardholder CertReq with a key-exchange key", RoleCardholder, CodeRequestType, func(f *regFlow) error {
			f.params.KeyExchangeKey, _ = testpki.KEMKey(f.s, regSeed, "cardholder")
			return toCA(f, func() {})
		}},
		{"a cardholder CertReq with an identity", RoleCardholder, CodeRequestType, func(f *regFlow) error {
			f.params.Identity = &Identity{ID: "M-0001", AcquirerBIN: "400000"}
			return toCA(f, func() {})
		}},
		{"a merchant CertReq without identity", RoleMerchant, CodeRequestType, func(f *regFlow) error {
			f.params.Identity = nil
			return toCA(f, func() {})
		}},
		{"a merchant CertReq with card data", RoleMerchant, CodeRequestType, func(f *regFlow) error {
			pan, _ := NewPAN(testpki.TestPAN)
			f.params.Account = &AccountData{PAN: pan, CardExpiry: testpki.TestCardExpiry}
			return toCA(f, func() {})
		}},
		{"a gateway CertReq without identity", RoleGateway, CodeRequestType, func(f *regFlow) error {
			f.params.Identity = nil
			return toCA(f, func() {})
		}},
		{"a merchant CertReq whose identity has no acquirer BIN", RoleMerchant, CodeMalformed, func(f *regFlow) error {
			f.do(f.open)
			f.identity.AcquirerBIN = ""
			f.sendCertReq()
			return f.openCertReq()
		}},
		{"a gateway CertReq whose identity has an acquirer BIN", RoleGateway, CodeMalformed, func(f *regFlow) error {
			f.do(f.open)
			f.identity.AcquirerBIN = "400000"
			f.sendCertReq()
			return f.openCertReq()
		}},
		{"a CertReq that asks to certify no key", RoleMerchant, CodeRequestType, func(f *regFlow) error {
			f.identity = Identity{ID: testpki.TestMerchantID, AcquirerBIN: "400000"}
			f.params.SignatureKey, f.params.KeyExchangeKey, f.params.Current = nil, nil, f.p.Merchant.Sig
			return toCA(f, func() {})
		}},
		{"a renewal that does not name the certificate it renews", RoleMerchant, CodeRequestType, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			f.params.Renews = nil
			return toCA(f, func() {})
		}},
		{"an initial request that names a certificate to renew", RoleMerchant, CodeRequestType, func(f *regFlow) error {
			th := f.p.Merchant.KE.Cert.Thumb
			f.params.Renews = &th
			return toCA(f, func() {})
		}},
		{"a signature key of the other suite", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			key := testpki.SigningKey(f.other().Suite, regSeed, "cardholder")
			return toCA(f, func() {
				f.forgeCertReq(key, func(s *CertReqSigned) {
					s.Data.SignatureKey = spkiOf(f.t, key.Public())
					s.Signature.Signer = KeyThumbprint(s.Data.SignatureKey)
				})
			})
		}},
		{"a signature key on P-384", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			key, err := ecdsa.GenerateKey(elliptic.P384(), crand.Reader)
			f.fatal(err)
			return toCA(f, func() {
				f.forgeCertReq(nil, func(s *CertReqSigned) {
					s.Data.SignatureKey = spkiOf(f.t, key.Public())
					s.Signature.Signer = KeyThumbprint(s.Data.SignatureKey)
				})
			})
		}},
		{"a signature key in a non-canonical encoding", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			return toCA(f, func() {
				f.forgeCertReq(f.sigKey, func(s *CertReqSigned) {
					s.Data.SignatureKey = nonCanonical(f.t, s.Data.SignatureKey)
					s.Signature.Signer = KeyThumbprint(s.Data.SignatureKey)
				})
			})
		}},
		{"a key-exchange key of the other suite", RoleMerchant, CodeCertKeyType, func(f *regFlow) error {
			f.params.KeyExchangeKey, _ = testpki.KEMKey(f.other().Suite, regSeed, "merchant")
			return toCA(f, func() {})
		}},
		{"a key-exchange key that is an Ed25519 signature key", RoleMerchant, CodeCertKeyType, func(f *regFlow) error {
			return toCA(f, func() {
				f.forgeCertReq(f.sigKey, func(s *CertReqSigned) {
					s.Data.KeyExchangeKey = spkiOf(f.t, ed25519.NewKeyFromSeed(make([]byte, 32)).Public())
				})
			})
		}},
		{"a key-exchange key in a non-canonical encoding", RoleMerchant, CodeCertKeyType, func(f *regFlow) error {
			return toCA(f, func() {
				f.forgeCertReq(f.sigKey, func(s *CertReqSigned) { s.Data.KeyExchangeKey = nonCanonical(f.t, s.Data.KeyExchangeKey) })
			})
		}},
		{"a TLS key on P-384", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			key, err := ecdsa.GenerateKey(elliptic.P384(), crand.Reader)
			f.fatal(err)
			f.params.TLSKey = key.Public()
			return toCA(f, func() {})
		}},
		{"a TLS key in a non-canonical encoding", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			f.params.TLSKey = testpki.SigningKey(SuiteNIST, regSeed, "TLS").Public()
			return toCA(f, func() {
				f.forgeCertReq(f.sigKey, func(s *CertReqSigned) { s.Data.TLSKey = nonCanonical(f.t, s.Data.TLSKey) })
			})
		}},
		{"a CertReq not signed by its new key", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeCertReq(other(f), func(*CertReqSigned) {}) })
		}},
		{"a CertReq naming another signer than its new key", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeCertReq(nil, func(s *CertReqSigned) { s.Signature.Signer[0] ^= 1 }) })
		}},
		{"a changed CertReqData breaks the new key's signature", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeCertReq(nil, func(s *CertReqSigned) { s.Data.FormValues[0].Value = "271828" }) })
		}},
		{"a CertReq signature claiming the other suite", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeCertReq(nil, func(s *CertReqSigned) { s.Signature.Suite = f.other().Suite }) })
		}},
		{"a changed renewal breaks the current certificate's signature", RoleMerchant, CodeSignature, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			return toCA(f, func() { f.forgeCertReq(nil, func(s *CertReqSigned) { s.Data.FormValues[0].Value = "271828" }) })
		}},
		{"a renewal signed by a cardholder certificate", RoleMerchant, CodeCertRole, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			f.params.Current = f.p.Cardholder
			return toCA(f, func() {})
		}},
		{"a renewal whose current certificate is not sent", RoleMerchant, CodeCertMissing, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			return toCA(f, func() { f.forgeCertReq(nil, func(s *CertReqSigned) { s.Certificates = s.Certificates[1:] }) })
		}},
		{"a renewal signed by a revoked certificate", RoleMerchant, CodeCertRevoked, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			revokedSerials(f.ca.trust, f.p.Merchant.Sig.Cert.X509.SerialNumber)
			return toCA(f, func() {})
		}},
		{"a renewal signed by an expired certificate", RoleMerchant, CodeCertExpired, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			key := testpki.SigningKey(f.s, regSeed, "expired merchant")
			der := f.p.MCA.Issue(testpki.Options{Type: CertMerchantSignature, Name: "expired merchant", Public: key,
				NotAfter: testpki.Epoch.Add(-time.Minute), Extensions: []pkix.Extension{
					MerchantDataExtension(MerchantData{MerchantID: testpki.TestMerchantID, Name: "Test Shop", AcquirerBIN: "400000"}),
					BrandExtension(testpki.TestBrand)}})
			cur, err := NewSigningKey(key, append([][]byte{der}, f.p.MCA.Chain...))
			f.fatal(err)
			f.params.Current = cur
			return toCA(f, func() {})
		}},
		{"a renewal naming another merchant than its certificate's (flaw fix 3)", RoleMerchant, CodeIdentityMismatch, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			f.identity.ID = "M-0003"
			return toCA(f, func() {})
		}},
		{"a renewal naming another acquirer than its certificate's", RoleMerchant, CodeIdentityMismatch, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			f.identity.AcquirerBIN = "400001"
			return toCA(f, func() {})
		}},
		{"a renewal naming another gateway than its certificate's", RoleGateway, CodeIdentityMismatch, func(f *regFlow) error {
			f.renewWith(f.p.Gateway.Sig, f.p.Gateway.KE.Cert.Thumb) // the certificate of "gateway"; the identity is "gateway two"
			return toCA(f, func() {})
		}},
	}
}()

func TestCAChecksCertReq(t *testing.T) { runRegChecks(t, caCertReqChecksCases) }

var applicantCertResChecksCases = func() []regCase {
	// toApplicant runs the registration up to the CA's CertRes, lets edit
	// doctor it and runs the applicant's check.
	toApplicant := func(f *regFlow, edit func()) error {
		f.do(f.open, f.certRequest)
		f.certRes = f.ca.answer(f.request)
		edit()
		return f.checkCertRes()
	}
	// answerTo has the CA answer a doctored copy of the request.
	answerTo := func(f *regFlow, edit func(*CertRequest)) {
		cr := *f.request
		edit(&cr)
		f.certRes = f.ca.answer(&cr)
	}
	// issuing has the CA issue the certificates with the edited options.
	issuing := func(f *regFlow, edit func(t CertType, o *testpki.Options)) error {
		f.ca.certOpts = edit
		return toApplicant(f, func() {})
	}
	brandOnly := []pkix.Extension{BrandExtension(testpki.TestBrand)}
	return []regCase{
		{"a CertRes that does not open", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toApplicant(f, func() { f.certRes.Ciphertext[0] ^= 1 })
		}},
		{"a CertRes answering another request", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toApplicant(f, func() { f.sendCertReq() }) // the applicant asked again: the answer is to the first request
		}},
		{"a CertRes under the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return toApplicant(f, func() { f.certRes.Suite = f.other().Suite })
		}},
		{"a CertInqRes where a CertRes is awaited", RoleCardholder, CodeUnexpectedMessage, func(f *regFlow) error {
			f.do(f.open, f.certRequest)
			res := wire(f.t, &CertInqRes{f.ca.answer(f.request).SealedResponse})
			_, err := f.reg.CheckCertRes(res)
			return err
		}},
		{"a CertRes holding something else than CertResSigned", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			return toApplicant(f, func() { f.certRes = ForgeCertRes(f.s, f.request, Encode(f.cardInitReq)) })
		}},
		{"a changed CertResData breaks the CA signature", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toApplicant(f, func() { f.forgeCertRes(nil, func(s *CertResSigned) { s.Data.NonceCCA[0] ^= 1 }) })
		}},
		{"a CertRes signed by a merchant certificate", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			return toApplicant(f, func() {
				f.forgeCertRes(f.p.Merchant.Sig, func(s *CertResSigned) { s.Certificates = append(s.Certificates, f.p.Merchant.Sig.Chain...) })
			})
		}},
		{"a CertRes signed by another registration certificate of the CA", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			other := f.p.RegistrationKeysNamed(f.p.CCA, "another registration holder")
			return toApplicant(f, func() {
				f.forgeCertRes(other.Sig, func(s *CertResSigned) { s.Certificates = append(s.Certificates, other.Sig.Chain[0]) })
			})
		}},
		{"a CertRes signature claiming the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return toApplicant(f, func() { f.forgeCertRes(nil, func(s *CertResSigned) { s.Signature.Suite = f.other().Suite }) })
		}},
		{"RRPID not echoed in CertRes", RoleCardholder, CodeRRPIDMismatch, func(f *regFlow) error {
			return toApplicant(f, func() { answerTo(f, func(cr *CertRequest) { cr.Data.RRPID[0] ^= 1 }) })
		}},
		{"LID-EE not echoed in CertRes", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			return toApplicant(f, func() { answerTo(f, func(cr *CertRequest) { cr.Data.LIDEE = []byte("EE-someone") }) })
		}},
		{"Chall-EE3 not echoed", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			return toApplicant(f, func() { answerTo(f, func(cr *CertRequest) { cr.Data.ChallEE3[0] ^= 1 }) })
		}},
		{"a pending CertRes without request id", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			f.ca.resEdit = func(d *CertResData) { d.Status, d.Issued, d.NonceCCA = CertPending, nil, nil }
			return toApplicant(f, func() {})
		}},
		{"an issued CertRes without certificates", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			f.ca.resEdit = func(d *CertResData) { d.Issued = nil }
			return toApplicant(f, func() {})
		}},
		{"a certificate for another key", RoleCardholder, CodeCertKeyType, func(f *regFlow) error {
			return issuing(f, func(_ CertType, o *testpki.Options) {
				o.Public = testpki.SigningKey(f.s, regSeed, "someone else").Public()
			})
		}},
		{"a key-exchange certificate for another key", RoleMerchant, CodeCertKeyType, func(f *regFlow) error {
			return issuing(f, func(t CertType, o *testpki.Options) {
				if t == CertMerchantKeyExchange {
					o.Public, _ = testpki.KEMKey(f.s, regSeed, "someone else")
				}
			})
		}},
		{"a merchant certificate naming another merchant", RoleMerchant, CodeIdentityMismatch, func(f *regFlow) error {
			return issuing(f, func(_ CertType, o *testpki.Options) {
				o.Extensions = []pkix.Extension{MerchantDataExtension(MerchantData{MerchantID: "M-OTHER", Name: "Other", AcquirerBIN: f.identity.AcquirerBIN}),
					BrandExtension(testpki.TestBrand)}
			})
		}},
		{"a gateway certificate naming another gateway", RoleGateway, CodeIdentityMismatch, func(f *regFlow) error {
			return issuing(f, func(_ CertType, o *testpki.Options) { o.Name = "another gateway" })
		}},
		{"a cardholder certificate of another brand", RoleCardholder, CodeIdentityMismatch, func(f *regFlow) error {
			return issuing(f, func(t CertType, o *testpki.Options) {
				if t == CertCardholderSignature {
					o.Extensions = append(o.Extensions[:len(o.Extensions)-1:len(o.Extensions)-1], BrandExtension("OtherBrand"))
				}
			})
		}},
		{"an unasked-for certificate type", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			return issuing(f, func(_ CertType, o *testpki.Options) { o.Type, o.Extensions = CertCardholderTLS, brandOnly })
		}},
		{"more certificates than keys asked for", RoleCardholder, CodeCertRole, func(f *regFlow) error {
			f.ca.resEdit = func(d *CertResData) { d.Issued = append(d.Issued, f.p.Cardholder.Chain[0]) }
			return toApplicant(f, func() {})
		}},
		{"a key-exchange certificate where a signature certificate was asked", RoleGateway, CodeCertRole, func(f *regFlow) error {
			return issuing(f, func(t CertType, o *testpki.Options) {
				if t == CertGatewaySignature {
					o.Type, o.Public = CertGatewayKeyExchange, f.kePub
				}
			})
		}},
		{"a certificate issued by the merchant CA", RoleCardholder, CodeCertChain, func(f *regFlow) error {
			f.ca.issuer = f.p.MCA
			return toApplicant(f, func() {})
		}},
		{"an expired certificate", RoleCardholder, CodeCertExpired, func(f *regFlow) error {
			return issuing(f, func(_ CertType, o *testpki.Options) { o.NotAfter = testpki.Epoch.Add(-time.Minute) })
		}},
		{"a cardholder certificate without account hash", RoleCardholder, CodeAccountHash, func(f *regFlow) error {
			return issuing(f, func(_ CertType, o *testpki.Options) { o.Extensions = brandOnly })
		}},
		{"a cardholder certificate with the account hash of another card", RoleCardholder, CodeAccountHash, func(f *regFlow) error {
			pan, _ := NewPAN("5555555555554444")
			h := AccountHash(f.s, pan, f.account.CardExpiry, PANSecret(f.account.CardSecret, f.ca.nonceCCA))
			return issuing(f, func(_ CertType, o *testpki.Options) {
				o.Extensions = []pkix.Extension{AccountHashExtension(h), BrandExtension(testpki.TestBrand)}
			})
		}},
		{"an issued cardholder certificate without NonceCCA", RoleCardholder, CodeAccountHash, func(f *regFlow) error {
			f.ca.resEdit = func(d *CertResData) { d.NonceCCA = nil }
			return toApplicant(f, func() {})
		}},
		{"a NonceCCA other than the one the account hash is keyed with", RoleCardholder, CodeAccountHash, func(f *regFlow) error {
			f.ca.resEdit = func(d *CertResData) {
				n := *d.NonceCCA
				n[0] ^= 1
				d.NonceCCA = &n
			}
			return toApplicant(f, func() {})
		}},
	}
}()

func TestApplicantChecksCertRes(t *testing.T) { runRegChecks(t, applicantCertResChecksCases) }

var inquiryChecksCases = func() []regCase {
	// toCA runs a registration to a pending CertRes, lets edit doctor the
	// CertInqReq and has the CA process it.
	toCA := func(f *regFlow, edit func()) error {
		f.pendingRequest()
		f.sendInquiry()
		edit()
		return f.caInquiry()
	}
	toApplicant := func(f *regFlow, edit func()) error {
		f.pendingRequest()
		f.sendInquiry()
		f.do(f.caInquiry)
		edit()
		return f.checkInqRes()
	}
	other := func(f *regFlow) crypto.Signer { return testpki.SigningKey(f.s, regSeed, "someone else") }
	return []regCase{
		{"a CertInqReq sealed under the other suite", RoleCardholder, CodeSuiteMismatch, func(f *regFlow) error {
			return toCA(f, func() { f.inqReq.Suite = f.other().Suite })
		}},
		{"a CertInqReq sealed under an unknown suite", RoleCardholder, CodeUnknownSuite, func(f *regFlow) error {
			return toCA(f, func() { f.inqReq.Suite = 99 })
		}},
		{"a CertInqReq sealed to another recipient", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toCA(f, func() { f.inqReq.Recipient[0] ^= 1 })
		}},
		{"a changed CertInqReq ciphertext", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toCA(f, func() { f.inqReq.Ciphertext[0] ^= 1 })
		}},
		{"a CertInqReq holding something else than CertInqSigned", RoleCardholder, CodeMalformed, func(f *regFlow) error {
			return toCA(f, func() {
				f.inqReq.Envelope = ForgeSeal(f.rnd, f.ca.keys.KE.Cert, LabelSealCertInqReq, Encode(f.cardInitReq), nil)
			})
		}},
		{"a CertInqReq signed by another key", RoleCardholder, CodeSignature, func(f *regFlow) error {
			key := other(f)
			return toCA(f, func() {
				f.forgeInquiry(key, func(s *CertInqSigned) { s.Signature.Signer = KeyThumbprint(spkiOf(f.t, key.Public())) })
			})
		}},
		{"a CertInqReq naming the request's key but signed by another", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeInquiry(other(f), func(*CertInqSigned) {}) })
		}},
		{"a changed CertInqReqData breaks the signature", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeInquiry(nil, func(s *CertInqSigned) { s.Data.ChallEE4[0] ^= 1 }) })
		}},
		{"a CertInqReq signature claiming the other suite", RoleCardholder, CodeSignature, func(f *regFlow) error {
			return toCA(f, func() { f.forgeInquiry(nil, func(s *CertInqSigned) { s.Signature.Suite = f.other().Suite }) })
		}},
		{"a renewal's inquiry signed by another key than the current certificate's", RoleMerchant, CodeSignature, func(f *regFlow) error {
			f.renewTestPKIMerchant()
			return toCA(f, func() { f.forgeInquiry(f.sigKey, func(*CertInqSigned) {}) })
		}},
		{"a CertRes where a CertInqRes is awaited", RoleCardholder, CodeUnexpectedMessage, func(f *regFlow) error {
			f.pendingRequest()
			f.sendInquiry()
			f.do(f.caInquiry)
			_, err := f.reg.CheckCertRes(wire(f.t, &CertRes{f.inqRes.SealedResponse}))
			return err
		}},
		{"a CertInqRes that does not open", RoleCardholder, CodeDecrypt, func(f *regFlow) error {
			return toApplicant(f, func() { f.inqRes.Ciphertext[0] ^= 1 })
		}},
		{"Chall-EE4 not echoed", RoleCardholder, CodeChallEEMismatch, func(f *regFlow) error {
			return toApplicant(f, func() {
				q := *f.inquiry
				q.Data.ChallEE4[0] ^= 1
				var err error
				f.inqRes, err = f.ca.keys.NewCertInqRes(&q, f.ca.issue(f.request), f.ca.ca.Chain)
				f.fatal(err)
			})
		}},
	}
}()

func TestInquiryChecks(t *testing.T) { runRegChecks(t, inquiryChecksCases) }
