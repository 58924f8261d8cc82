package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/certificates/db"

	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/protocol"
)

// DefaultBrand is the brand name of a CA initialised without one.
const DefaultBrand = "setpay"

// DefaultHosts are the names of the CA server's TLS certificate when
// Options.Hosts is empty.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// Options configure [Init] and [Open]. The zero value is usable.
type Options struct {
	// Suites are the hierarchies to create (Init; default protocol.Suites)
	// or to load (Open; default every suite the directory holds).
	Suites []protocol.Suite
	// Brand is the brand name (SET's BrandID) in every certificate, 1 to 40
	// characters; default DefaultBrand. Open checks it if it is set.
	Brand string
	// Passphrase encrypts the private keys on disk (Init) and decrypts them
	// (Open). Empty: the keys are stored unencrypted.
	Passphrase []byte
	// Rand is the source of every key, serial number, salt and IV; default
	// crypto/rand.Reader. A seeded reader makes Init reproducible.
	Rand io.Reader
	// Now is the CA's clock (validity periods, CRLs, BCIs, revocation
	// times); default time.Now.
	Now func() time.Time
	// Hosts are the DNS names and IP addresses of the CA server's TLS
	// certificate (Init); default DefaultHosts.
	Hosts []string
	// Validity is the default validity of end-entity certificates; zero
	// means one year. CA certificates have fixed validities (root 10 years,
	// brand 5, role CAs 3).
	Validity time.Duration
	// CRLValidity is the time from a CRL's thisUpdate to its nextUpdate;
	// default 24 hours.
	CRLValidity time.Duration
	// DB selects the database of each authority; default bbolt files in
	// the CA directory.
	DB DBOptions
}

// DBOptions select the databases of the authorities. Every authority (root,
// brand and the three role CAs of each suite) has a database of its own,
// because a smallstep database holds one CRL. Any driver of smallstep's
// nosql works: "bbolt" (the default: one file per authority, DIR/<suite>/db/
// <ca>.db), "badgerv2" (a directory), "mysql" and "postgresql" (a DSN). For
// larger deployments use PostgreSQL, for example
//
//	DBOptions{Type: "postgresql", DataSource: "postgresql://setpay@db.example:5432/",
//		Database: "setpay_{suite}_{ca}"}
//
// which smallstep turns into one database per authority, created on first
// use. The bbolt files are locked while a CA has them open: one process at
// a time.
type DBOptions struct {
	// Type is the smallstep nosql driver; default "bbolt".
	Type string
	// DataSource is the file, directory or DSN, in which "{dir}", "{suite}"
	// and "{ca}" are replaced by the CA directory, the suite name (pq, nist)
	// and the authority's name (root, brand, cardholder-ca, merchant-ca,
	// gateway-ca). Default for bbolt "{dir}/{suite}/db/{ca}.db", for
	// badgerv2 "{dir}/{suite}/db/{ca}"; required for the others.
	DataSource string
	// Database is the database name on a server (PostgreSQL, MySQL), with
	// the same replacements; it overrides one given in the DSN.
	Database string
}

func (d DBOptions) config(dir string, s protocol.Suite, ca string) *db.Config {
	r := strings.NewReplacer("{dir}", dir, "{suite}", s.String(), "{ca}", ca)
	typ, ds := d.Type, d.DataSource
	if typ == "" {
		typ = "bbolt"
	}
	if ds == "" {
		switch typ {
		case "bbolt":
			ds = filepath.Join("{dir}", "{suite}", dirDB, "{ca}.db")
		case "badgerv2", "badger", "badgerv1":
			ds = filepath.Join("{dir}", "{suite}", dirDB, "{ca}")
		}
	}
	return &db.Config{Type: typ, DataSource: r.Replace(ds), Database: r.Replace(d.Database)}
}

// CA is an opened certificate authority: the hierarchies of its suites,
// each authority with its embedded smallstep authority. Its methods are safe
// for concurrent use. Close it when done: its databases stay locked until
// then.
type CA struct {
	dir   string
	o     Options
	rand  io.Reader        // o.Rand, safe for concurrent use
	now   func() time.Time // o.Now
	brand string
	hs    []*Hierarchy
}

