package main_test

// A lossy loopback TCP proxy for the fault tests: it relays the bytes of
// each connection (TLS passes through it end to end) and, by a seeded
// policy, drops connections mid-stream, delays chunks, replays the
// client's bytes on a second upstream connection and swaps chunks.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultPolicy is what a lossyProxy does to the chunks it relays: each
// chunk (one read from one side) draws one of drop, reorder, delay or
// nothing, then, for a chunk from the client, whether to duplicate.
type faultPolicy struct {
	Drop      float64       // close both sides of the connection, the chunk unsent
	Reorder   float64       // hold the chunk and send the next one first
	Delay     float64       // hold the chunk for up to MaxDelay
	MaxDelay  time.Duration //
	Duplicate float64       // replay the client's bytes so far on a second upstream connection
}

// Bounds of the proxy's own waits.
const (
	proxyDialTimeout = 5 * time.Second
	reorderWait      = 100 * time.Millisecond // how long a held chunk waits for the next
	replayTimeout    = 3 * time.Second        // the life of a duplicate connection
	maxReplayBytes   = 256 << 10              // client bytes kept for duplicates, per connection
	proxyCloseWait   = 10 * time.Second
)

// proxyStats counts what a lossyProxy did.
type proxyStats struct {
	conns, chunks, drops, reorders, delays, duplicates atomic.Int64
}

func (s *proxyStats) String() string {
	return fmt.Sprintf("%d connections, %d chunks: %d dropped, %d reordered, %d delayed, %d duplicated",
		s.conns.Load(), s.chunks.Load(), s.drops.Load(), s.reorders.Load(), s.delays.Load(), s.duplicates.Load())
}

// lossyProxy listens on loopback and relays each connection to target.
type lossyProxy struct {
	ln     net.Listener
	target string
	seed   uint64
	policy faultPolicy
	stats  proxyStats

	mu     sync.Mutex
	closed bool
	open   map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// newLossyProxy starts a proxy to target; it is closed when the test ends.
// Connection n's client-to-server chunks draw from PCG(seed, 2n), its
// server-to-client chunks from PCG(seed, 2n+1), so a connection's faults
// depend on the seed and on how its bytes were chunked only.
func newLossyProxy(t testing.TB, target string, seed uint64, policy faultPolicy) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &lossyProxy{ln: ln, target: target, seed: seed, policy: policy, open: map[net.Conn]struct{}{}}
	px.spawn(px.accept)
	t.Cleanup(func() {
		if err := px.close(); err != nil {
			t.Error(err)
		}
	})
	return px
}

func (px *lossyProxy) addr() string { return px.ln.Addr().String() }

// spawn runs f in a goroutine close waits for, unless the proxy is closed.
func (px *lossyProxy) spawn(f func()) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.closed {
		return false
	}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		f()
	}()
	return true
}

// track registers a connection for close (closing it if the proxy is
// closed already).
func (px *lossyProxy) track(c net.Conn) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.closed {
		c.Close()
		return false
	}
	px.open[c] = struct{}{}
	return true
}

func (px *lossyProxy) untrack(c net.Conn) {
	px.mu.Lock()
	delete(px.open, c)
	px.mu.Unlock()
	c.Close()
}

// close stops accepting, closes every connection and waits (bounded) for
// the relays to end.
func (px *lossyProxy) close() error {
	px.mu.Lock()
	if px.closed {
		px.mu.Unlock()
		return nil
	}
	px.closed = true
	for c := range px.open {
		c.Close()
	}
	px.mu.Unlock()
	px.ln.Close()
	done := make(chan struct{})
	go func() { px.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(proxyCloseWait):
		return fmt.Errorf("proxy: relays still running %s after close", proxyCloseWait)
	}
}

func (px *lossyProxy) accept() {
	for n := uint64(0); ; n++ {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.stats.conns.Add(1)
		if !px.spawn(func() { px.relay(c, n) }) {
			c.Close()
			return
		}
	}
}

// relay relays connection n between client and a new upstream connection
// until either side ends or the policy drops it.
func (px *lossyProxy) relay(client net.Conn, n uint64) {
	if !px.track(client) {
		return
	}
	defer px.untrack(client)
	up, err := net.DialTimeout("tcp", px.target, proxyDialTimeout)
	if err != nil {
		return
	}
	if !px.track(up) {
		return
	}
	defer px.untrack(up)
	var once sync.Once
	drop := func() { once.Do(func() { client.Close(); up.Close() }) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		var sent []byte // what the client sent, for duplicates
		px.pipe(up, client, rand.New(rand.NewPCG(px.seed, 2*n)), drop, &sent)
		drop()
	}()
	px.pipe(client, up, rand.New(rand.NewPCG(px.seed, 2*n+1)), drop, nil)
	drop()
	<-done
}

// pipe copies src to dst chunk by chunk under the policy. sent, for the
// client-to-server direction, keeps the client's bytes for duplicates.
func (px *lossyProxy) pipe(dst, src net.Conn, r *rand.Rand, drop func(), sent *[]byte) {
	stop := make(chan struct{})
	defer close(stop)
	chunks := make(chan []byte)
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case chunks <- bytes.Clone(buf[:n]):
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	keep := func(c []byte) {
		if sent != nil && len(*sent)+len(c) <= maxReplayBytes {
			*sent = append(*sent, c...)
		}
	}
	write := func(c []byte) bool {
		if _, err := dst.Write(c); err != nil {
			drop()
			return false
		}
		return true
	}
	p := px.policy
	for c := range chunks {
		px.stats.chunks.Add(1)
		keep(c)
		switch x := r.Float64(); {
		case x < p.Drop:
			px.stats.drops.Add(1)
			drop()
			return
		case x < p.Drop+p.Reorder:
			select {
			case next, ok := <-chunks:
				if ok {
					px.stats.chunks.Add(1)
					px.stats.reorders.Add(1)
					keep(next)
					if !write(next) {
						return
					}
				}
				if !write(c) || !ok {
					return
				}
			case <-time.After(reorderWait): // nothing to swap with
				if !write(c) {
					return
				}
			}
		case x < p.Drop+p.Reorder+p.Delay:
			px.stats.delays.Add(1)
			time.Sleep(time.Duration(r.Int64N(int64(p.MaxDelay)) + 1))
			if !write(c) {
				return
			}
		default:
			if !write(c) {
				return
			}
		}
		if sent != nil && r.Float64() < p.Duplicate {
			px.replay(bytes.Clone(*sent))
		}
	}
}

// replay opens a second upstream connection, sends b (the client's bytes
// so far: to the server, a replayed TLS session) and discards what comes
// back.
func (px *lossyProxy) replay(b []byte) {
	px.stats.duplicates.Add(1)
	px.spawn(func() {
		c, err := net.DialTimeout("tcp", px.target, proxyDialTimeout)
		if err != nil || !px.track(c) {
			return
		}
		defer px.untrack(c)
		c.SetDeadline(time.Now().Add(replayTimeout))
		if _, err := c.Write(b); err != nil {
			return
		}
		io.Copy(io.Discard, c)
	})
}
