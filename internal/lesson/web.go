package lesson

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"
)

// webAssets are the page's files: HTML, script and style, nothing fetched
// from elsewhere.
//
//go:embed web
var webAssets embed.FS

// webCSP is the page's Content-Security-Policy: everything from the page's
// own origin, no inline script or style, no frames, no plug-ins.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'none'; frame-ancestors 'none'"

// Handler serves the walkthrough as a web page (setpay demo --web): one
// purchase, run with base (its Attack replaced by the one the page asks
// for), step by step, with what each party can and cannot read.
//
//	GET /                   the page
//	GET /app.js, /style.css its script and style
//	GET /api/attacks        the attacks, JSON: name, summary, party, check, code, codeName
//	GET /api/trace?attack=A the Trace of Run with Attack A ("" or absent: the honest run), JSON
//
// An unknown attack is a 400. Each trace is computed once and kept: Run is
// deterministic, and the attacks are a short fixed list.
func Handler(base Options) http.Handler {
	return newWebHandler(base, Run, Attacks())
}

type webHandler struct {
	base    Options
	run     func(Options) (*Trace, error)
	attacks []Attack
	known   map[string]bool
	mux     *http.ServeMux

	mu     sync.Mutex
	traces map[string]*webTrace
}

// webTrace is one attack's trace as JSON, computed once.
type webTrace struct {
	once sync.Once
	json []byte
	err  error
}

// webAttack is an Attack as the page receives it.
type webAttack struct {
	Name     string `json:"name"`
	Summary  string `json:"summary"`
	Party    Party  `json:"party"`
	Check    string `json:"check"`
	Code     int    `json:"code"`
	CodeName string `json:"codeName"`
}

func newWebHandler(base Options, run func(Options) (*Trace, error), attacks []Attack) *webHandler {
	h := &webHandler{
		base:    base,
		run:     run,
		attacks: attacks,
		known:   map[string]bool{"": true},
		mux:     http.NewServeMux(),
		traces:  map[string]*webTrace{},
	}
	for _, a := range attacks {
		h.known[a.Name] = true
	}
	h.mux.HandleFunc("GET /{$}", h.asset("index.html", "text/html; charset=utf-8"))
	h.mux.HandleFunc("GET /app.js", h.asset("app.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("GET /style.css", h.asset("style.css", "text/css; charset=utf-8"))
	h.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	h.mux.HandleFunc("GET /api/attacks", h.serveAttacks)
	h.mux.HandleFunc("GET /api/trace", h.serveTrace)
	return h
}

func (h *webHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", webCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// asset serves one embedded file with its content type.
func (h *webHandler) asset(name, contentType string) http.HandlerFunc {
	b, err := fs.ReadFile(webAssets, "web/"+name)
	if err != nil {
		panic("lesson: embedded asset missing: " + name) // a build mistake, not input
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	}
}

func (h *webHandler) serveAttacks(w http.ResponseWriter, r *http.Request) {
	list := make([]webAttack, 0, len(h.attacks))
	for _, a := range h.attacks {
		list = append(list, webAttack{
			Name:     a.Name,
			Summary:  a.Summary,
			Party:    a.Party,
			Check:    a.Check,
			Code:     int(a.Code),
			CodeName: a.Code.String(),
		})
	}
	b, err := json.Marshal(list)
	if err != nil {
		http.Error(w, "lesson: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeWebJSON(w, b)
}

func (h *webHandler) serveTrace(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("attack")
	if !h.known[name] {
		if len(name) > 64 {
			name = name[:64] + "…"
		}
		names := make([]string, 0, len(h.attacks))
		for _, a := range h.attacks {
			names = append(names, a.Name)
		}
		http.Error(w, fmt.Sprintf("lesson: unknown attack %q; the attacks are: %s (or none, for the honest run)",
			name, strings.Join(names, ", ")), http.StatusBadRequest)
		return
	}
	b, err := h.trace(name)
	if err != nil {
		http.Error(w, "lesson: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeWebJSON(w, b)
}

// trace returns the JSON of the run with the named attack (known), running
// it the first time only.
func (h *webHandler) trace(attack string) ([]byte, error) {
	h.mu.Lock()
	t := h.traces[attack]
	if t == nil {
		t = &webTrace{}
		h.traces[attack] = t
	}
	h.mu.Unlock()
	t.once.Do(func() {
		o := h.base
		o.Attack = attack
		tr, err := h.run(o)
		if err != nil {
			t.err = fmt.Errorf("run %q: %w", attack, err)
			return
		}
		t.json, t.err = json.Marshal(tr)
	})
	return t.json, t.err
}

func writeWebJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