// Hierarchy is the SET hierarchy of one suite: Root -> Brand -> Cardholder,
// Merchant and Gateway CAs.
type Hierarchy struct {
	Suite                                      protocol.Suite
	Root, Brand, Cardholder, Merchant, Gateway *Authority
	// TLS is the CA server's TLS certificate (type protocol.CertCATLS, an
	// ECDSA P-256 key), issued by the brand CA, with the brand CA
	// certificate as its chain.
	TLS tls.Certificate

	brand string
	ca    *CA
	bciMu sync.Mutex
}

// Authorities returns the root, brand, cardholder, merchant and gateway CAs,
// in that order.
func (h *Hierarchy) Authorities() []*Authority {
	return []*Authority{h.Root, h.Brand, h.Cardholder, h.Merchant, h.Gateway}
}

// roleCA returns the CA that certifies parties of role r.
func (h *Hierarchy) roleCA(r protocol.Role) *Authority {
	if p := h.roleSlot(r.CAType()); p != nil {
		return *p
	}
	return nil
}

// roleSlot returns the field of the role CA of type t, or nil.
func (h *Hierarchy) roleSlot(t protocol.CertType) **Authority {
	switch t {
	case protocol.CertCardholderCA:
		return &h.Cardholder
	case protocol.CertMerchantCA:
		return &h.Merchant
	case protocol.CertGatewayCA:
		return &h.Gateway
	}
	return nil
}

// keys returns a role CA's registration keys.
func (a *Authority) keys() *protocol.CAKeys { return &protocol.CAKeys{Sig: a.Sig, KE: a.KE} }

// The role CAs of a hierarchy: type, file and database name, and the name in
// their subjects.
var roleCAs = []struct {
	t     protocol.CertType
	name  string
	label string
}{
	{protocol.CertCardholderCA, "cardholder-ca", "cardholder CA"},
	{protocol.CertMerchantCA, "merchant-ca", "merchant CA"},
	{protocol.CertGatewayCA, "gateway-ca", "payment gateway CA"},
}

// subject is the subject name of the hierarchy's own certificates.
func (h *Hierarchy) subject(what string) pkix.Name {
	return pkix.Name{Organization: []string{h.brand}, CommonName: fmt.Sprintf("%s %s (%s)", h.brand, what, h.Suite)}
}

// normalize fills in defaults and checks o.
func (o Options) normalize(init bool) (Options, error) {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if init && o.Brand == "" {
		o.Brand = DefaultBrand
	}
	if n := len([]rune(o.Brand)); o.Brand != "" && n > 40 {
		return o, fmt.Errorf("ca: brand name %q is longer than 40 characters", o.Brand)
	}
	if init && len(o.Suites) == 0 {
		o.Suites = protocol.Suites
	}
	var suites []protocol.Suite
	for _, s := range o.Suites {
		if !s.Valid() {
			return o, fmt.Errorf("ca: invalid suite %d", s)
		}
		if !slices.Contains(suites, s) {
			suites = append(suites, s)
		}
	}
	o.Suites = suites
	if len(o.Hosts) == 0 {
		o.Hosts = DefaultHosts
	}
	for _, h := range o.Hosts {
		if h == "" || strings.ContainsAny(h, " \t\n/") {
			return o, fmt.Errorf("ca: %q is not a host name or IP address", h)
		}
	}
	if o.Validity < 0 || o.CRLValidity < 0 {
		return o, errors.New("ca: negative validity")
	}
	if o.CRLValidity == 0 {
		o.CRLValidity = 24 * time.Hour
	}
	if t := o.DB.Type; t != "" && t != "bbolt" && !strings.HasPrefix(t, "badger") && o.DB.DataSource == "" {
		return o, fmt.Errorf("ca: a %s database needs a DataSource", t)
	}
	return o, nil
}

func newCA(dir string, o Options) *CA {
	return &CA{dir: dir, o: o, rand: &lockedReader{r: o.Rand}, now: o.Now, brand: o.Brand}
}

// endEntityNotAfter is the default end of validity of an end-entity
// certificate issued at now.
func (c *CA) endEntityNotAfter(now time.Time) time.Time {
	if c.o.Validity == 0 {
		return now.AddDate(1, 0, 0)
	}
	return now.Add(c.o.Validity)
}

