package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority"

	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

// Content types of the CA server.
const (
	// ContentTypeSetpay is the media type of a DER setpay message or
	// structure (a MessageWrapper, a BCI).
	ContentTypeSetpay = "application/setpay"
	contentTypeCRL    = "application/pkix-crl"
	contentTypePEM    = "application/x-pem-file"
)

// ShutdownTimeout bounds the graceful shutdown of [Server.Serve]: requests
// still running after it are cut off.
const ShutdownTimeout = 10 * time.Second

// ServerOptions configures a [Server].
type ServerOptions struct {
	// Addr is the address of the setpay endpoints (host:port; port 0
	// picks a free port, see [Server.Addr]). Default 127.0.0.1:8443.
	Addr string
	// StepAddr is the address of smallstep's HTTP API (see [Server]).
	// Empty: no step API.
	StepAddr string
	// Issuer is the card issuer of the registrar NewServer opens when it
	// is given none; unused otherwise.
	Issuer CardIssuer
	// KeyLogWriter, if set, receives the TLS secrets of every connection
	// in NSS key log format (SSLKEYLOGFILE), so that a capture can be
	// decrypted. It defeats TLS: for debugging only.
	KeyLogWriter io.Writer
}

// Server is the CA server: HTTPS (TLS 1.3) with the CA's TLS certificates
// (Hierarchy.TLS, type protocol.CertCATLS).
//
// On Addr it serves:
//
//	POST /register                a DER MessageWrapper (application/setpay, at most
//	                              protocol.MaxMessageSize bytes), answered by Registrar.Handle
//	GET  /ca/{suite}/roots.pem    the suite's root certificate
//	GET  /ca/{suite}/chain.pem    the brand and role CA certificates
//	GET  /ca/{suite}/{ca}.crl     the current CRL (DER) of root, brand, cardholder-ca,
//	                              merchant-ca or gateway-ca
//	GET  /ca/{suite}/bci          the BCI in force (DER)
//
// On StepAddr it serves smallstep's HTTP API (api.Route) at the URL root,
// where the step CLI looks for it, backed by the embedded authority of the
// cardholder CA of the CA's first suite (pq before nist). Its read-only
// endpoints answer (/health, /version, /roots, /roots.pem, /root/{sha},
// /intermediates, /intermediates.pem); /crl serves that CA's setpay CRL
// (smallstep's own CRL generator is off, see the package documentation).
// No provisioner is configured, so /sign, /renew, /revoke and the SSH
// endpoints refuse every request.
//
// A client certificate is optional. Go's TLS stack cannot verify setpay
// certificates (their certificate-type extension is critical and unknown
// to crypto/x509), so the server requests one without verifying it in the
// handshake (tls.RequestClientCert) and checks it per request instead:
// the leaf must be a setpay TLS certificate (protocol.CertType.IsTLS)
// verifying with the CA's Trust (its roots and revocation state), or the
// request is answered 403 Forbidden.
type Server struct {
	c       *CA
	reg     *Registrar
	ownReg  bool
	step    *authority.Authority
	stepCA  *Authority
	ln      net.Listener
	stepLn  net.Listener
	srv     *http.Server
	stepSrv *http.Server

	once sync.Once
}

// NewServer returns a server of c answering registrations with reg (nil:
// NewServer opens one with o.Issuer and the server closes it). It listens
// at once; call [Server.Serve], or [Server.Close] to give up.
func NewServer(c *CA, reg *Registrar, o ServerOptions) (_ *Server, err error) {
	if len(c.hs) == 0 {
		return nil, errors.New("ca: server: the CA has no hierarchy")
	}
	s := &Server{c: c, reg: reg, stepCA: c.hs[0].Cardholder}
	s.step = s.stepCA.step
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if reg == nil {
		if o.Issuer == nil {
			return nil, errors.New("ca: server: no registrar and no card issuer")
		}
		if s.reg, err = NewRegistrar(c, o.Issuer); err != nil {
			return nil, err
		}
		s.ownReg = true
	}
	tc := s.tlsConfig(o.KeyLogWriter)
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:8443"
	}
	if s.ln, err = net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("ca: server: %w", err)
	}
	s.srv = newHTTPServer(s.checkClient(s.routes()), tc.Clone())
	if o.StepAddr != "" {
		if s.stepLn, err = net.Listen("tcp", o.StepAddr); err != nil {
			return nil, fmt.Errorf("ca: server: step API: %w", err)
		}
		s.stepSrv = newHTTPServer(s.checkClient(s.stepRoutes()), tc.Clone()) // net/http configures its own copy
	}
	return s, nil
}

