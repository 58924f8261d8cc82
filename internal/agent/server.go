package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/setpay/setpay/protocol"
)

// ShutdownTimeout bounds a graceful shutdown: requests still running after
// it are cut off.
const ShutdownTimeout = 10 * time.Second

// Server is an agent's HTTPS server.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen listens on addr (port 0 picks a free port) and returns a server of
// h over TLS with tc.
func Listen(addr string, h http.Handler, tc *tls.Config, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:           h,
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.ServeTLS(s.ln, "", "") }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Close closes a server that is not serving.
func (s *Server) Close() error { return s.ln.Close() }

// LockedRand makes a random source safe for concurrent use (a seeded
// reader usually is not); nil gives crypto/rand.Reader.
func LockedRand(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return &lockedReader{r: r}
}

type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadFull(l.r, p)
}

// Clock returns now, or time.Now if now is nil.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// Nonce reads a fresh challenge (for Error messages) from rnd.
func Nonce(rnd io.Reader) protocol.Challenge {
	var c protocol.Challenge
	_, _ = io.ReadFull(rnd, c[:])
	return c
}
