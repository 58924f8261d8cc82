package ca

import (
	"cmp"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"
	"github.com/smallstep/nosql/database"

	"github.com/setpay/setpay/protocol"
)

// setpay's index of issued certificates, a table in each authority's own
// database. smallstep's table of certificates holds, for an X-Wing
// certificate, the version issued for the placeholder key until setpay
// overwrites it with the final one; this index holds the final DER of every
// certificate with its setpay type, subject and revocation details.
var (
	bucketCerts  = []byte("setpay_certs")  // serial -> entry
	bucketThumbs = []byte("setpay_thumbs") // certificate thumbprint -> serial
)

// entry is the JSON value of the index, keyed by the decimal serial number
// (smallstep's key for its tables).
type entry struct {
	Type       protocol.CertType `json:"type"`
	Subject    string            `json:"subject"`
	NotBefore  time.Time         `json:"notBefore"`
	NotAfter   time.Time         `json:"notAfter"`
	DER        []byte            `json:"der"`
	RevokedAt  *time.Time        `json:"revokedAt,omitempty"` // by the CA's clock
	Reason     Reason            `json:"reason,omitempty"`
	ReasonText string            `json:"reasonText,omitempty"`
}

// Record is one certificate issued by the CA, as [CA.List] reports it.
type Record struct {
	Suite protocol.Suite
	// Issuer is the type of the CA that issued the certificate.
	Issuer    protocol.CertType
	Serial    *big.Int
	Type      protocol.CertType
	Subject   string // RFC 2253 form
	NotBefore time.Time
	NotAfter  time.Time
	Cert      []byte // DER
	// Revoked is whether the certificate is revoked; RevokedAt, Reason and
	// ReasonText say when (by the CA's clock) and why.
	Revoked    bool
	RevokedAt  time.Time
	Reason     Reason
	ReasonText string
}

// Status is "valid", "expired" or "revoked (reason)" at time now.
func (r Record) Status(now time.Time) string {
	switch {
	case r.Revoked:
		return "revoked (" + r.Reason.String() + ")"
	case now.After(r.NotAfter):
		return "expired"
	case now.Before(r.NotBefore):
		return "not yet valid"
	}
	return "valid"
}

// record adds an issued certificate to the index. For an X-Wing certificate
// it also replaces smallstep's copy (issued for the placeholder key) with
// the final certificate.
func (a *Authority) record(c *protocol.Cert, replace bool) error {
	key := []byte(c.X509.SerialNumber.String())
	e := entry{Type: c.Type, Subject: c.X509.Subject.String(), NotBefore: c.X509.NotBefore,
		NotAfter: c.X509.NotAfter, DER: c.X509.Raw}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if replace {
		if err := a.db.StoreCertificate(c.X509); err != nil {
			return fmt.Errorf("ca: %s %s database: %w", a.Suite, a.name, err)
		}
	}
	// One transaction (one fsync with bbolt). The serial number is fresh:
	// template drew it and found it unused.
	tx := new(database.Tx)
	tx.Set(bucketCerts, key, v)
	tx.Set(bucketThumbs, c.Thumb[:], key)
	if err := a.db.Update(tx); err != nil {
		return fmt.Errorf("ca: %s %s database: %w", a.Suite, a.name, err)
	}
	return nil
}

// serialOf returns the serial number of the certificate with thumbprint th,
// if the authority issued it.
func (a *Authority) serialOf(th protocol.Thumbprint) (*big.Int, bool, error) {
	v, err := a.db.Get(bucketThumbs, th[:])
	switch {
	case nosql.IsErrNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("ca: %s %s database: %w", a.Suite, a.name, err)
	}
	serial, ok := new(big.Int).SetString(string(v), 10)
	if !ok {
		return nil, false, fmt.Errorf("ca: %s %s index: bad serial %q", a.Suite, a.name, v)
	}
	return serial, true, nil
}