func newHTTPServer(h http.Handler, tc *tls.Config) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// tlsConfig is the servers' TLS configuration: TLS 1.3, the CA's TLS
// certificates, a client certificate requested (checked by checkClient).
func (s *Server) tlsConfig(keyLog io.Writer) *tls.Config {
	var certs []tls.Certificate
	for _, h := range s.c.hs {
		certs = append(certs, h.TLS)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: certs,
		ClientAuth:   tls.RequestClientCert,
		KeyLogWriter: keyLog,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// Addr returns the address the setpay endpoints listen on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// StepAddr returns the address of the step API, "" if there is none.
func (s *Server) StepAddr() string {
	if s.stepLn == nil {
		return ""
	}
	return s.stepLn.Addr().String()
}

// Serve serves until ctx is done, then shuts down gracefully (requests in
// progress get [ShutdownTimeout] to finish). It returns nil after a
// shutdown for ctx, or the error that stopped a listener. A Server serves
// once; Serve closes it.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	n := 1
	go func() { errc <- s.srv.ServeTLS(s.ln, "", "") }()
	if s.stepSrv != nil {
		n++
		go func() { errc <- s.stepSrv.ServeTLS(s.stepLn, "", "") }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n--
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	errs := []error{err}
	for _, srv := range []*http.Server{s.srv, s.stepSrv} {
		if srv != nil {
			errs = append(errs, srv.Shutdown(sctx))
		}
	}
	for ; n > 0; n-- {
		if e := <-errc; !errors.Is(e, http.ErrServerClosed) {
			errs = append(errs, e)
		}
	}
	errs = append(errs, s.closeRegistrar())
	return errors.Join(errs...)
}

// Close closes the listeners of a server that is not serving, and the
// registrar NewServer opened.
func (s *Server) Close() error {
	var errs []error
	for _, ln := range []net.Listener{s.ln, s.stepLn} {
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(append(errs, s.closeRegistrar())...)
}

func (s *Server) closeRegistrar() error {
	var err error
	s.once.Do(func() {
		if s.ownReg && s.reg != nil {
			err = s.reg.Close()
		}
	})
	return err
}

// checkClient answers 403 to a request whose connection presented a client
// certificate that is not a valid setpay TLS certificate of the CA.
func (s *Server) checkClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			if err := s.verifyClient(r.TLS.PeerCertificates); err != nil {
				http.Error(w, "client certificate refused: "+err.Error(), http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) verifyClient(peer []*x509.Certificate) error {
	_, err := mtls.VerifyPeer([]*protocol.Trust{s.c.Trust()}, peer, protocol.CertCardholderTLS, protocol.CertMerchantTLS, protocol.CertGatewayTLS, protocol.CertCATLS)
	return err
}

// routes are the setpay endpoints.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/register", s.register)
	mux.HandleFunc("GET /ca/{suite}/{file}", s.caFile)
	return mux
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a DER MessageWrapper", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentTypeSetpay {
		http.Error(w, "Content-Type must be "+ContentTypeSetpay, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxMessageSize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("a message is at most %d bytes", protocol.MaxMessageSize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := s.reg.Handle(r.Context(), body)
	w.Header().Set("Content-Type", ContentTypeSetpay)
	w.Write(out)
}

// caFile serves /ca/{suite}/{file}.
func (s *Server) caFile(w http.ResponseWriter, r *http.Request) {
	su, err := protocol.ParseSuite(r.PathValue("suite"))
	var h *Hierarchy
	if err == nil {
		h = s.c.Hierarchy(su)
	}
	if h == nil {
		http.NotFound(w, r)
		return
	}
	file := r.PathValue("file")
	switch file {
	case "roots.pem":
		writePEM(w, h.Root.Cert)
		return
	case "chain.pem":
		writePEM(w, h.Brand.Cert, h.Cardholder.Cert, h.Merchant.Cert, h.Gateway.Cert)
		return
	case "bci":
		bci, err := h.BCI(r.Context())
		if err != nil {
			internalError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", ContentTypeSetpay)
		w.Write(protocol.Encode(bci))
		return
	}
	name, ok := strings.CutSuffix(file, ".crl")
	if !ok {
		http.NotFound(w, r)
		return
	}
	for _, a := range h.Authorities() {
		if a.name == name {
			serveCRL(w, r, a, false)
			return
		}
	}
	http.NotFound(w, r)
}

// serveCRL writes a's current CRL, DER or (asPEM) PEM.
func serveCRL(w http.ResponseWriter, r *http.Request, a *Authority, asPEM bool) {
	crl, err := a.CRL()
	if err != nil {
		internalError(w, r, err)
		return
	}
	if x, err := x509.ParseRevocationList(crl); err == nil {
		w.Header().Set("Expires", x.NextUpdate.UTC().Format(http.TimeFormat))
	}
	if asPEM {
		w.Header().Set("Content-Type", contentTypePEM)
		w.Write(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}))
		return
	}
	w.Header().Set("Content-Type", contentTypeCRL)
	w.Write(crl)
}

func writePEM(w http.ResponseWriter, ders ...[]byte) {
	w.Header().Set("Content-Type", contentTypePEM)
	var b []byte
	for _, d := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	w.Write(b)
}

func internalError(w http.ResponseWriter, r *http.Request, err error) {
	log.Printf("ca: server: %s %s: %v", r.Method, r.URL.Path, err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// stepRoutes is smallstep's HTTP API over the embedded authority of the
// server's step CA, with /crl served from setpay's CRL of that CA.
func (s *Server) stepRoutes() http.Handler {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req.WithContext(authority.NewContext(req.Context(), s.step)))
		})
	})
	api.Route(stepRouter{r})
	r.Get("/crl", func(w http.ResponseWriter, req *http.Request) {
		_, asPEM := req.URL.Query()["pem"]
		serveCRL(w, req, s.stepCA, asPEM)
	})
	return r
}

// stepRouter mounts smallstep's routes but its /crl, which needs
// smallstep's CRL generator.
type stepRouter struct{ r chi.Router }

func (sr stepRouter) MethodFunc(method, pattern string, h http.HandlerFunc) {
	if pattern == "/crl" {
		return
	}
	sr.r.MethodFunc(method, pattern, h)
}