// Init creates a CA in dir, which must not exist or be empty: for each suite
// the keys and certificates of the hierarchy, the CA server's TLS
// certificate, the role CAs' registration certificates, the databases and
// a first CRL of every CA and BCI. On failure it removes what it created.
// Open the CA with [Open].
func Init(dir string, o Options) (err error) {
	o, err = o.normalize(true)
	if err != nil {
		return err
	}
	created, err := prepareDir(dir)
	if err != nil {
		return err
	}
	c := newCA(dir, o)
	defer func() {
		if err != nil {
			c.Close()
			cleanDir(dir, created)
		}
	}()
	ctx := context.Background()
	for _, s := range o.Suites {
		h, err := c.initHierarchy(ctx, s)
		if h != nil {
			c.hs = append(c.hs, h)
		}
		if err != nil {
			return err
		}
	}
	return c.Close()
}

// prepareDir creates dir (0700) or checks that it is an empty directory. It
// reports whether it created it.
func prepareDir(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, keyfile.PermDir); err != nil {
			return false, fmt.Errorf("ca: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("ca: %w", err)
	case len(ents) > 0:
		return false, fmt.Errorf("ca: %s is not empty; Init refuses to overwrite a CA", dir)
	}
	return false, nil
}

// cleanDir removes what a failed Init created.
func cleanDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// initHierarchy creates the hierarchy of suite s. It returns what it
// started, even on failure, for Close.
func (c *CA) initHierarchy(ctx context.Context, s protocol.Suite) (*Hierarchy, error) {
	d := c.suiteDir(s)
	if err := os.MkdirAll(filepath.Join(d, dirDB), keyfile.PermDir); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if err := os.Chmod(d, keyfile.PermDir); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	h := &Hierarchy{Suite: s, brand: c.brand, ca: c}

	// The root: self-signed with crypto/x509, then its authority.
	rootKey, err := keyfile.NewSigningKey(c.rand, s)
	if err != nil {
		return nil, err
	}
	rootDER, err := h.selfSign(rootKey, h.subject("root CA"))
	if err != nil {
		return nil, err
	}
	if err := h.writeCA("root", rootDER, rootKey); err != nil {
		return nil, err
	}
	if h.Root, err = h.start(protocol.CertRootCA, "root", rootDER, rootKey, nil); err != nil {
		return nil, err
	}

	// The brand and role CAs, each issued by its parent's authority.
	sub := func(parent *Authority, t protocol.CertType, name, label string) (*Authority, error) {
		key, err := keyfile.NewSigningKey(c.rand, s)
		if err != nil {
			return nil, err
		}
		der, err := parent.Issue(ctx, IssueRequest{Type: t, Subject: h.subject(label), Public: key.Public()})
		if err != nil {
			return nil, err
		}
		if err := h.writeCA(name, der, key); err != nil {
			return nil, err
		}
		return h.start(t, name, der, key, append([][]byte{der}, parent.Chain...))
	}
	if h.Brand, err = sub(h.Root, protocol.CertBrandCA, "brand", "brand CA"); err != nil {
		return h, err
	}
	for _, r := range roleCAs {
		a, err := sub(h.Brand, r.t, r.name, r.label)
		if err != nil {
			return h, err
		}
		*h.roleSlot(r.t) = a
	}
	if err := keyfile.WriteCerts(filepath.Join(d, fileChain), h.Brand.Cert, h.Cardholder.Cert, h.Merchant.Cert, h.Gateway.Cert); err != nil {
		return h, err
	}

	// The CA server's TLS certificate, issued by the brand CA.
	tlsKey, err := keyfile.NewP256Key(c.rand)
	if err != nil {
		return h, err
	}
	req := IssueRequest{Type: protocol.CertCATLS, Subject: h.subject("CA server"), Public: tlsKey.Public()}
	for _, host := range c.o.Hosts {
		if ip := net.ParseIP(host); ip != nil {
			req.IPAddresses = append(req.IPAddresses, ip)
		} else {
			req.DNSNames = append(req.DNSNames, host)
		}
	}
	tlsDER, err := h.Brand.Issue(ctx, req)
	if err != nil {
		return h, err
	}
	if err := h.writeCA(fileTLS, tlsDER, tlsKey); err != nil {
		return h, err
	}
	if h.TLS, err = tlsCertificate(tlsDER, h.Brand.Cert, tlsKey); err != nil {
		return h, err
	}

	// The role CAs' registration certificates, issued by themselves.
	for _, r := range roleCAs {
		a := *h.roleSlot(r.t)
		sigT, keT, _ := r.t.RegistrationTypes()
		subject := h.subject(r.label + " registration")
		sk, err := keyfile.NewSigningKey(c.rand, s)
		if err != nil {
			return h, err
		}
		sigDER, err := a.Issue(ctx, IssueRequest{Type: sigT, Subject: subject, Public: sk.Public()})
		if err != nil {
			return h, err
		}
		kpub, kpriv, err := keyfile.NewKEMKey(c.rand, s)
		if err != nil {
			return h, err
		}
		keDER, err := a.Issue(ctx, IssueRequest{Type: keT, Subject: subject, Public: kpub})
		if err != nil {
			return h, err
		}
		if err := h.writeCA(r.name+suffixSig, sigDER, sk); err != nil {
			return h, err
		}
		if err := h.writeCA(r.name+suffixKE, keDER, kpriv); err != nil {
			return h, err
		}
		if a.Sig, err = protocol.NewSigningKey(sk, append([][]byte{sigDER}, a.Chain...)); err != nil {
			return h, fmt.Errorf("ca: %w", err)
		}
		if a.KE, err = protocol.NewKeyExchangeKey(kpriv, append([][]byte{keDER}, a.Chain...)); err != nil {
			return h, fmt.Errorf("ca: %w", err)
		}
	}

	// A first CRL of every CA, and the first BCI.
	if _, err := h.BCI(ctx); err != nil {
		return h, err
	}
	return h, nil
}

