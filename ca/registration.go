package ca

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/nosql"
	"github.com/smallstep/nosql/database"

	"github.com/setpay/setpay/protocol"
)

// This file is the registration authority: it answers the registration
// messages (docs/PROTOCOL.md, "Registration") for the role CAs of every
// suite of a CA, with the records the stateless checks of package protocol
// cannot make: the sessions it opened (LID-CA, Chall-CA) and which were
// used, the card issuer's confirmation, the enrollment lists of merchants and
// gateways, the keys it already certified, pending requests, and the
// certificates it issued (for renewal).

// Tables of the registration database.
var (
	tableSessions = []byte("setpay_reg_sessions") // chall-CA -> session
	tablePending  = []byte("setpay_reg_pending")  // request id -> grant
	tableKeys     = []byte("setpay_reg_keys")     // key thumbprint -> certificate thumbprint
	tableHolders  = []byte("setpay_reg_certs")    // certificate thumbprint -> holder
	tableEnrolled = []byte("setpay_reg_enrolled") // role/id -> enrollment
	tableMeta     = []byte("setpay_reg_meta")     // "pan-key" -> HMAC key for account references
	tableInquired = []byte("setpay_reg_inquired") // SHA-256 of a CertInqReq's enc -> request id
)

// answered marks a pending request claimed by the inquiry that issues it.
const answered = "answered"

// SessionLifetime is how long a registration session (LID-CA, Chall-CA)
// stays open for its CertReq.
const SessionLifetime = 30 * time.Minute

// Enrollment is a merchant on its acquirer's list or a gateway on its
// brand's list: who may register, and the activation code given to them out
// of band.
type Enrollment struct {
	Role           protocol.Role `json:"role"`
	ID             string        `json:"id"`
	Name           string        `json:"name"`
	AcquirerBIN    string        `json:"acquirerBIN,omitempty"` // merchants
	ActivationCode string        `json:"activationCode"`
}

// session is the CA's side of one registration.
type session struct {
	LIDCA    []byte               `json:"lidCA"`
	Role     protocol.Role        `json:"role"`
	Suite    protocol.Suite       `json:"suite"`
	Account  string               `json:"account,omitempty"` // keyed reference of the PAN (cardholder)
	Identity *protocol.Identity   `json:"identity,omitempty"`
	Request  protocol.RequestType `json:"requestType"`
	Expires  time.Time            `json:"expires"`
	Used     bool                 `json:"used"`
}

// grant is what the CA will certify once the request is approved. It holds
// no card number and no CardSecret: the account hash is computed when the
// request is checked.
type grant struct {
	Role           protocol.Role        `json:"role"`
	Suite          protocol.Suite       `json:"suite"`
	CA             protocol.CertType    `json:"ca"`     // the role CA that will issue
	Holder         string               `json:"holder"` // account reference or role/id
	SignatureKey   []byte               `json:"signatureKey,omitempty"`
	KeyExchangeKey []byte               `json:"keyExchangeKey,omitempty"`
	TLSKey         []byte               `json:"tlsKey,omitempty"`
	AccountHash    *protocol.Digest     `json:"accountHash,omitempty"`
	NonceCCA       *protocol.Secret     `json:"nonceCCA,omitempty"`
	Identity       *protocol.Identity   `json:"identity,omitempty"`
	Name           string               `json:"name,omitempty"`
	Renews         *protocol.Thumbprint `json:"renews,omitempty"`
	SignerKey      []byte               `json:"signerKey"`
	IssuerRef      string               `json:"issuerRef,omitempty"`
}

// holder records who a certificate was issued to, for renewals.
type holder struct {
	Role   protocol.Role `json:"role"`
	Holder string        `json:"holder"`
	Serial string        `json:"serial"`
	Type   int           `json:"type"`
}

// Registrar answers registration messages for a CA.
type Registrar struct {
	ca     *CA
	db     database.DB
	issuer CardIssuer
	rand   io.Reader
	now    func() time.Time
	panKey []byte

	trustMu    sync.Mutex
	trustCache *protocol.Trust
	trustBCIs  []int64 // the BCI numbers trustCache was built from
}

