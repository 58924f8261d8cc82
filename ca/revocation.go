package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"

	"github.com/setpay/setpay/protocol"
)

// Reason is an RFC 5280 CRLReason (section 5.3.1).
type Reason int

// The reasons a certificate can be revoked with. certificateHold (6) and
// removeFromCRL (8) are not: setpay has no way back from a revocation.
const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonPrivilegeWithdrawn   Reason = 9
	ReasonAACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

// String returns the RFC 5280 name of r, such as "keyCompromise".
func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason returns the reason named s (its RFC 5280 name, in any case).
func ParseReason(s string) (Reason, error) {
	for r, n := range reasonNames {
		if strings.EqualFold(n, s) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("ca: no revocation reason %q (one of %s)", s, strings.Join(ReasonNames(), ", "))
}

// ReasonNames returns the names of the reasons a certificate can be revoked
// with, in code order.
func ReasonNames() []string {
	var rs []Reason
	for r := range reasonNames {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

// ErrRevoked is returned (wrapped) when revoking a certificate that is
// already revoked.
var ErrRevoked = errors.New("ca: already revoked")

// Revoke revokes the certificate with the given serial number, which this
// authority issued: smallstep records it in the authority's revocation
// table, and the authority's CRL is generated again at once.
func (a *Authority) Revoke(ctx context.Context, serial *big.Int, reason Reason, text string) error {
	if _, ok := reasonNames[reason]; !ok {
		return fmt.Errorf("ca: cannot revoke with reason %d", int(reason))
	}
	e, ok, err := a.lookup(serial)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: the %s %s issued no serial number %s", ErrNotFound, a.Suite, a.Type, serial)
	}
	x, err := e.parsed()
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if revoked, err := a.step.IsRevoked(serial.String()); err != nil {
		return fmt.Errorf("ca: %s %s: %w", a.Suite, a.name, err)
	} else if revoked {
		return fmt.Errorf("%w: %s certificate %s", ErrRevoked, e.Type, serial)
	}
	now := a.h.ca.now().UTC().Truncate(time.Second)
	err = a.step.Revoke(provisioner.NewContextWithMethod(ctx, provisioner.RevokeMethod), &authority.RevokeOptions{
		Serial:     serial.String(),
		ReasonCode: int(reason),
		Reason:     text,
		MTLS:       true, // the CA's own decision, not a token holder's request
		Crt:        x,
	})
	if err != nil {
		return fmt.Errorf("ca: %s %s: revoking %s: %w", a.Suite, a.name, serial, err)
	}
	// smallstep stamps the revocation with time.Now; the index keeps the
	// CA's clock, which the CRL uses.
	e.RevokedAt, e.Reason, e.ReasonText = &now, reason, text
	if err := a.update(serial, e); err != nil {
		return err
	}
	_, err = a.generateCRL(now)
	return err
}

// CRL returns the authority's current CRL (DER). A CRL is valid for
// Options.CRLValidity from its thisUpdate; CRL issues a new one (with the
// next CRL number) once half of that has passed, or when the clock is
// before the current one's thisUpdate.
func (a *Authority) CRL() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.h.ca.now().UTC().Truncate(time.Second)
	info, err := a.db.GetCRL()
	switch {
	case nosql.IsErrNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("ca: %s %s CRL: %w", a.Suite, a.name, err)
	default:
		thisUpdate := info.ExpiresAt.Add(-info.Duration)
		if !now.Before(thisUpdate) && now.Before(thisUpdate.Add(info.Duration/2)) {
			return info.DER, nil
		}
	}
	info, err = a.generateCRL(now)
	if err != nil {
		return nil, err
	}
	return info.DER, nil
}

// generateCRL signs a new CRL of the authority, valid from now, listing
// every certificate in its revocation table that has not expired, and
// stores it as the authority's CRL (smallstep's CRL table). The caller holds
// a.mu.
//
// setpay builds the CRL itself instead of running smallstep's CRL generator,
// because that takes thisUpdate, nextUpdate and revocation times from
// time.Now: these take them from the CA's clock, so that a CRL agrees with
// the Trust of the same clock and a fixed clock gives byte-identical CRLs.
func (a *Authority) generateCRL(now time.Time) (*db.CertificateRevocationListInfo, error) {
	var number int64 = 1
	switch prev, err := a.db.GetCRL(); {
	case nosql.IsErrNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("ca: %s %s CRL: %w", a.Suite, a.name, err)
	default:
		number = prev.Number + 1
	}
	rev, err := a.revoked()
	if err != nil {
		return nil, err
	}
	var entries []x509.RevocationListEntry
	for s, ri := range rev {
		if !ri.ExpiresAt.IsZero() && ri.ExpiresAt.Before(now) {
			continue // an expired certificate needs no listing (RFC 5280, 3.3)
		}
		serial, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("ca: %s %s revocation table: bad serial %q", a.Suite, a.name, s)
		}
		at := ri.RevokedAt
		if e, ok, err := a.lookup(serial); err != nil {
			return nil, err
		} else if ok && e.RevokedAt != nil {
			at = *e.RevokedAt
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   serial,
			RevocationTime: at.UTC().Truncate(time.Second),
			ReasonCode:     ri.ReasonCode,
		})
	}
	slices.SortFunc(entries, func(x, y x509.RevocationListEntry) int { return x.SerialNumber.Cmp(y.SerialNumber) })
	validity := a.h.ca.o.CRLValidity
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                now,
		NextUpdate:                now.Add(validity),
	}
	// The signer is deterministic and ignores the reader.
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.x509, a.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: %s %s CRL: %w", a.Suite, a.name, err)
	}
	info := &db.CertificateRevocationListInfo{Number: number, ExpiresAt: tmpl.NextUpdate, Duration: validity, DER: der}
	if err := a.db.StoreCRL(info); err != nil {
		return nil, fmt.Errorf("ca: %s %s CRL: %w", a.Suite, a.name, err)
	}
	return info, nil
}