// writeCA writes NAME.pem and NAME.key in the hierarchy's directory.
func (h *Hierarchy) writeCA(name string, certDER []byte, key any) error {
	d := h.ca.suiteDir(h.Suite)
	if err := keyfile.WriteCerts(filepath.Join(d, name+".pem"), certDER); err != nil {
		return err
	}
	return h.ca.keys().WriteKey(filepath.Join(d, name+".key"), h.Suite, key)
}

func tlsCertificate(certDER, brandDER []byte, key crypto.Signer) (tls.Certificate, error) {
	x, err := x509.ParseCertificate(certDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{certDER, brandDER}, PrivateKey: key, Leaf: x}, nil
}

// Open opens the CA in dir: it reads the keys and certificates of its
// suites (decrypting the keys with Options.Passphrase; a wrong one gives an
// error wrapping [ErrPassphrase]), checks them, and starts every
// authority.
func Open(dir string, o Options) (_ *CA, err error) {
	o, err = o.normalize(false)
	if err != nil {
		return nil, err
	}
	if len(o.Suites) == 0 {
		for _, s := range protocol.Suites {
			if _, err := os.Stat(filepath.Join(dir, s.String(), "root.pem")); err == nil {
				o.Suites = append(o.Suites, s)
			}
		}
		if len(o.Suites) == 0 {
			return nil, fmt.Errorf("ca: %s holds no CA (no <suite>/root.pem)", dir)
		}
	}
	c := newCA(dir, o)
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, s := range o.Suites {
		h, err := c.openHierarchy(s)
		if h != nil {
			c.hs = append(c.hs, h)
		}
		if err != nil {
			return nil, err
		}
		if c.brand == "" {
			c.brand = h.brand
		}
		if h.brand != c.brand {
			return nil, fmt.Errorf("ca: the %s hierarchy is of brand %q, not %q", s, h.brand, c.brand)
		}
	}
	return c, nil
}

