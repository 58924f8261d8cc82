package ca

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/setpay/setpay/protocol"
)

// Decision is a card issuer's answer to a registration.
type Decision int

const (
	// Approved: the account is confirmed; the CA issues the certificate.
	Approved Decision = 1
	// Pending: the issuer decides later; the applicant asks with CertInqReq.
	Pending Decision = 2
)

// CardIssuer is the card's issuing bank as the cardholder CA sees it: it
// knows the accounts and confirms (or refuses) that an applicant holds one.
// Errors carry a protocol code: CodeUnknownAccount, CodeAccountExpiry,
// CodeRegSecret, CodeAccountRefused.
type CardIssuer interface {
	// RegistrationForm returns the form the issuer of pan wants filled
	// (CodeUnknownAccount when no issuer knows the BIN).
	RegistrationForm(ctx context.Context, pan protocol.PAN) (protocol.RegForm, error)
	// ConfirmAccount checks the account, its expiry (YYYYMM) and the
	// filled form. A Pending decision comes with a reference to ask again.
	ConfirmAccount(ctx context.Context, pan protocol.PAN, expiry string, form []protocol.FormValue) (Decision, string, error)
	// PendingDecision asks again about a Pending confirmation.
	PendingDecision(ctx context.Context, ref string) (Decision, error)
}

// FieldActivationCode is the form field of the registration secret an
// issuer (or acquirer, or brand) gives its customer out of band.
const FieldActivationCode = "activation-code"

// Account is one card account an issuer registers.
type Account struct {
	PAN            string `json:"pan"`
	Expiry         string `json:"expiry"` // YYYYMM
	ActivationCode string `json:"activationCode"`
	// Status is "active" (default), "blocked" (refused) or "review"
	// (Pending until Approve is called).
	Status string `json:"status,omitempty"`
}

// AccountIssuer is a CardIssuer over a fixed set of accounts: the issuer's
// registration feed. It compares secrets in constant time and never puts a
// PAN or a secret in an error.
type AccountIssuer struct {
	mu       sync.Mutex
	accounts map[string]*Account // by PAN
	pending  map[string]string   // reference -> PAN
}

// NewAccountIssuer returns an issuer that knows accounts.
func NewAccountIssuer(accounts []Account) (*AccountIssuer, error) {
	ai := &AccountIssuer{accounts: map[string]*Account{}, pending: map[string]string{}}
	for i := range accounts {
		a := accounts[i]
		if _, err := protocol.NewPAN(a.PAN); err != nil {
			return nil, fmt.Errorf("account %d: %w", i+1, err)
		}
		switch a.Status {
		case "":
			a.Status = "active"
		case "active", "blocked", "review":
		default:
			return nil, fmt.Errorf("account %d: status %q is not active, blocked or review", i+1, a.Status)
		}
		ai.accounts[a.PAN] = &a
	}
	return ai, nil
}

// LoadAccountIssuer reads accounts from a JSON file (an array of Account).
func LoadAccountIssuer(path string) (*AccountIssuer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var accounts []Account
	if err := json.Unmarshal(b, &accounts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return NewAccountIssuer(accounts)
}

func (ai *AccountIssuer) RegistrationForm(_ context.Context, pan protocol.PAN) (protocol.RegForm, error) {
	ai.mu.Lock()
	defer ai.mu.Unlock()
	if ai.accounts[pan.Digits()] == nil {
		return protocol.RegForm{}, &protocol.CheckError{Code: protocol.CodeUnknownAccount, Detail: "the issuer knows no such account"}
	}
	return protocol.RegForm{
		Policy: "Your bank confirms that you hold this card. Enter the activation code it gave you.",
		Fields: []protocol.RegField{{Name: FieldActivationCode, Label: "Activation code", Secret: true}},
	}, nil
}

func (ai *AccountIssuer) ConfirmAccount(_ context.Context, pan protocol.PAN, expiry string, form []protocol.FormValue) (Decision, string, error) {
	ai.mu.Lock()
	defer ai.mu.Unlock()
	a := ai.accounts[pan.Digits()]
	if a == nil {
		return 0, "", &protocol.CheckError{Code: protocol.CodeUnknownAccount, Detail: "the issuer knows no such account"}
	}
	if expiry != a.Expiry {
		return 0, "", &protocol.CheckError{Code: protocol.CodeAccountExpiry, Detail: "the card expiry is not the issuer's"}
	}
	if !secretEqual(formValue(form, FieldActivationCode), a.ActivationCode) {
		return 0, "", &protocol.CheckError{Code: protocol.CodeRegSecret, Detail: "the activation code is wrong"}
	}
	switch a.Status {
	case "blocked":
		return 0, "", &protocol.CheckError{Code: protocol.CodeAccountRefused, Detail: "the issuer refuses to certify this account"}
	case "review":
		ref := fmt.Sprintf("review-%x", sha256.Sum256([]byte("setpay review\x00"+a.PAN)))[:24]
		ai.pending[ref] = a.PAN
		return Pending, ref, nil
	}
	return Approved, "", nil
}

func (ai *AccountIssuer) PendingDecision(_ context.Context, ref string) (Decision, error) {
	ai.mu.Lock()
	defer ai.mu.Unlock()
	pan, ok := ai.pending[ref]
	if !ok {
		return 0, &protocol.CheckError{Code: protocol.CodeUnknownRequest, Detail: "the issuer has no such pending review"}
	}
	switch ai.accounts[pan].Status {
	case "review":
		return Pending, nil
	case "blocked":
		return 0, &protocol.CheckError{Code: protocol.CodeAccountRefused, Detail: "the issuer refused to certify this account"}
	}
	delete(ai.pending, ref)
	return Approved, nil
}

// SetStatus changes an account's status ("active", "blocked", "review"):
// the issuer's back office deciding a review.
func (ai *AccountIssuer) SetStatus(pan, status string) error {
	ai.mu.Lock()
	defer ai.mu.Unlock()
	a := ai.accounts[pan]
	if a == nil {
		return fmt.Errorf("no such account")
	}
	a.Status = status
	return nil
}

// formValue returns the value of the named field, or "".
func formValue(form []protocol.FormValue, name string) string {
	for _, v := range form {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

// secretEqual compares two secrets in constant time (over their hashes, so
// that the length leaks nothing either). An empty expected secret never
// matches.
func secretEqual(got, want string) bool {
	if want == "" {
		return false
	}
	a := sha256.Sum256([]byte(strings.TrimSpace(got)))
	b := sha256.Sum256([]byte(want))
	return hmac.Equal(a[:], b[:])
}
