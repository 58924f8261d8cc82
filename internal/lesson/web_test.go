package lesson

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write ../../docs/lesson-web.png from the browser test")

// webScreenshot is where the browser test writes the page's screenshot.
const webScreenshot = "../../docs/lesson-web.png"

const (
	webPAN   = "4111111111111111"
	webOrder = "1 x The Illustrated SET, paperback"
)

func webGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func webFetchTrace(t *testing.T, base, attack string) *Trace {
	t.Helper()
	resp, b := webGet(t, base+"/api/trace?attack="+attack)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/trace?attack=%s: %s: %s", attack, resp.Status, b)
	}
	var tr Trace
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("GET /api/trace?attack=%s: %v", attack, err)
	}
	return &tr
}

func webAttackNamed(t *testing.T, name string) Attack {
	t.Helper()
	for _, a := range Attacks() {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("Attacks() has no %q", name)
	return Attack{}
}

func TestWebServesPageAndAPI(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{}))
	defer srv.Close()

	assets := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/app.js" defer></script>`},
		{"/app.js", "text/javascript; charset=utf-8", `"/api/trace?attack="`},
		{"/style.css", "text/css; charset=utf-8", "@media"},
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	for _, a := range assets {
		t.Run("GET "+a.path+" serves the asset with its type and the security headers", func(t *testing.T) {
			resp, b := webGet(t, srv.URL+a.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s", resp.Status)
			}
			if got := resp.Header.Get("Content-Type"); got != a.contentType {
				t.Errorf("Content-Type %q, want %q", got, a.contentType)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-") {
				t.Errorf("Content-Security-Policy %q allows unsafe sources", csp)
			}
			if !strings.Contains(string(b), a.contains) {
				t.Errorf("body lacks %q", a.contains)
			}
			if m := external.Find(b); m != nil {
				t.Errorf("body refers to something outside the page's origin: %q", m)
			}
		})
	}

	t.Run("the page has no inline script or style", func(t *testing.T) {
		_, b := webGet(t, srv.URL+"/")
		page := string(b)
		if n, m := strings.Count(page, "<script"), strings.Count(page, `<script src="/app.js"`); n != m {
			t.Errorf("%d script elements, %d of them /app.js", n, m)
		}
		for _, bad := range []string{"<style", " style=", " onclick=", " onload=", "javascript:"} {
			if strings.Contains(page, bad) {
				t.Errorf("page contains %q", bad)
			}
		}
	})

	t.Run("GET /api/attacks lists Attacks() with party and code", func(t *testing.T) {
		resp, b := webGet(t, srv.URL+"/api/attacks")
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Error("no Content-Security-Policy")
		}
		var got []webAttack
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := Attacks()
		if len(got) != len(want) {
			t.Fatalf("%d attacks, want %d", len(got), len(want))
		}
		for i, a := range want {
			g := got[i]
			if g.Name != a.Name || g.Summary != a.Summary || g.Party != a.Party || g.Check != a.Check || g.Code != int(a.Code) || g.CodeName != a.Code.String() {
				t.Errorf("attack %d = %+v, want %+v", i, g, a)
			}
		}
	})

	t.Run("GET /api/trace is Run's trace, honest and with each attack", func(t *testing.T) {
		for _, name := range append([]string{""}, webAttackNames()...) {
			resp, b := webGet(t, srv.URL+"/api/trace?attack="+name)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("attack %q: %s: %s", name, resp.Status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("attack %q: Content-Type %q", name, ct)
			}
			tr, err := Run(Options{Attack: name})
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tr)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != string(want) {
				t.Errorf("attack %q: the served trace differs from Run's", name)
			}
		}
	})

	t.Run("GET /api/trace with an unknown attack is a 400 that names it", func(t *testing.T) {
		resp, b := webGet(t, srv.URL+"/api/trace?attack=no-such-attack")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %s, want 400", resp.Status)
		}
		if !strings.Contains(string(b), `unknown attack "no-such-attack"`) || !strings.Contains(string(b), "tamper-ds") {
			t.Errorf("body %q does not name the attack and the known ones", b)
		}
	})

	t.Run("other paths and methods are refused", func(t *testing.T) {
		if resp, _ := webGet(t, srv.URL+"/etc/passwd"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /etc/passwd: %s, want 404", resp.Status)
		}
		resp, err := http.Post(srv.URL+"/api/trace", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /api/trace: %s, want 405", resp.Status)
		}
	})
}