// trust returns the CA's Trust with its current revocation state, built
// again only when a BCI number changed (building it verifies every CRL).
func (r *Registrar) trust(ctx context.Context) (*protocol.Trust, error) {
	var numbers []int64
	for _, s := range r.ca.Suites() {
		b, err := r.ca.Hierarchy(s).BCI(ctx)
		if err != nil {
			return nil, err
		}
		numbers = append(numbers, b.Data.Number)
	}
	r.trustMu.Lock()
	defer r.trustMu.Unlock()
	if r.trustCache != nil && slices.Equal(numbers, r.trustBCIs) {
		return r.trustCache, nil
	}
	t, err := r.ca.TrustContext(ctx)
	if err != nil {
		return nil, err
	}
	r.trustCache, r.trustBCIs = t, numbers
	return t, nil
}

// NewRegistrar returns the registration authority of c, asking issuer about
// card accounts. It keeps its records in a database of its own, of the CA's
// database type ("{ca}" is "registration" and "{suite}" "all"; with bbolt,
// DIR/registration.db). Close it before the CA.
func NewRegistrar(c *CA, issuer CardIssuer) (*Registrar, error) {
	typ, ds := c.o.DB.Type, c.o.DB.DataSource
	if typ == "" {
		typ = "bbolt"
	}
	if ds == "" {
		ds = filepath.Join("{dir}", "registration")
		if typ == "bbolt" {
			ds += ".db"
		}
	}
	repl := strings.NewReplacer("{dir}", c.dir, "{suite}", "all", "{ca}", "registration")
	db, err := nosql.New(typ, repl.Replace(ds), nosql.WithDatabase(repl.Replace(c.o.DB.Database)))
	if err != nil {
		return nil, fmt.Errorf("registration database: %w", err)
	}
	r, err := newRegistrar(c, db, issuer)
	if err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// Close closes the registration database.
func (r *Registrar) Close() error { return r.db.Close() }

func newRegistrar(c *CA, db database.DB, issuer CardIssuer) (*Registrar, error) {
	for _, t := range [][]byte{tableSessions, tablePending, tableKeys, tableHolders, tableEnrolled, tableMeta, tableInquired} {
		if err := db.CreateTable(t); err != nil {
			return nil, fmt.Errorf("registration database: %w", err)
		}
	}
	r := &Registrar{ca: c, db: db, issuer: issuer, rand: c.rand, now: c.now}
	key, err := db.Get(tableMeta, []byte("pan-key"))
	switch {
	case nosql.IsErrNotFound(err):
		key = make([]byte, 32)
		if _, err := io.ReadFull(r.rand, key); err != nil {
			return nil, err
		}
		if err := db.Set(tableMeta, []byte("pan-key"), key); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	r.panKey = key
	return r, nil
}

// Enroll puts a merchant on its acquirer's list or a gateway on the brand's.
func (r *Registrar) Enroll(e Enrollment) error {
	switch {
	case e.Role == protocol.RoleMerchant && e.AcquirerBIN == "":
		return errors.New("a merchant enrollment needs the acquirer BIN")
	case e.Role == protocol.RoleGateway && e.AcquirerBIN != "":
		return errors.New("a gateway enrollment has no acquirer BIN")
	case e.Role != protocol.RoleMerchant && e.Role != protocol.RoleGateway:
		return errors.New("only merchants and gateways enroll")
	case e.ID == "" || e.Name == "" || e.ActivationCode == "":
		return errors.New("an enrollment needs an id, a name and an activation code")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return r.db.Set(tableEnrolled, enrollKey(e.Role, e.ID), b)
}

func enrollKey(role protocol.Role, id string) []byte { return fmt.Appendf(nil, "%d/%s", role, id) }

// accountRef is the CA's keyed reference of a PAN: it links a RegFormReq to
// its CertReq and a renewal to the certificate it renews without storing
// the card number.
func (r *Registrar) accountRef(pan protocol.PAN) string {
	m := hmac.New(sha256.New, r.panKey)
	m.Write([]byte(pan.Digits()))
	return "account/" + hex.EncodeToString(m.Sum(nil))
}

// Handle answers one registration message (a DER MessageWrapper) with the
// DER of the reply: the next registration message, or an Error signed by
// the CA that received the request (unsigned when none can be told). It
// never fails and never panics on bad input.
func (r *Registrar) Handle(ctx context.Context, in []byte) []byte {
	w, err := protocol.Parse(in)
	if err != nil {
		return r.errorReply(nil, protocol.SuitePQ, err, in, nil)
	}
	reply, keys, err := r.dispatch(ctx, w)
	if err != nil {
		s := protocol.SuitePQ // before a suite is known (NewError)
		if keys != nil {
			s = keys.Suite()
		}
		return r.errorReply(keys, s, err, in, w.Header.RRPID)
	}
	return protocol.NewWrapper(reply, r.now().UTC().Truncate(time.Second), nil, w.Header.RRPID).Marshal()
}

func (r *Registrar) errorReply(keys *protocol.CAKeys, s protocol.Suite, err error, in []byte, rrpid *protocol.RRPID) []byte {
	var nonce protocol.Challenge
	_, _ = io.ReadFull(r.rand, nonce[:])
	var sk *protocol.SigningKey
	if keys != nil {
		sk = keys.Sig
	}
	if protocol.CodeOf(err) == 0 {
		err = &protocol.CheckError{Code: protocol.CodeMalformed, Detail: "internal error"}
	}
	e, eerr := protocol.NewError(err, nonce, s, in, sk)
	if eerr != nil {
		e, _ = protocol.NewError(err, nonce, s, in, nil)
	}
	return protocol.NewWrapper(e, r.now().UTC().Truncate(time.Second), nil, rrpid).Marshal()
}

func (r *Registrar) dispatch(ctx context.Context, w *protocol.Wrapper) (protocol.Message, *protocol.CAKeys, error) {
	switch m := w.Message.(type) {
	case *protocol.CardCInitReq:
		a, err := r.authorityFor(m.Suite, protocol.RoleCardholder, m.BrandID)
		if err != nil {
			return nil, nil, err
		}
		res, err := a.keys().NewCardCInitRes(m, r.bci(ctx, m.Suite))
		return res, a.keys(), err
	case *protocol.MeAqCInitReq:
		a, err := r.authorityFor(m.Suite, m.Role, m.BrandID)
		if err != nil {
			return nil, nil, err
		}
		res, err := r.meAqCInit(ctx, a, m)
		return res, a.keys(), err
	case *protocol.RegFormReq:
		a, err := r.authorityByKE(m.Recipient, protocol.CertCardholderCA)
		if err != nil {
			return nil, nil, err
		}
		res, err := r.regForm(ctx, a, m)
		return res, a.keys(), err
	case *protocol.CertReq:
		a, err := r.authorityByKE(m.Recipient, 0)
		if err != nil {
			return nil, nil, err
		}
		res, err := r.certReq(ctx, a, m)
		return res, a.keys(), err
	case *protocol.CertInqReq:
		a, err := r.authorityByKE(m.Recipient, 0)
		if err != nil {
			return nil, nil, err
		}
		res, err := r.certInq(ctx, a, m)
		return res, a.keys(), err
	}
	return nil, nil, &protocol.CheckError{Code: protocol.CodeUnexpectedMessage, Detail: fmt.Sprintf("the CA does not answer %s", w.Message.Type())}
}

// authorityFor returns the role CA of suite s for role, if s and brand are
// this CA's.
func (r *Registrar) authorityFor(s protocol.Suite, role protocol.Role, brand string) (*Authority, error) {
	h := r.ca.Hierarchy(s)
	switch {
	case !s.Valid():
		return nil, &protocol.CheckError{Code: protocol.CodeUnknownSuite, Detail: fmt.Sprintf("suite %d", s)}
	case h == nil:
		return nil, &protocol.CheckError{Code: protocol.CodeSuiteMismatch, Detail: fmt.Sprintf("this CA has no %s hierarchy", s)}
	case brand != r.ca.Brand():
		return nil, &protocol.CheckError{Code: protocol.CodeRequestType, Detail: fmt.Sprintf("this CA serves brand %q, not %q", r.ca.Brand(), brand)}
	}
	return h.roleCA(role), nil
}

// authorityByKE returns the role CA whose registration key-exchange
// certificate has thumbprint th (of type want, unless want is 0).
func (r *Registrar) authorityByKE(th protocol.Thumbprint, want protocol.CertType) (*Authority, error) {
	for _, s := range protocol.Suites {
		h := r.ca.Hierarchy(s)
		if h == nil {
			continue
		}
		for _, role := range []protocol.Role{protocol.RoleCardholder, protocol.RoleMerchant, protocol.RoleGateway} {
			a := h.roleCA(role)
			if a.KE.Cert.Thumb == th {
				if want != 0 && a.Type != want {
					return nil, &protocol.CheckError{Code: protocol.CodeRequestType, Detail: fmt.Sprintf("this message goes to the %s", want)}
				}
				return a, nil
			}
		}
	}
	return nil, &protocol.CheckError{Code: protocol.CodeDecrypt, Detail: "sealed to no key of this CA"}
}

// bci returns the current BCI of suite s, or nil if it cannot be made (the
// reply then carries none; parties fetch it from the CRL endpoint).
func (r *Registrar) bci(ctx context.Context, s protocol.Suite) *protocol.BCI {
	b, err := r.ca.Hierarchy(s).BCI(ctx)
	if err != nil {
		return nil
	}
	return b
}

// openSession creates a registration session and returns its CA side.
func (r *Registrar) openSession(se session, rt protocol.RequestType, form protocol.RegForm) (protocol.CASession, error) {
	cs := protocol.CASession{LIDCA: make([]byte, 16), RequestType: rt, Form: form}
	if _, err := io.ReadFull(r.rand, cs.LIDCA); err != nil {
		return cs, err
	}
	if _, err := io.ReadFull(r.rand, cs.ChallCA[:]); err != nil {
		return cs, err
	}
	se.LIDCA, se.Expires, se.Request = cs.LIDCA, r.now().Add(SessionLifetime), rt
	b, err := json.Marshal(se)
	if err != nil {
		return cs, err
	}
	return cs, r.db.Set(tableSessions, cs.ChallCA[:], b)
}

func (r *Registrar) regForm(ctx context.Context, a *Authority, m *protocol.RegFormReq) (protocol.Message, error) {
	k := a.keys()
	d, err := k.OpenRegFormReq(m)
	if err != nil {
		return nil, err
	}
	form, err := r.issuer.RegistrationForm(ctx, d.PAN)
	if err != nil {
		return nil, err
	}
	cs, err := r.openSession(session{Role: protocol.RoleCardholder, Suite: k.Suite(), Account: r.accountRef(d.PAN)}, d.RequestType, form)
	if err != nil {
		return nil, err
	}
	return k.NewRegFormRes(d, cs, r.bci(ctx, k.Suite()))
}

func (r *Registrar) enrollment(role protocol.Role, id string) (*Enrollment, error) {
	b, err := r.db.Get(tableEnrolled, enrollKey(role, id))
	if nosql.IsErrNotFound(err) {
		return nil, &protocol.CheckError{Code: protocol.CodeNotEnrolled, Detail: fmt.Sprintf("no %s %q is enrolled", role, id)}
	}
	if err != nil {
		return nil, err
	}
	var e Enrollment
	return &e, json.Unmarshal(b, &e)
}

func (r *Registrar) meAqCInit(ctx context.Context, a *Authority, m *protocol.MeAqCInitReq) (protocol.Message, error) {
	k := a.keys()
	if err := k.CheckMeAqCInitReq(m); err != nil {
		return nil, err
	}
	e, err := r.enrollment(m.Role, m.Identity.ID)
	if err != nil {
		return nil, err
	}
	if e.AcquirerBIN != m.Identity.AcquirerBIN {
		return nil, &protocol.CheckError{Code: protocol.CodeNotEnrolled, Detail: fmt.Sprintf("merchant %q is not enrolled with that acquirer", m.Identity.ID)}
	}
	who := "acquirer"
	if m.Role == protocol.RoleGateway {
		who = "brand"
	}
	form := protocol.RegForm{
		Policy: fmt.Sprintf("Your %s confirms your enrollment. Enter the activation code it gave you.", who),
		Fields: []protocol.RegField{{Name: FieldActivationCode, Label: "Activation code", Secret: true}},
	}
	id := m.Identity
	cs, err := r.openSession(session{Role: m.Role, Suite: k.Suite(), Identity: &id}, m.RequestType, form)
	if err != nil {
		return nil, err
	}
	return k.NewMeAqCInitRes(m, cs, r.bci(ctx, k.Suite()))
}

// useSession finds the session a CertReq names and marks it used, once.
func (r *Registrar) useSession(d *protocol.CertReqData, suite protocol.Suite) (*session, error) {
	old, err := r.db.Get(tableSessions, d.ChallCA[:])
	if nosql.IsErrNotFound(err) {
		return nil, &protocol.CheckError{Code: protocol.CodeChallCAMismatch, Detail: "this CA issued no such Chall-CA"}
	}
	if err != nil {
		return nil, err
	}
	var se session
	if err := json.Unmarshal(old, &se); err != nil {
		return nil, err
	}
	switch {
	case !hmac.Equal(se.LIDCA, d.LIDCA):
		return nil, &protocol.CheckError{Code: protocol.CodeChallCAMismatch, Detail: "LID-CA does not belong to Chall-CA"}
	case se.Used:
		return nil, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this registration session was already used"}
	case r.now().After(se.Expires):
		return nil, &protocol.CheckError{Code: protocol.CodeChallCAMismatch, Detail: "the registration session expired"}
	case se.Role != d.Role || se.Suite != suite || se.Request != d.RequestType:
		return nil, &protocol.CheckError{Code: protocol.CodeRequestType, Detail: fmt.Sprintf("session opened for a %s %s request under suite %s, CertReq is a %s %s request under %s",
			se.Role, requestName(se.Request), se.Suite, d.Role, requestName(d.RequestType), suite)}
	}
	se.Used = true
	used, err := json.Marshal(se)
	if err != nil {
		return nil, err
	}
	if _, ok, err := r.db.CmpAndSwap(tableSessions, d.ChallCA[:], old, used); err != nil {
		return nil, err
	} else if !ok {
		return nil, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this registration session was already used"}
	}
	return &se, nil
}

func (r *Registrar) certReq(ctx context.Context, a *Authority, m *protocol.CertReq) (protocol.Message, error) {
	k := a.keys()
	t, err := r.trust(ctx)
	if err != nil {
		return nil, err
	}
	req, err := k.OpenCertReq(t, m)
	if err != nil {
		return nil, err
	}
	d := &req.Data
	se, err := r.useSession(d, k.Suite())
	if err != nil {
		return nil, err
	}
	if err := checkForm(d.FormValues); err != nil {
		return nil, err
	}
	g := &grant{Role: d.Role, Suite: k.Suite(), CA: a.Type, SignatureKey: d.SignatureKey, KeyExchangeKey: d.KeyExchangeKey,
		TLSKey: d.TLSKey, Renews: d.Renews, SignerKey: req.SignerKey}
	decision := Approved
	switch d.Role {
	case protocol.RoleCardholder:
		acct := d.Account
		if _, err := protocol.NewPAN(acct.PAN.Digits()); err != nil {
			return nil, err
		}
		g.Holder = r.accountRef(acct.PAN)
		if g.Holder != se.Account {
			return nil, &protocol.CheckError{Code: protocol.CodeIdentityMismatch, Detail: "the CertReq is for another account than the RegFormReq"}
		}
		var ref string
		decision, ref, err = r.issuer.ConfirmAccount(ctx, acct.PAN, acct.CardExpiry, d.FormValues)
		if err != nil {
			return nil, err
		}
		g.IssuerRef = ref
		var nonce protocol.Secret
		if _, err := io.ReadFull(r.rand, nonce[:]); err != nil {
			return nil, err
		}
		h := protocol.AccountHash(k.Suite(), acct.PAN, acct.CardExpiry, protocol.PANSecret(acct.CardSecret, nonce))
		g.NonceCCA, g.AccountHash = &nonce, &h
	default:
		id := *d.Identity
		if se.Identity == nil || *se.Identity != id {
			return nil, &protocol.CheckError{Code: protocol.CodeIdentityMismatch, Detail: fmt.Sprintf("the signed request names %s %q, the registration was opened for another", d.Role, id.ID)}
		}
		e, err := r.enrollment(d.Role, id.ID)
		if err != nil {
			return nil, err
		}
		if !secretEqual(formValue(d.FormValues, FieldActivationCode), e.ActivationCode) {
			return nil, &protocol.CheckError{Code: protocol.CodeRegSecret, Detail: "the activation code is wrong"}
		}
		g.Holder, g.Identity, g.Name = string(enrollKey(d.Role, id.ID)), &id, e.Name
	}
	if err := r.checkFresh(g); err != nil {
		return nil, err
	}
	if err := r.checkRenewal(g); err != nil {
		return nil, err
	}
	if decision == Pending {
		var id protocol.RequestID
		if _, err := io.ReadFull(r.rand, id[:]); err != nil {
			return nil, err
		}
		b, err := json.Marshal(g)
		if err != nil {
			return nil, err
		}
		if err := r.db.Set(tablePending, id[:], b); err != nil {
			return nil, err
		}
		return k.NewCertRes(req, protocol.CertResData{Status: protocol.CertPending, RequestID: &id}, nil)
	}
	issued, err := r.issue(ctx, a, g)
	if err != nil {
		return nil, err
	}
	return k.NewCertRes(req, protocol.CertResData{Status: protocol.CertIssued, Issued: issued, NonceCCA: g.NonceCCA,
		BCI: r.bci(ctx, k.Suite())}, a.Chain)
}

func (r *Registrar) certInq(ctx context.Context, a *Authority, m *protocol.CertInqReq) (protocol.Message, error) {
	k := a.keys()
	q, err := k.OpenCertInqReq(m)
	if err != nil {
		return nil, err
	}
	b, err := r.db.Get(tablePending, q.Data.RequestID[:])
	if nosql.IsErrNotFound(err) {
		return nil, &protocol.CheckError{Code: protocol.CodeUnknownRequest, Detail: "no pending request with this id"}
	}
	if err != nil {
		return nil, err
	}
	if string(b) == answered {
		return nil, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this pending request is being answered"}
	}
	var g grant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	if g.CA != a.Type || g.Suite != k.Suite() {
		return nil, &protocol.CheckError{Code: protocol.CodeRequestType, Detail: "the pending request belongs to another CA"}
	}
	if err := q.Verify(k.Suite(), g.SignerKey); err != nil {
		return nil, err
	}
	// Each CertInqReq is answered once: its reply key comes from its
	// envelope, so a replay would encrypt a second answer under the same
	// key and nonce.
	encKey := sha256.Sum256(m.Enc)
	if _, err := r.db.Get(tableInquired, encKey[:]); err == nil {
		return nil, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this CertInqReq was already answered"}
	} else if !nosql.IsErrNotFound(err) {
		return nil, err
	}
	if err := r.db.Set(tableInquired, encKey[:], q.Data.RequestID[:]); err != nil {
		return nil, err
	}
	decision, err := r.issuer.PendingDecision(ctx, g.IssuerRef)
	if err != nil {
		if protocol.CodeOf(err) != 0 {
			_ = r.db.Del(tablePending, q.Data.RequestID[:])
		}
		return nil, err
	}
	if decision == Pending {
		id := q.Data.RequestID
		return k.NewCertInqRes(q, protocol.CertResData{Status: protocol.CertPending, RequestID: &id}, nil)
	}
	// Claim the request, so that two inquiries at once issue once.
	if _, ok, err := r.db.CmpAndSwap(tablePending, q.Data.RequestID[:], b, []byte(answered)); err != nil || !ok {
		return nil, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this pending request was already answered"}
	}
	issued, err := r.issueFresh(ctx, a, &g)
	if err != nil {
		// Put the request back, so that a later inquiry can succeed.
		_, _, _ = r.db.CmpAndSwap(tablePending, q.Data.RequestID[:], []byte(answered), b)
		return nil, err
	}
	if err := r.db.Del(tablePending, q.Data.RequestID[:]); err != nil {
		return nil, err
	}
	return k.NewCertInqRes(q, protocol.CertResData{Status: protocol.CertIssued, Issued: issued, NonceCCA: g.NonceCCA,
		BCI: r.bci(ctx, k.Suite())}, a.Chain)
}

// checkFresh refuses a key this CA already certified (the formal analysis
// found that SET never shows the cardholder's new key to be fresh).
func (r *Registrar) checkFresh(g *grant) error {
	for _, k := range [][]byte{g.SignatureKey, g.KeyExchangeKey, g.TLSKey} {
		if k == nil {
			continue
		}
		th := protocol.KeyThumbprint(k)
		if _, err := r.db.Get(tableKeys, th[:]); err == nil {
			return &protocol.CheckError{Code: protocol.CodeKeyReused, Detail: "this public key is already certified"}
		} else if !nosql.IsErrNotFound(err) {
			return err
		}
	}
	return nil
}

// checkRenewal checks that the certificate a renewal names was issued by
// this CA to the same holder.
func (r *Registrar) checkRenewal(g *grant) error {
	if g.Renews == nil {
		return nil
	}
	b, err := r.db.Get(tableHolders, g.Renews[:])
	if nosql.IsErrNotFound(err) {
		return &protocol.CheckError{Code: protocol.CodeRequestType, Detail: "the certificate to renew was not issued by this CA"}
	}
	if err != nil {
		return err
	}
	var h holder
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	if h.Holder != g.Holder || h.Role != g.Role {
		return &protocol.CheckError{Code: protocol.CodeRequestType, Detail: "the certificate to renew belongs to another holder"}
	}
	return nil
}

// issueFresh checks again that the keys are fresh (another request may have
// certified them while this one was pending) and issues.
func (r *Registrar) issueFresh(ctx context.Context, a *Authority, g *grant) ([][]byte, error) {
	if err := r.checkFresh(g); err != nil {
		return nil, err
	}
	return r.issue(ctx, a, g)
}

// checkForm checks the filled form: known field names, each once, and the
// activation code present (CodeRegForm).
func checkForm(values []protocol.FormValue) error {
	seen := map[string]bool{}
	for _, v := range values {
		if v.Name != FieldActivationCode || seen[v.Name] {
			return &protocol.CheckError{Code: protocol.CodeRegForm, Detail: fmt.Sprintf("form field %q is unknown or repeated", v.Name)}
		}
		seen[v.Name] = true
	}
	if !seen[FieldActivationCode] {
		return &protocol.CheckError{Code: protocol.CodeRegForm, Detail: "the form has no activation code"}
	}
	return nil
}

func requestName(t protocol.RequestType) string {
	if t == protocol.RequestRenewal {
		return "renewal"
	}
	return "initial"
}

// issue certifies the keys of an approved grant, records them, and revokes
// the certificate a renewal replaces.
func (r *Registrar) issue(ctx context.Context, a *Authority, g *grant) ([][]byte, error) {
	sigT, keT, tlsT := g.Role.CertTypes()
	subject := pkix.Name{Organization: []string{r.ca.Brand()}}
	var exts []pkix.Extension
	switch g.Role {
	case protocol.RoleCardholder:
		th := protocol.KeyThumbprint(firstNonNil(g.SignatureKey, g.TLSKey))
		subject.CommonName = "cardholder " + hex.EncodeToString(th[:8])
		if g.AccountHash != nil {
			exts = append(exts, protocol.AccountHashExtension(*g.AccountHash))
		}
	case protocol.RoleMerchant:
		subject.CommonName = g.Name
		exts = append(exts, protocol.MerchantDataExtension(protocol.MerchantData{MerchantID: g.Identity.ID, Name: g.Name, AcquirerBIN: g.Identity.AcquirerBIN}))
	case protocol.RoleGateway:
		subject.CommonName = g.Identity.ID
	}
	var out [][]byte
	for _, want := range []struct {
		t    protocol.CertType
		spki []byte
	}{{sigT, g.SignatureKey}, {keT, g.KeyExchangeKey}, {tlsT, g.TLSKey}} {
		if want.spki == nil {
			continue
		}
		pub, err := publicKey(want.t, want.spki)
		if err != nil {
			return nil, err
		}
		e := exts
		if want.t.IsTLS() {
			e = nil // TLS certificates carry no setpay extension but their type
		}
		der, err := a.Issue(ctx, IssueRequest{Type: want.t, Subject: subject, Public: pub, Extensions: e})
		if err != nil {
			return nil, err
		}
		out = append(out, der)
		th, kth := protocol.ThumbprintOf(der), protocol.KeyThumbprint(want.spki)
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		hb, _ := json.Marshal(holder{Role: g.Role, Holder: g.Holder, Serial: x.SerialNumber.String(), Type: int(want.t)})
		if err := r.db.Set(tableHolders, th[:], hb); err != nil {
			return nil, err
		}
		if err := r.db.Set(tableKeys, kth[:], th[:]); err != nil {
			return nil, err
		}
	}
	if g.Renews != nil {
		if err := r.ca.RevokeCertificate(ctx, *g.Renews, ReasonSuperseded, "renewed"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func firstNonNil(bs ...[]byte) []byte {
	for _, b := range bs {
		if b != nil {
			return b
		}
	}
	return nil
}

// publicKey parses the SubjectPublicKeyInfo of a key to certify as type t.
func publicKey(t protocol.CertType, spki []byte) (any, error) {
	if t.IsKeyExchange() {
		_, pub, err := protocol.ParseKEMPublicKey(spki)
		return pub, err
	}
	return x509.ParsePKIXPublicKey(spki)
}