// Revoke revokes the certificate with the given serial number, issued by any
// authority of the CA (found through the index).
func (c *CA) Revoke(ctx context.Context, serial *big.Int, reason Reason, text string) error {
	a, _, err := c.find(serial)
	if err != nil {
		return err
	}
	return a.Revoke(ctx, serial, reason, text)
}

// RevokeCertificate revokes the certificate with thumbprint th, issued by
// any authority of the CA.
func (c *CA) RevokeCertificate(ctx context.Context, th protocol.Thumbprint, reason Reason, text string) error {
	for _, h := range c.hs {
		for _, a := range h.Authorities() {
			serial, ok, err := a.serialOf(th)
			if err != nil {
				return err
			}
			if ok {
				return a.Revoke(ctx, serial, reason, text)
			}
		}
	}
	return fmt.Errorf("%w with thumbprint %x", ErrNotFound, th[:8])
}

// bciState is the brand's record of the BCI in force, in the brand CA's
// database: reissued (with the next number) when a listed CRL changes or it
// expires, otherwise signed again identically.
type bciState struct {
	Number     int64                 `json:"number"`
	ThisUpdate time.Time             `json:"thisUpdate"`
	NextUpdate time.Time             `json:"nextUpdate"`
	CRLs       []protocol.Thumbprint `json:"crls"`
}

var (
	bucketState = []byte("setpay_state")
	keyBCI      = []byte("bci")
)

// BCI returns the Brand CRL Identifier in force for the hierarchy, signed by
// the brand CA: it lists the current CRL of the root, the brand and each role
// CA (see [Authority.CRL]), except a role CA that is itself revoked (the
// brand's CRL revokes everything below it, and a relying party could not
// check its CRL). Its number increases with every change of a listed CRL;
// its nextUpdate is the earliest nextUpdate of the CRLs. The BCI carries the
// brand and role CA certificates, so that a relying party with the root can
// check it and the CRLs alone.
func (h *Hierarchy) BCI(ctx context.Context) (*protocol.BCI, error) {
	bci, _, err := h.revocation(ctx)
	return bci, err
}

// CRLs returns the CRLs the BCI lists (DER): the current CRLs of the root,
// the brand and the role CAs that are not revoked, in that order.
func (h *Hierarchy) CRLs() ([][]byte, error) {
	_, crls, err := h.crls()
	return crls, err
}

// crls returns the authorities whose CRLs the BCI lists, and those CRLs.
func (h *Hierarchy) crls() ([]*Authority, [][]byte, error) {
	var as []*Authority
	var out [][]byte
	for _, a := range h.Authorities() {
		if a.Type.Issuer() == protocol.CertBrandCA {
			x, err := x509.ParseCertificate(a.Cert)
			if err != nil {
				return nil, nil, fmt.Errorf("ca: %w", err)
			}
			if revoked, err := h.Brand.step.IsRevoked(x.SerialNumber.String()); err != nil {
				return nil, nil, fmt.Errorf("ca: %s brand database: %w", h.Suite, err)
			} else if revoked {
				continue
			}
		}
		d, err := a.CRL()
		if err != nil {
			return nil, nil, err
		}
		as, out = append(as, a), append(out, d)
	}
	return as, out, nil
}