func webAttackNames() []string {
	var names []string
	for _, a := range Attacks() {
		names = append(names, a.Name)
	}
	return names
}

func TestWebRunsEachAttackOnce(t *testing.T) {
	var calls atomic.Int32
	run := func(o Options) (*Trace, error) {
		calls.Add(1)
		return Run(o)
	}
	srv := httptest.NewServer(newWebHandler(Options{}, run, Attacks()))
	defer srv.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/api/trace?attack=tamper-ds")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	webFetchTrace(t, srv.URL, "tamper-ds")
	webFetchTrace(t, srv.URL, "")
	if n := calls.Load(); n != 2 {
		t.Errorf("Run called %d times for two distinct runs", n)
	}
}

// webChromium finds Debian's chromium. In CI (CI=true) a missing browser
// fails the test; elsewhere it skips.
func webChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; the browser test needs it in CI (.ci/run installs Debian's chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); skipping the browser test")
	return ""
}

// webPage is what the test reads of the page after each action.
type webPage struct {
	Step    int      `json:"step"`
	Steps   []string `json:"steps"`
	Hash    string   `json:"hash"`
	Columns []string `json:"columns"` // the data-party of each column, in order
	Views   struct {
		Cardholder string `json:"cardholder"`
		Merchant   string `json:"merchant"`
		Gateway    string `json:"gateway"`
	} `json:"views"`
	// Shown are the columns' visible text (innerText).
	Shown struct {
		Gateway string `json:"gateway"`
	} `json:"shown"`
	Roles   map[string]string `json:"roles"`
	Outcome string            `json:"outcome"`
	Result  string            `json:"result"`
	Attack  string            `json:"attack"`
	Failed  []string          `json:"failed"`
	Checks  int               `json:"checks"`
	DER     string            `json:"der"`
}

// webReadPage reads the page. A column's text is its textContent (hidden
// text included) and its tooltips, so that nothing shown on hover escapes.
const webReadPage = `(() => {
  const q = (s) => document.querySelector(s);
  const col = (p) => {
    const e = q('#views [data-party="' + p + '"]');
    if (!e) return null;
    return e.textContent + " " + [e, ...e.querySelectorAll("[title]")].map((x) => x.title).join(" ");
  };
  const cur = q("#steps li.current");
  const out = q("#outcome");
  return {
    step: cur ? Number(cur.dataset.step) : 0,
    steps: [...document.querySelectorAll("#steps li[data-step]")].map((li) => li.dataset.step + " " + li.textContent),
    hash: location.hash,
    columns: [...document.querySelectorAll("#views [data-party]")].map((e) => e.dataset.party),
    views: { cardholder: col("cardholder"), merchant: col("merchant"), gateway: col("gateway") },
    shown: { gateway: q('#views [data-party="gateway"]')?.innerText || "" },
    roles: Object.fromEntries([...document.querySelectorAll("#views [data-party]")].map((e) => [e.dataset.party, e.dataset.role])),
    outcome: out.textContent,
    result: out.dataset.result || "",
    attack: out.dataset.attack || "",
    failed: [...document.querySelectorAll("#checks li.failed")].map((e) => e.textContent),
    checks: document.querySelectorAll("#checks li").length,
    der: q("#der").textContent,
  };
})()`