// lookup returns the index entry of serial, or ok false.
func (a *Authority) lookup(serial *big.Int) (entry, bool, error) {
	var e entry
	v, err := a.db.Get(bucketCerts, []byte(serial.String()))
	switch {
	case nosql.IsErrNotFound(err):
		return e, false, nil
	case err != nil:
		return e, false, fmt.Errorf("ca: %s %s database: %w", a.Suite, a.name, err)
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return e, false, fmt.Errorf("ca: %s %s index: %w", a.Suite, a.name, err)
	}
	return e, true, nil
}

// update rewrites the index entry of serial.
func (a *Authority) update(serial *big.Int, e entry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := a.db.Set(bucketCerts, []byte(serial.String()), v); err != nil {
		return fmt.Errorf("ca: %s %s database: %w", a.Suite, a.name, err)
	}
	return nil
}

// revoked returns smallstep's revocation table of the authority, by decimal
// serial: the authoritative record of what is revoked.
func (a *Authority) revoked() (map[string]db.RevokedCertificateInfo, error) {
	list, err := a.db.GetRevokedCertificates()
	if err != nil {
		return nil, fmt.Errorf("ca: %s %s revocation table: %w", a.Suite, a.name, err)
	}
	m := map[string]db.RevokedCertificateInfo{}
	if list != nil {
		for _, r := range *list {
			m[r.Serial] = r
		}
	}
	return m, nil
}

// records returns the certificates the authority issued.
func (a *Authority) records() ([]Record, error) {
	entries, err := a.db.List(bucketCerts)
	if err != nil {
		return nil, fmt.Errorf("ca: %s %s database: %w", a.Suite, a.name, err)
	}
	rev, err := a.revoked()
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, kv := range entries {
		var e entry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("ca: %s %s index: %w", a.Suite, a.name, err)
		}
		serial, ok := new(big.Int).SetString(string(kv.Key), 10)
		if !ok {
			return nil, fmt.Errorf("ca: %s %s index: bad serial %q", a.Suite, a.name, kv.Key)
		}
		r := Record{Suite: a.Suite, Issuer: a.Type, Serial: serial, Type: e.Type, Subject: e.Subject,
			NotBefore: e.NotBefore, NotAfter: e.NotAfter, Cert: e.DER}
		if ri, ok := rev[string(kv.Key)]; ok {
			r.Revoked, r.Reason, r.ReasonText, r.RevokedAt = true, Reason(ri.ReasonCode), ri.Reason, ri.RevokedAt
			if e.RevokedAt != nil {
				r.RevokedAt = *e.RevokedAt
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// List returns every certificate the CA's authorities issued (all but the
// roots), by suite, issuing CA, date of issue and serial number.
func (c *CA) List() ([]Record, error) {
	var out []Record
	for _, h := range c.hs {
		for _, a := range h.Authorities() {
			rs, err := a.records()
			if err != nil {
				return nil, err
			}
			slices.SortFunc(rs, func(x, y Record) int {
				return cmp.Or(x.NotBefore.Compare(y.NotBefore), x.Serial.Cmp(y.Serial))
			})
			out = append(out, rs...)
		}
	}
	return out, nil
}

// ErrNotFound is returned (wrapped) when no authority of the CA issued a
// certificate with the given serial number.
var ErrNotFound = errors.New("ca: no such certificate")

// find returns the authority that issued serial and its index entry.
func (c *CA) find(serial *big.Int) (*Authority, entry, error) {
	for _, h := range c.hs {
		for _, a := range h.Authorities() {
			e, ok, err := a.lookup(serial)
			if err != nil {
				return nil, e, err
			}
			if ok {
				return a, e, nil
			}
		}
	}
	return nil, entry{}, fmt.Errorf("%w with serial number %s", ErrNotFound, serial)
}

// parsed returns the index entry's certificate parsed.
func (e entry) parsed() (*x509.Certificate, error) {
	x, err := x509.ParseCertificate(e.DER)
	if err != nil {
		return nil, fmt.Errorf("ca: indexed certificate: %w", err)
	}
	return x, nil
}