// revocation returns the BCI in force and the CRLs it lists.
func (h *Hierarchy) revocation(ctx context.Context) (*protocol.BCI, [][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	h.bciMu.Lock()
	defer h.bciMu.Unlock()
	as, crls, err := h.crls()
	if err != nil {
		return nil, nil, err
	}
	now := h.ca.now().UTC().Truncate(time.Second)
	refs := make([]protocol.CRLRef, len(crls))
	thumbs := make([]protocol.Thumbprint, len(crls))
	var next time.Time
	for i, a := range as {
		crl, err := x509.ParseRevocationList(crls[i])
		if err != nil {
			return nil, nil, fmt.Errorf("ca: %s %s CRL: %w", h.Suite, a.name, err)
		}
		thumbs[i] = protocol.ThumbprintOf(crls[i])
		refs[i] = protocol.CRLRef{Issuer: protocol.ThumbprintOf(a.Cert), Number: crl.Number.Int64(), CRL: thumbs[i]}
		if next.IsZero() || crl.NextUpdate.Before(next) {
			next = crl.NextUpdate
		}
	}
	bdb := h.Brand.db
	var st bciState
	switch v, err := bdb.Get(bucketState, keyBCI); {
	case nosql.IsErrNotFound(err):
	case err != nil:
		return nil, nil, fmt.Errorf("ca: %s brand database: %w", h.Suite, err)
	default:
		if err := json.Unmarshal(v, &st); err != nil {
			return nil, nil, fmt.Errorf("ca: %s BCI state: %w", h.Suite, err)
		}
	}
	if st.Number == 0 || !slices.Equal(st.CRLs, thumbs) || now.Before(st.ThisUpdate) || !now.Before(st.NextUpdate) {
		st = bciState{Number: st.Number + 1, ThisUpdate: now, NextUpdate: next, CRLs: thumbs}
		v, err := json.Marshal(st)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: %w", err)
		}
		if err := bdb.Set(bucketState, keyBCI, v); err != nil {
			return nil, nil, fmt.Errorf("ca: %s brand database: %w", h.Suite, err)
		}
	}
	certs := [][]byte{h.Brand.Cert, h.Cardholder.Cert, h.Merchant.Cert, h.Gateway.Cert}
	bci, err := protocol.NewBCI(h.Brand.signer, certs, protocol.BCIData{
		Suite: h.Suite, Brand: h.brand, Number: st.Number,
		ThisUpdate: st.ThisUpdate, NextUpdate: st.NextUpdate, CRLs: refs,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %s BCI: %w", h.Suite, err)
	}
	return bci, crls, nil
}

// Trust returns a protocol.Trust anchored at the roots of every suite of
// the CA, on the CA's clock, with the revocation state of the current BCIs
// and CRLs. It fails closed: if the revocation state cannot be loaded (see
// [CA.TrustContext] for the error), the Trust judges every certificate
// revoked.
func (c *CA) Trust() *protocol.Trust {
	t, err := c.TrustContext(context.Background())
	if err != nil {
		t, _ = c.trustAnchors()
		if t == nil {
			t = &protocol.Trust{}
		}
		t.Revoked = func(*x509.Certificate) bool { return true }
	}
	return t
}

// TrustContext is [CA.Trust] with a context and the error.
func (c *CA) TrustContext(ctx context.Context) (*protocol.Trust, error) {
	t, err := c.trustAnchors()
	if err != nil {
		return nil, err
	}
	for _, h := range c.hs {
		bci, crls, err := h.revocation(ctx)
		if err != nil {
			return nil, err
		}
		if err := t.UpdateRevocation(bci, crls, nil); err != nil {
			return nil, fmt.Errorf("ca: %s revocation: %w", h.Suite, err)
		}
	}
	return t, nil
}

// trustAnchors returns a Trust of the CA's roots and clock, without
// revocation.
func (c *CA) trustAnchors() (*protocol.Trust, error) {
	var roots [][]byte
	for _, h := range c.hs {
		roots = append(roots, h.Root.Cert)
	}
	t, err := protocol.NewTrust(roots...)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	t.Now = c.now
	return t, nil
}