func TestWebBrowserWalkthrough(t *testing.T) {
	chrome := webChromium(t)
	srv := httptest.NewServer(Handler(Options{}))
	defer srv.Close()
	honest := webFetchTrace(t, srv.URL, "")
	tamper := webAttackNamed(t, "tamper-ds")
	authReq := slices.IndexFunc(honest.Steps, func(s Step) bool { return s.Message == "AuthReq" }) + 1
	if authReq == 0 {
		t.Fatal("the honest trace has no AuthReq step")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()

	var (
		mu       sync.Mutex
		requests []string
		problems []string
	)
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, fmt.Sprintf("console.%s called", ev.Type))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("%s %s: %s (%s)", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(listen))
	defer bcancel()
	// Start the browser on bctx itself: it lives as long as the context of
	// the first Run, and the actions below run under shorter deadlines.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}

	// do runs the actions with a deadline of its own, under the test's.
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	read := func() webPage {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		p, err := chromedp.Run(c, chromedp.Evaluate[webPage](webReadPage))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return p
	}
	waitStep := func(n int) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			webPoll(fmt.Sprintf(`document.querySelector("#steps li.current")?.dataset.step === "%d"`, n)),
		)
	}
	// private asserts what each party's column shows on the current step.
	private := func(p webPage, s Step) {
		t.Helper()
		if want := []string{"cardholder", "merchant", "gateway"}; !slices.Equal(p.Columns, want) {
			t.Fatalf("step %d: columns %q, want %q", s.N, p.Columns, want)
		}
		if webHasPAN(p.Views.Merchant, honest.PAN) {
			t.Errorf("step %d (%s): the merchant's column shows the card number", s.N, s.Message)
		}
		if strings.Contains(strings.ToLower(p.Views.Gateway), strings.ToLower(honest.Order)) {
			t.Errorf("step %d (%s): the gateway's column shows the order description", s.N, s.Message)
		}
		for _, v := range s.Views {
			if p.Roles[string(v.Party)] != v.Role {
				t.Errorf("step %d (%s): the %s's column has role %q, want %q", s.N, s.Message, v.Party, p.Roles[string(v.Party)], v.Role)
			}
		}
	}

	// The page loads and lists the steps; the first is current.
	do("loading the page", chromedp.Navigate(srv.URL+"/"), webPoll(`document.querySelector("#outcome")?.dataset.result`))
	p := read()
	if honest.PAN != webPAN || honest.Order != webOrder {
		t.Fatalf("the default run buys %q with %q; the test expects %q, %q", honest.Order, honest.PAN, webOrder, webPAN)
	}
	if len(p.Steps) != len(honest.Steps) || len(p.Steps) < 2 {
		t.Fatalf("the page lists %d steps, the trace has %d", len(p.Steps), len(honest.Steps))
	}
	for i, s := range honest.Steps {
		if !strings.HasPrefix(p.Steps[i], fmt.Sprintf("%d ", s.N)) || !strings.Contains(p.Steps[i], s.Message) {
			t.Errorf("list item %d is %q, want step %d, %s", i, p.Steps[i], s.N, s.Message)
		}
	}
	if p.Step != 1 {
		t.Fatalf("the current step on load is %d, want 1", p.Step)
	}
	if p.Result != honest.Outcome.Result || !strings.Contains(p.Outcome, honest.Outcome.Text) {
		t.Errorf("outcome %q (%s), want %q (%s)", p.Outcome, p.Result, honest.Outcome.Text, honest.Outcome.Result)
	}

	// Next, on every step: the highlighted step advances, the columns
	// change, the hash keeps the step, and nobody sees what it must not.
	sawPAN := false
	for i, s := range honest.Steps {
		if i > 0 {
			prev := p
			do(fmt.Sprintf("Next to step %d", s.N), chromedp.Click(chromedp.CSS("#next")), waitStep(s.N))
			p = read()
			if p.Views == prev.Views {
				t.Errorf("Next to step %d: the columns did not change", s.N)
			}
		}
		if p.Step != s.N {
			t.Fatalf("current step %d, want %d", p.Step, s.N)
		}
		if p.Hash != fmt.Sprintf("#step=%d", s.N) {
			t.Errorf("step %d: hash %q", s.N, p.Hash)
		}
		if len(s.DER) > 0 && !strings.HasPrefix(p.DER, "00000 ") {
			t.Errorf("step %d: DER shown as %.20q", s.N, p.DER)
		}
		private(p, s)
		if s.N == authReq {
			if !webHasPAN(p.Views.Gateway, honest.PAN) {
				t.Errorf("step %d (AuthReq): the gateway's column does not show the card number it opens", s.N)
			}
			sawPAN = true
		}
	}
	if !sawPAN {
		t.Error("never reached the AuthReq step")
	}

	// The keyboard moves too, and the hash is read back.
	last := len(honest.Steps)
	do("ArrowLeft", chromedp.KeyEvent(kb.ArrowLeft), waitStep(last-1))
	do("ArrowRight", chromedp.KeyEvent(kb.ArrowRight), waitStep(last))
	do("First", chromedp.Click(chromedp.CSS("#first")), waitStep(1))
	do("Last", chromedp.Click(chromedp.CSS("#last")), waitStep(last))
	do("the hash names a step", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = "#step=%d"`, authReq)), waitStep(authReq))

	// A fresh tab opened on #step=N shows step N (and, when asked, makes the
	// screenshot: no hover or focus left by the clicks above).
	tctx, tcancel := chromedp.NewContext(bctx, chromedp.WithListener(listen))
	defer tcancel()
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	func() {
		c, cancel := context.WithTimeout(tctx, 15*time.Second)
		defer cancel()
		err := chromedp.Do(c, chromedp.EmulateViewport(1280, 900),
			chromedp.Navigate(fmt.Sprintf("%s/#step=%d", srv.URL, authReq)),
			webPoll(`document.querySelector("#outcome")?.dataset.result`),
			webPoll(`document.fonts.status === "loaded"`))
		if err != nil {
			t.Fatalf("loading #step=%d: %v", authReq, err)
		}
		p, err := chromedp.Run(c, chromedp.Evaluate[webPage](webReadPage))
		if err != nil {
			t.Fatal(err)
		}
		if p.Step != authReq {
			t.Errorf("loading #step=%d shows step %d", authReq, p.Step)
		}
		if !webHasPAN(p.Shown.Gateway, honest.PAN) {
			t.Errorf("step %d (AuthReq): the card number is not visible in the gateway's column: %q", authReq, p.Shown.Gateway)
		}
		if *updateScreenshot || os.Getenv("SETPAY_UPDATE_SCREENSHOT") == "1" {
			png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			webWriteScreenshot(t, png)
		}
	}()

	// At a narrow width the three columns stack.
	do("narrow viewport", chromedp.EmulateViewport(700, 900),
		webPoll(`(() => {
			const r = [...document.querySelectorAll("#views [data-party]")].map((e) => e.getBoundingClientRect());
			return r.length === 3 && r[0].left === r[1].left && r[1].left === r[2].left && r[0].bottom <= r[1].top && r[1].bottom <= r[2].top;
		})()`),
		chromedp.EmulateViewport(1280, 900))

	// The tamper-ds attack: the outcome and the checks name the party and
	// the code the attack must be caught with.
	do("toggling tamper-ds", chromedp.Click(chromedp.CSS(`#attacks button[data-attack="tamper-ds"]`)),
		webPoll(`document.querySelector("#outcome")?.dataset.attack === "tamper-ds"`))
	p = read()
	tr := webFetchTrace(t, srv.URL, "tamper-ds")
	code := fmt.Sprintf("%d %s", tamper.Code, tamper.Code.String())
	if p.Result != "caught" || !strings.Contains(p.Outcome, "Caught by the "+string(tamper.Party)) || !strings.Contains(p.Outcome, code) {
		t.Errorf("outcome %q (%s), want caught by the %s with %q", p.Outcome, p.Result, tamper.Party, code)
	}
	if len(p.Failed) != 1 || !strings.Contains(p.Failed[0], "code "+code) || !strings.Contains(p.Failed[0], string(tamper.Party)) {
		t.Errorf("failed checks shown %q, want one by the %s with code %s", p.Failed, tamper.Party, code)
	}
	if !strings.Contains(p.Hash, "attack=tamper-ds") {
		t.Errorf("hash %q does not keep the attack", p.Hash)
	}
	for _, s := range tr.Steps {
		do(fmt.Sprintf("tamper-ds step %d", s.N), chromedp.Click(chromedp.CSS(fmt.Sprintf(`#steps li[data-step="%d"] button`, s.N))), waitStep(s.N))
		private(read(), s)
	}
	do("back to the honest run", chromedp.Click(chromedp.CSS(`#attacks button[data-attack=""]`)),
		webPoll(`document.querySelector("#outcome")?.dataset.attack === ""`))

	// Nothing left the test server, and the page raised no error.
	mu.Lock()
	defer mu.Unlock()
	if len(requests) < 4 {
		t.Errorf("the network log has %d requests: %q", len(requests), requests)
	}
	for _, u := range requests {
		if !strings.HasPrefix(u, srv.URL+"/") {
			t.Errorf("the page requested %q, outside the test server %s", u, srv.URL)
		}
	}
	for _, m := range problems {
		t.Errorf("browser: %s", m)
	}
}

// webPoll waits, at most 10 s, until the expression is truthy.
func webPoll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second))
}

// webHasPAN reports whether text shows the card number, written whole or
// in groups.
func webHasPAN(text, pan string) bool {
	squeezed := strings.NewReplacer(" ", "", "\u00a0", "", "-", "", "\u2009", "").Replace(text)
	return strings.Contains(squeezed, pan)
}

func webWriteScreenshot(t *testing.T, png []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.FromSlash(webScreenshot), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", webScreenshot, len(png))
}