// openHierarchy loads and starts the hierarchy of suite s.
func (c *CA) openHierarchy(s protocol.Suite) (*Hierarchy, error) {
	d := c.suiteDir(s)
	h := &Hierarchy{Suite: s, ca: c}
	// load reads NAME.pem and NAME.key and checks the certificate's type
	// and issuer.
	load := func(name string, t protocol.CertType, issuer *Authority) ([]byte, crypto.Signer, error) {
		der, err := keyfile.ReadCert(filepath.Join(d, name+".pem"))
		if err != nil {
			return nil, nil, err
		}
		pc, err := protocol.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: %s/%s.pem: %w", s, name, err)
		}
		if pc.Type != t {
			return nil, nil, fmt.Errorf("ca: %s/%s.pem is a %s certificate, want %s", s, name, pc.Type, t)
		}
		parent := pc.X509
		if issuer != nil {
			parent = issuer.x509
		}
		if err := pc.X509.CheckSignatureFrom(parent); err != nil {
			return nil, nil, fmt.Errorf("ca: %s/%s.pem: %w", s, name, err)
		}
		if t == protocol.CertRootCA {
			h.brand = pc.Brand
			if c.o.Brand != "" && pc.Brand != c.o.Brand {
				return nil, nil, fmt.Errorf("ca: the %s CA is of brand %q, not %q", s, pc.Brand, c.o.Brand)
			}
		}
		if t.IsKeyExchange() {
			return der, nil, nil
		}
		key, err := c.keys().ReadSigner(filepath.Join(d, name+".key"), der)
		return der, key, err
	}

	rootDER, rootKey, err := load("root", protocol.CertRootCA, nil)
	if err != nil {
		return nil, err
	}
	if h.Root, err = h.start(protocol.CertRootCA, "root", rootDER, rootKey, nil); err != nil {
		return nil, err
	}
	brandDER, brandKey, err := load("brand", protocol.CertBrandCA, h.Root)
	if err != nil {
		return h, err
	}
	if h.Brand, err = h.start(protocol.CertBrandCA, "brand", brandDER, brandKey, [][]byte{brandDER}); err != nil {
		return h, err
	}
	for _, r := range roleCAs {
		der, key, err := load(r.name, r.t, h.Brand)
		if err != nil {
			return h, err
		}
		a, err := h.start(r.t, r.name, der, key, [][]byte{der, brandDER})
		if err != nil {
			return h, err
		}
		*h.roleSlot(r.t) = a

		sigT, keT, _ := r.t.RegistrationTypes()
		sigDER, sk, err := load(r.name+suffixSig, sigT, a)
		if err != nil {
			return h, err
		}
		if a.Sig, err = protocol.NewSigningKey(sk, append([][]byte{sigDER}, a.Chain...)); err != nil {
			return h, fmt.Errorf("ca: %s/%s%s: %w", s, r.name, suffixSig, err)
		}
		keDER, _, err := load(r.name+suffixKE, keT, a)
		if err != nil {
			return h, err
		}
		kk, err := c.keys().ReadKEM(filepath.Join(d, r.name+suffixKE+".key"), s)
		if err != nil {
			return h, err
		}
		if a.KE, err = protocol.NewKeyExchangeKey(kk, append([][]byte{keDER}, a.Chain...)); err != nil {
			return h, fmt.Errorf("ca: %s/%s%s.key: %w", s, r.name, suffixKE, err)
		}
	}
	tlsDER, tlsKey, err := load(fileTLS, protocol.CertCATLS, h.Brand)
	if err != nil {
		return h, err
	}
	if h.TLS, err = tlsCertificate(tlsDER, brandDER, tlsKey); err != nil {
		return h, err
	}
	return h, nil
}

// Close stops every authority and closes its database.
func (c *CA) Close() error {
	var errs []error
	for _, h := range c.hs {
		for _, a := range h.Authorities() {
			if a != nil && a.step != nil {
				if err := a.step.Shutdown(); err != nil {
					errs = append(errs, fmt.Errorf("ca: closing the %s %s database: %w", h.Suite, a.name, err))
				}
				a.step = nil
			}
		}
	}
	c.hs = nil
	return errors.Join(errs...)
}

// Dir returns the CA's directory.
func (c *CA) Dir() string { return c.dir }

// Brand returns the CA's brand name.
func (c *CA) Brand() string { return c.brand }

// Suites returns the suites of the CA's hierarchies.
func (c *CA) Suites() []protocol.Suite {
	var out []protocol.Suite
	for _, h := range c.hs {
		out = append(out, h.Suite)
	}
	return out
}

// Hierarchy returns the hierarchy of suite s, or nil if the CA has none.
func (c *CA) Hierarchy(s protocol.Suite) *Hierarchy {
	for _, h := range c.hs {
		if h.Suite == s {
			return h
		}
	}
	return nil
}

// TLSCertificate returns the CA server's TLS certificate: that of the first
// suite the CA holds (pq before nist). Each hierarchy has its own
// (Hierarchy.TLS).
func (c *CA) TLSCertificate() tls.Certificate {
	if len(c.hs) == 0 {
		return tls.Certificate{}
	}
	return c.hs[0].TLS
}
