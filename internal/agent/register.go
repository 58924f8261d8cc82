package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudflare/circl/kem"

	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// FieldActivationCode is the registration form field of the activation
// code (ca.FieldActivationCode; repeated here so that agents do not link
// the CA).
const FieldActivationCode = "activation-code"

// Registration is what a party asks the CA for.
type Registration struct {
	CA     string // the CA server's base URL, https://host:port
	Client *http.Client
	Role   protocol.Role
	Suite  protocol.Suite
	Roots  [][]byte // the suite's trusted root, DER
	Brand  string
	Rand   io.Reader
	Now    func() time.Time

	// ActivationCode is the secret the issuer (cardholders) or the
	// acquirer or brand (merchants, gateways) gave out of band.
	ActivationCode string
	// Identity of a merchant or gateway.
	Identity protocol.Identity
	// PAN and Expiry (YYYYMM) of a cardholder's card.
	PAN    protocol.PAN
	Expiry string
}

// Registered is the outcome of a registration.
type Registered struct {
	Credentials *Credentials
	Keys        Keys
	// The card data a cardholder keeps (zero for merchants and gateways).
	CardSecret protocol.Secret
	PANSecret  protocol.Secret
}

// ErrPending is returned when the CA (the issuer) has not decided yet after
// the follow-up inquiries.
var ErrPending = errors.New("registration pending: the issuer has not decided yet; try again later")

// Register runs the registration protocol with the CA server and returns
// the issued credentials. Fresh keys come from r.Rand.
func Register(ctx context.Context, r *Registration) (*Registered, error) {
	trust, err := protocol.NewTrust(r.Roots...)
	if err != nil {
		return nil, err
	}
	trust.Now = r.Now
	now := r.Now
	if now == nil {
		now = time.Now
	}
	lid := make([]byte, 8)
	if _, err := io.ReadFull(r.Rand, lid); err != nil {
		return nil, err
	}
	a := &protocol.Registration{Role: r.Role, Suite: r.Suite, Brand: r.Brand, Language: "en", Trust: trust, Rand: r.Rand,
		LIDEE: fmt.Appendf(nil, "%x", lid)}
	url := r.CA + "/register"
	send := func(m protocol.Message) (protocol.Message, error) {
		w, _, err := Post(ctx, r.Client, url, m, now())
		if err != nil {
			return nil, err
		}
		return w.Message, nil
	}

	var out Registered
	params := protocol.CertReqParams{RequestType: protocol.RequestInitial,
		FormValues: []protocol.FormValue{{Name: FieldActivationCode, Value: r.ActivationCode}}}
	switch r.Role {
	case protocol.RoleCardholder:
		req, err := a.CardCInitReq(nil)
		if err != nil {
			return nil, err
		}
		res, err := send(req)
		if err != nil {
			return nil, err
		}
		init, err := expect[*protocol.CardCInitRes](res)
		if err != nil {
			return nil, err
		}
		if err := a.CheckCardCInitRes(init, nil); err != nil {
			return nil, err
		}
		rf, err := a.RegFormReq(r.PAN, protocol.RequestInitial)
		if err != nil {
			return nil, err
		}
		if res, err = send(rf); err != nil {
			return nil, err
		}
		form, err := expect[*protocol.RegFormRes](res)
		if err != nil {
			return nil, err
		}
		if _, err := a.CheckRegFormRes(form); err != nil {
			return nil, err
		}
		acct := &protocol.AccountData{PAN: r.PAN, CardExpiry: r.Expiry}
		if _, err := io.ReadFull(r.Rand, acct.CardSecret[:]); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(r.Rand, acct.EXNonce[:]); err != nil {
			return nil, err
		}
		out.CardSecret = acct.CardSecret
		params.Account = acct
	case protocol.RoleMerchant, protocol.RoleGateway:
		req, err := a.MeAqCInitReq(r.Identity, protocol.RequestInitial, nil)
		if err != nil {
			return nil, err
		}
		res, err := send(req)
		if err != nil {
			return nil, err
		}
		init, err := expect[*protocol.MeAqCInitRes](res)
		if err != nil {
			return nil, err
		}
		if err := a.CheckMeAqCInitRes(init, nil); err != nil {
			return nil, err
		}
		id := r.Identity
		params.Identity = &id
		var pub kem.PublicKey
		if pub, out.Keys.KE, err = keyfile.NewKEMKey(r.Rand, r.Suite); err != nil {
			return nil, err
		}
		params.KeyExchangeKey = pub
	default:
		return nil, fmt.Errorf("cannot register a %s", r.Role)
	}
	// Every party gets a signature certificate: the CertReq is signed with
	// the new key (proof of possession). A cardholder may still pay without
	// it (cardholder.Shopper.Unsigned).
	if out.Keys.Sig, err = keyfile.NewSigningKey(r.Rand, r.Suite); err != nil {
		return nil, err
	}
	params.SignatureKey = out.Keys.Sig
	// TLS keys are ECDSA P-256 in both suites: every TLS stack and
	// Wireshark know them.
	tlsKey, err := keyfile.NewP256Key(r.Rand)
	if err != nil {
		return nil, err
	}
	out.Keys.TLS = tlsKey
	params.TLSKey = crypto.Signer(tlsKey).Public()

	cr, err := a.CertReq(params)
	if err != nil {
		return nil, err
	}
	res, err := send(cr)
	if err != nil {
		return nil, err
	}
	issued, err := a.CheckCertRes(res)
	for wait := 200 * time.Millisecond; err == nil && issued == nil && wait < 5*time.Second; wait *= 2 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		var inq *protocol.CertInqReq
		if inq, err = a.CertInqReq(); err != nil {
			return nil, err
		}
		if res, err = send(inq); err != nil {
			return nil, err
		}
		issued, err = a.CheckCertRes(res)
	}
	if err != nil {
		return nil, err
	}
	if issued == nil {
		return nil, ErrPending
	}
	out.PANSecret = issued.PANSecret
	if out.Credentials, err = NewCredentials(r.Suite, r.Roots, issued, out.Keys); err != nil {
		return nil, err
	}
	return &out, nil
}

func expect[T protocol.Message](m protocol.Message) (T, error) {
	t, ok := m.(T)
	if !ok {
		return t, fmt.Errorf("the CA answered with %s", m.Type())
	}
	return t, nil
}
