package main_test

// End-to-end tests: cmd/setpay built once (TestMain), the CA server, the
// gateway (with its bank) and the merchant run as separate processes over
// loopback mutual TLS; cardholders buy with "setpay cardholder buy".

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/internal/keyfile"
	"github.com/setpay/setpay/internal/mtls"
	"github.com/setpay/setpay/protocol"
)

// Luhn-valid test card numbers.
const (
	panVisa      = "4111111111111111"
	panVisa2     = "4012888888881881"
	panVisa13    = "4222222222222"
	panMC        = "5555555555554444"
	panMC2       = "5105105105105100"
	panAmex      = "378282246310005"
	panVisaDebit = "4000056655665556"
	panDiscover  = "6011111111111117"
	panJCB       = "3530111333300000"
)

// runDemo runs "setpay demo" into a fresh data directory and returns it.
func runDemo(t *testing.T, pan, order string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "run")
	r := run(t, nil, "demo", "--data-dir", d, "--pan", pan, "--order", order, "--amount", "12.34")
	if r.code != 0 || !strings.Contains(r.stdout, "SUCCESS") {
		t.Fatalf("setpay demo: want exit 0 and SUCCESS; got %s", r)
	}
	return d
}

// TestDemoPrivacy runs the demo and checks SET's privacy promise on
// everything the merchant and the gateway kept: their databases (with
// -wal and -shm), logs, and the messages they received and sent after TLS
// (wire/): the merchant never has the card number, the gateway never the
// order description.
func TestDemoPrivacy(t *testing.T) {
	t.Parallel()
	const pan = panVisaDebit
	const order = "e2e privacy: 3 x Zanzibar saffron tins, lot Q-7781"
	d := runDemo(t, pan, order)
	merchantDir, gatewayDir := filepath.Join(d, "merchant"), filepath.Join(d, "gateway")

	// The recordings exist, so the searches below cover what each party
	// received on the wire.
	for _, dir := range []string{merchantDir, gatewayDir} {
		if names := readDir(t, filepath.Join(dir, "wire")); len(names) == 0 {
			t.Fatalf("%s/wire is empty: no message was recorded", dir)
		}
	}
	if !hasWireFile(t, filepath.Join(gatewayDir, "wire"), "-in-auth.bin") {
		t.Errorf("the gateway recorded no AuthReq received: %v", readDir(t, filepath.Join(gatewayDir, "wire")))
	}

	// The merchant: never the card number.
	hits, n := filesContaining(t, merchantDir, []byte(pan))
	if len(hits) > 0 {
		t.Errorf("the card number is in the merchant's files: %v", hits)
	}
	t.Logf("searched %d merchant files for the card number", n)
	// ... though the search finds what the merchant legitimately has.
	if hits, _ := filesContaining(t, merchantDir, []byte(order)); !containsBase(hits, "merchant.db") || !containsDir(hits, filepath.Join(merchantDir, "wire")) {
		t.Errorf("the order description is not in the merchant's database and received messages (search broken?): found in %v", hits)
	}

	// The gateway: never the order description.
	hits, n = filesContaining(t, gatewayDir, []byte(order))
	if len(hits) > 0 {
		t.Errorf("the order description is in the gateway's files: %v", hits)
	}
	t.Logf("searched %d gateway files for the order description", n)
	// ... though the search finds what its bank legitimately has.
	if hits, _ := filesContaining(t, gatewayDir, []byte(pan)); !containsBase(hits, "bank.db") {
		t.Errorf("the card number is not in the bank's database (search broken?): found in %v", hits)
	}
}

// TestDemoMerchantWireRecordsGatewayExchange checks that the merchant's
// wire/ holds what it sent to and received from the gateway (AuthReq,
// AuthRes, CapReq, CapRes), byte for byte what the gateway recorded: the
// merchant's --wire-dir is documented to record the messages exchanged
// with the gateway (merchant.Config.Wire), and the privacy check of
// TestDemoPrivacy covers "everything the merchant received" only if it
// does.
func TestDemoMerchantWireRecordsGatewayExchange(t *testing.T) {
	t.Parallel()
	d := runDemo(t, panVisa, "e2e wire: 1 x kettle")
	gwWire, mWire := filepath.Join(d, "gateway", "wire"), filepath.Join(d, "merchant", "wire")
	mirror := map[string]string{"-in-auth.bin": "-out-auth.bin", "-out-auth.bin": "-in-auth.bin",
		"-in-capture.bin": "-out-capture.bin", "-out-capture.bin": "-in-capture.bin"}
	for gwSuffix, mSuffix := range mirror {
		gwFiles := wireFiles(t, gwWire, gwSuffix)
		if len(gwFiles) == 0 {
			t.Fatalf("the gateway recorded no *%s: %v", gwSuffix, readDir(t, gwWire))
		}
		mFiles := wireFiles(t, mWire, mSuffix)
		for _, g := range gwFiles {
			found := false
			for _, m := range mFiles {
				found = found || bytes.Equal(g, m)
			}
			if !found {
				t.Errorf("the gateway's *%s (%d bytes) is not among the merchant's recorded *%s (%d files); merchant wire: %v",
					gwSuffix, len(g), mSuffix, len(mFiles), readDir(t, mWire))
			}
		}
	}
}

// TestApprovedPurchaseAndCapture buys with the CLI, then follows the
// purchase into every party's database: the merchant captures it, the
// gateway recorded one approved authorization and one capture, the
// acquirer recorded the capture for the merchant.
func TestApprovedPurchaseAndCapture(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{cards: []card{{PAN: panVisa}}})
	id := w.mustBuy(t, panVisa, "e2e: 1 x cast-iron teapot", "12.34")
	waitOrderState(t, w.merchantDB(), id, "captured", "capture-refused", "declined", "refused")

	var amount, authAmount, captured int64
	var xid []byte
	var batchState string
	queryRow(t, w.merchantDB(), `SELECT o.amount, o.auth_amount, o.captured, o.xid, b.state FROM orders o JOIN batches b ON b.id = o.batch
		WHERE o.id = ?`, []any{id}, &amount, &authAmount, &captured, &xid, &batchState)
	if amount != 1234 || authAmount != 1234 || captured != 1234 || batchState != "done" || len(xid) == 0 {
		t.Errorf("merchant.db: amount %d, authorized %d, captured %d, batch %q; want 1234, 1234, 1234, done", amount, authAmount, captured, batchState)
	}

	// The gateway's ledger.
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM authorizations`); n != 1 {
		t.Errorf("gateway.db: %d authorizations, want 1", n)
	}
	var gwMerchant, gwState, authCode string
	var gwAmount, gwCurrency int64
	queryRow(t, w.gatewayDB(), `SELECT merchant, state, amount, currency, auth_code FROM authorizations WHERE xid = ?`, []any{xid},
		&gwMerchant, &gwState, &gwAmount, &gwCurrency, &authCode)
	if gwMerchant != merchantID || gwState != "approved" || gwAmount != 1234 || gwCurrency != 978 || authCode == "" {
		t.Errorf("gateway.db authorization: merchant %q, state %q, amount %d %d, auth code %q; want %s approved 1234 978 and a code",
			gwMerchant, gwState, gwAmount, gwCurrency, authCode, merchantID)
	}
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM captures`); n != 1 {
		t.Errorf("gateway.db: %d captures, want 1", n)
	}
	var capAmount int64
	var capMerchant string
	queryRow(t, w.gatewayDB(), `SELECT merchant, amount FROM captures WHERE xid = ?`, []any{xid}, &capMerchant, &capAmount)
	if capMerchant != merchantID || capAmount != 1234 {
		t.Errorf("gateway.db capture: merchant %q amount %d, want %s 1234", capMerchant, capAmount, merchantID)
	}

	// The bank: the issuer posted it, the acquirer pays the merchant.
	var bankCaps, bankTotal int64
	queryRow(t, w.bankDB(), `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM captures WHERE merchant = ?`, []any{merchantID}, &bankCaps, &bankTotal)
	if bankCaps != 1 || bankTotal != 1234 {
		t.Errorf("bank.db: %d captures totalling %d for %s, want 1 of 1234", bankCaps, bankTotal, merchantID)
	}
	var bankState, bankCode string
	var posted int64
	queryRow(t, w.bankDB(), `SELECT state, code, captured FROM authorizations WHERE merchant = ? AND pan = ?`, []any{merchantID, panVisa},
		&bankState, &bankCode, &posted)
	if bankState != "captured" || bankCode != "00" || posted != 1234 {
		t.Errorf("bank.db authorization: state %q code %q posted %d, want captured 00 1234", bankState, bankCode, posted)
	}
}

// TestDeclineReasons has the issuer decline for each of its reasons; each
// reaches the cardholder as exit code 1 and a line naming the reason.
func TestDeclineReasons(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{velocityLimit: 2, cards: []card{
		{PAN: panVisa2, CreditLimit: 10_00},       // insufficient funds
		{PAN: panVisa13, BankExpiry: "202001"},    // the bank's expiry is not the card's, and past
		{PAN: panMC, Status: "blocked"},           // blocked at the bank only (the CA certified it)
		{PAN: panMC2, PerTransactionLimit: 10_00}, // over the per-transaction limit
		{PAN: panAmex},                      // velocity: the third approval
		{PAN: panJCB, Status: "fraud"},      // suspected fraud
		{PAN: panDiscover, NotAtBank: true}, // the CA knows it, the bank does not
	}})
	cases := []struct {
		name, pan string
		reason    string
		code      protocol.DeclineReason
	}{
		{"insufficient funds", panVisa2, "insufficient funds", protocol.DeclineInsufficientFunds},
		{"expired card", panVisa13, "expired card", protocol.DeclineExpiredCard},
		{"blocked card", panMC, "blocked card", protocol.DeclineBlockedCard},
		{"over limit", panMC2, "over limit", protocol.DeclineOverLimit},
		{"velocity limit", panAmex, "velocity limit exceeded", protocol.DeclineVelocityLimit},
		{"suspected fraud", panJCB, "suspected fraud", protocol.DeclineSuspectedFraud},
		{"unknown account", panDiscover, "unknown account", protocol.DeclineUnknownAccount},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.code == protocol.DeclineVelocityLimit {
				// The gateway runs with --velocity-limit 2: two approvals first.
				w.mustBuy(t, c.pan, "e2e velocity 1", "12.34")
				w.mustBuy(t, c.pan, "e2e velocity 2", "12.34")
			}
			r := w.buy(t, c.pan, "e2e decline: "+c.name, "12.34")
			want := fmt.Sprintf("declined: %s (the issuer's reason, code %d)", c.reason, int(c.code))
			if r.code != 1 || !hasLine(r.stdout, want) || strings.Contains(r.stdout, "approved") {
				t.Fatalf("want exit 1 and the line %q; got %s", want, r)
			}
			id := orderID(t, r.stdout)
			var state string
			var reason int
			queryRow(t, w.merchantDB(), `SELECT state, reason FROM orders WHERE id = ?`, []any{id}, &state, &reason)
			if state != "declined" || protocol.DeclineReason(reason) != c.code {
				t.Errorf("merchant.db: order %s %q reason %d, want declined reason %d", id, state, reason, c.code)
			}
		})
	}
}

// TestRefusalRevokedCertificate revokes a cardholder's signature
// certificate at the CA (stopped, revoked with the CLI, restarted on the
// same address); once the merchant and the gateway have fetched the new
// CRL, the cardholder's purchase is refused with "certificate revoked"
// (code 23), while another cardholder still buys.
func TestRefusalRevokedCertificate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{velocityLimit: 1000, cards: []card{{PAN: panVisa}, {PAN: panMC}}})
	w.mustBuy(t, panVisa, "e2e revoke: before", "12.34") // the card works before

	w.ca.stop(t)
	if !w.ca.exited() {
		t.Fatal("the CA is still running")
	}
	serial := leafSerial(t, filepath.Join(w.wallets[panVisa], "pq", "sig.pem"))
	r := mustRun(t, nil, "ca", "revoke", "--dir", w.caDir, "--serial", serial, "--reason", "keyCompromise")
	if !strings.Contains(r.stdout, "revoked "+serial) {
		t.Fatalf("ca revoke: %s", r)
	}
	w.restart(t, &w.ca, &w.caAddr, "ca", w.caArgs)

	// The merchant and the gateway refresh every 200 ms: until they have,
	// the purchase is still approved; then it is refused. Bounded.
	deadline := time.Now().Add(pollTimeout)
	var refused result
	var desc string
	for attempt := 1; ; attempt++ {
		desc = fmt.Sprintf("e2e revoke: after, attempt %d", attempt)
		r := w.buy(t, panVisa, desc, "12.34")
		if r.code == 1 {
			refused = r
			break
		}
		if r.code != 0 || attempt >= 100 || time.Now().After(deadline) {
			t.Fatalf("attempt %d: want a refusal (exit 1) once the parties refreshed; got %s\nmerchant log:\n%s", attempt, r, tail(w.m.log))
		}
		time.Sleep(pollInterval)
	}
	const want = "refused by the merchant: certificate revoked (code 23)"
	if !strings.Contains(refused.stdout+refused.stderr, want) || strings.Contains(refused.stdout, "approved") {
		t.Fatalf("want a refusal naming %q; got %s", want, refused)
	}
	var state string
	var code int
	var xid []byte
	queryRow(t, w.merchantDB(), `SELECT state, code, xid FROM orders WHERE description = ?`, []any{desc}, &state, &code, &xid)
	if state != "refused" || code != int(protocol.CodeCertRevoked) {
		t.Errorf("merchant.db: order %q %q code %d, want refused 23", desc, state, code)
	}
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM authorizations WHERE xid = ?`, xid); n != 0 {
		t.Errorf("gateway.db: the refused purchase was authorized (%d rows)", n)
	}

	// Another cardholder is not affected.
	w.mustBuy(t, panMC, "e2e revoke: another card", "12.34")
}

// tlsClient is an HTTPS client with the TLS configuration tc.
func tlsClient(tc *tls.Config) *http.Client {
	c, _ := recordingClient(tc)
	return c
}

// recordingClient is tlsClient that also returns the local addresses of
// the connections it dialled, to find them in a server's log.
func recordingClient(tc *tls.Config) (*http.Client, func() []string) {
	var mu sync.Mutex
	var local []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			local = append(local, c.LocalAddr().String())
			mu.Unlock()
		}
		return c, err
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DialContext: dial, DisableKeepAlives: true}}
	return c, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(local)
	}
}

// refusedHandshake posts body with client c and requires the request to
// fail and the server (whose log is serverLog) to have logged the refusal
// of that connection's TLS handshake for reason (waited for, bounded).
func refusedHandshake(t testing.TB, c *http.Client, dialled func() []string, url, contentType string, body []byte, serverLog, reason string) {
	t.Helper()
	resp, got, err := post(c, url, contentType, body)
	if err == nil {
		t.Fatalf("POST %s: answered (%s, %d bytes); want a refused handshake", url, resp.Status, len(got))
	}
	local := dialled()
	if len(local) == 0 {
		t.Fatalf("POST %s: no connection was made: %v", url, err)
	}
	deadline := time.Now().Add(pollTimeout)
	for {
		b, rerr := os.ReadFile(serverLog)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, a := range local {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "TLS handshake error from "+a+": ") && strings.Contains(line, reason) {
					t.Logf("client: %v\nserver: %s", err, line)
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST %s failed (%v), but the server did not log refusing the handshake from %v for %q; its log:\n%s",
				url, err, local, reason, tail(serverLog))
		}
		time.Sleep(pollInterval)
	}
}

// loadCreds loads a party's pq credentials from its directory.
func loadCreds(t testing.TB, dir string) *agent.Credentials {
	t.Helper()
	c, err := agent.LoadCredentials(dir, keyfile.Store{}, protocol.SuitePQ)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientOf is a mutual-TLS client presenting cert, accepting a server
// certificate of type accept under the roots of rootPEM; it also returns
// the local addresses of its connections.
func clientOf(t testing.TB, cert *tls.Certificate, rootPEM string, accept protocol.CertType) (*http.Client, func() []string) {
	t.Helper()
	roots, err := keyfile.ReadCerts(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := agent.NewTrustStore(map[protocol.Suite][][]byte{protocol.SuitePQ: roots}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return recordingClient(mtls.Client(cert, ts.All, nil, accept))
}

func post(c *http.Client, url, contentType string, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp, buf.Bytes(), err
}

// TestRefusalTLS checks who may talk to whom: the gateway refuses, in the
// TLS handshake, a merchant certificate from another CA and a cardholder's
// certificate; the gateway and the merchant refuse a client without a
// certificate. Each refused client is set up exactly like an accepted one
// but for the certificate it presents.
func TestRefusalTLS(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{cards: []card{{PAN: panVisa}}})
	id := w.mustBuy(t, panVisa, "e2e tls: 1 x mug", "12.34")
	var authReq []byte
	queryRow(t, w.merchantDB(), `SELECT authreq FROM orders WHERE id = ?`, []any{id}, &authReq)

	// The accepted case: the real merchant's certificate gets the
	// gateway's recorded answer to its AuthReq.
	merchantCreds := loadCreds(t, w.mDir)
	okClient, _ := clientOf(t, &merchantCreds.TLS, w.root, protocol.CertGatewayTLS)
	resp, _, err := post(okClient, w.gwURL()+"/auth", agent.ContentType, authReq)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the real merchant's certificate: %v %v", resp, err)
	}

	// refusedByGateway posts the recorded AuthReq presenting cert: the
	// gateway must refuse the handshake for reason (the client itself
	// accepts the gateway's certificate: it trusts the real root).
	refusedByGateway := func(t *testing.T, cert *tls.Certificate, reason string) {
		t.Helper()
		c, dialled := clientOf(t, cert, w.root, protocol.CertGatewayTLS)
		refusedHandshake(t, c, dialled, w.gwURL()+"/auth", agent.ContentType, authReq, w.gw.log, reason)
	}

	t.Run("merchant certificate from another CA", func(t *testing.T) {
		// A second CA, with the same merchant id enrolled, and a merchant
		// registered with it.
		dir := t.TempDir()
		ca2, m2 := filepath.Join(dir, "ca2"), filepath.Join(dir, "m2")
		writeJSON(t, filepath.Join(dir, "accounts.json"), []map[string]any{})
		writeJSON(t, filepath.Join(dir, "enroll.json"), []map[string]any{
			{"role": 2, "id": merchantID, "name": "impostor", "acquirerBIN": acquirerBIN, "activationCode": "other-code"}})
		mustRun(t, nil, "ca", "init", "--dir", ca2, "--suite", "pq")
		ca2Proc, ca2Addr := serve(t, "ca2", dir, "127.0.0.1:0", "ca", "serve", "--dir", ca2, "--step-addr", "",
			"--accounts", filepath.Join(dir, "accounts.json"), "--enroll", filepath.Join(dir, "enroll.json"))
		mustRun(t, nil, "merchant", "register", "--dir", m2, "--ca", "https://"+ca2Addr, "--roots", filepath.Join(ca2, "pq", "root.pem"),
			"--id", merchantID, "--acquirer-bin", acquirerBIN, "--code", "other-code")
		ca2Proc.stop(t)
		impostor := loadCreds(t, m2)
		if impostor.Sig == nil || impostor.Sig.Cert.MerchantID() != merchantID {
			t.Fatalf("the other CA's merchant is not %s", merchantID)
		}
		refusedByGateway(t, &impostor.TLS, "mtls: peer certificate: protocol: certificate chain invalid")
		// The gateway still serves the real merchant.
		w.mustBuy(t, panVisa, "e2e tls: after the impostor", "12.34")
	})

	t.Run("cardholder certificate", func(t *testing.T) {
		ch := loadCreds(t, w.wallets[panVisa])
		refusedByGateway(t, &ch.TLS, "mtls: the peer presented a cardholder TLS certificate")
	})

	t.Run("no certificate", func(t *testing.T) {
		// This test only: no client certificate, and no check of the server's.
		noCert := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
		orders := count(t, w.merchantDB(), `SELECT COUNT(*) FROM orders`)
		c, dialled := recordingClient(noCert)
		refusedHandshake(t, c, dialled, w.gwURL()+"/auth", agent.ContentType, authReq, w.gw.log, "client didn't provide a certificate")
		order := []byte(`{"description":"e2e tls: no certificate","amount":1234}`)
		c, dialled = recordingClient(noCert)
		refusedHandshake(t, c, dialled, w.mURL()+"/orders", "application/json", order, w.m.log, "client didn't provide a certificate")
		if n := count(t, w.merchantDB(), `SELECT COUNT(*) FROM orders`); n != orders {
			t.Errorf("merchant.db: %d orders, want %d (no order from a client without a certificate)", n, orders)
		}
		// The same order with the cardholder's certificate is stored.
		ch := loadCreds(t, w.wallets[panVisa])
		chClient, _ := clientOf(t, &ch.TLS, w.root, protocol.CertMerchantTLS)
		resp, body, err := post(chClient, w.mURL()+"/orders", "application/json", order)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("the cardholder's certificate: %v %v %s", resp, err, body)
		}
		if n := count(t, w.merchantDB(), `SELECT COUNT(*) FROM orders`); n != orders+1 {
			t.Errorf("merchant.db: %d orders after the cardholder's order, want %d", n, orders+1)
		}
	})
}

// TestRestart crashes the gateway and the merchant (SIGKILL) after a
// purchase was captured, restarts them on the same addresses, and checks
// that the ledgers are intact and that a retried CapReq and AuthReq (the
// recorded bytes, sent again with the merchant's credentials) get the
// recorded answers byte for byte, with nothing captured or held twice.
func TestRestart(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{cards: []card{{PAN: panVisa}}})
	id := w.mustBuy(t, panVisa, "e2e restart: 2 x espresso cups", "12.34")
	waitOrderState(t, w.merchantDB(), id, "captured", "capture-refused")

	var xid, authReq, capReq []byte
	queryRow(t, w.merchantDB(), `SELECT o.xid, o.authreq, b.request FROM orders o JOIN batches b ON b.id = o.batch WHERE o.id = ?`,
		[]any{id}, &xid, &authReq, &capReq)

	w.m.kill(t)
	w.gw.kill(t)
	w.restart(t, &w.gw, &w.gwAddr, "gateway", w.gwArgs)
	w.restart(t, &w.m, &w.mAddr, "merchant", w.mArgs)

	// The ledgers survived.
	var state string
	var captured int64
	queryRow(t, w.merchantDB(), `SELECT state, captured FROM orders WHERE id = ?`, []any{id}, &state, &captured)
	if state != "captured" || captured != 1234 {
		t.Errorf("merchant.db after the restart: order %q captured %d, want captured 1234", state, captured)
	}
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM authorizations WHERE xid = ? AND state = 'approved' AND amount = 1234`, xid); n != 1 {
		t.Errorf("gateway.db after the restart: %d approved authorizations of the order, want 1", n)
	}
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM captures WHERE xid = ? AND amount = 1234`, xid); n != 1 {
		t.Errorf("gateway.db after the restart: %d captures of the order, want 1", n)
	}
	bankCaps := func() (n, total int64) {
		queryRow(t, w.bankDB(), `SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM captures WHERE merchant = ?`, []any{merchantID}, &n, &total)
		return n, total
	}
	bankAuths := func() (n, open int64) {
		queryRow(t, w.bankDB(), `SELECT COUNT(*), COALESCE(SUM(state = 'open'), 0) FROM authorizations`, nil, &n, &open)
		return n, open
	}
	if n, total := bankCaps(); n != 1 || total != 1234 {
		t.Errorf("bank.db after the restart: %d captures totalling %d, want 1 of 1234", n, total)
	}
	if n, open := bankAuths(); n != 1 || open != 0 {
		t.Errorf("bank.db after the restart: %d authorizations, %d open holds; want 1, 0", n, open)
	}

	// The merchant's credentials, as its gateway client uses them.
	creds := loadCreds(t, w.mDir)
	ts, err := agent.NewTrustStore(map[protocol.Suite][][]byte{protocol.SuitePQ: creds.Roots}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := tlsClient(mtls.Client(&creds.TLS, ts.All, nil, protocol.CertGatewayTLS))
	recorded := func(req []byte, kind string) []byte {
		t.Helper()
		h := sha256.Sum256(req)
		var resp []byte
		var k string
		queryRow(t, w.gatewayDB(), `SELECT response, kind FROM answers WHERE hash = ?`, []any{h[:]}, &resp, &k)
		if k != kind {
			t.Fatalf("gateway.db: the answer recorded is for a %s, want %s", k, kind)
		}
		return resp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The CapReq again.
	_, reply, err := agent.PostDER(ctx, client, w.gwURL()+"/capture", capReq)
	if err != nil {
		t.Fatalf("CapReq again: %v", err)
	}
	if want := recorded(capReq, "CapReq"); !bytes.Equal(reply, want) {
		t.Errorf("CapReq again: the reply (%d bytes) is not the recorded CapRes (%d bytes)", len(reply), len(want))
	}
	if n, total := bankCaps(); n != 1 || total != 1234 {
		t.Errorf("bank.db after the CapReq again: %d captures totalling %d, want 1 of 1234", n, total)
	}
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM captures`); n != 1 {
		t.Errorf("gateway.db after the CapReq again: %d captures, want 1", n)
	}

	// The AuthReq again.
	_, reply, err = agent.PostDER(ctx, client, w.gwURL()+"/auth", authReq)
	if err != nil {
		t.Fatalf("AuthReq again: %v", err)
	}
	if want := recorded(authReq, "AuthReq"); !bytes.Equal(reply, want) {
		t.Errorf("AuthReq again: the reply (%d bytes) is not the recorded AuthRes (%d bytes)", len(reply), len(want))
	}
	if n, open := bankAuths(); n != 1 || open != 0 {
		t.Errorf("bank.db after the AuthReq again: %d authorizations, %d open holds; want 1, 0", n, open)
	}
	if n := count(t, w.gatewayDB(), `SELECT COUNT(*) FROM authorizations`); n != 1 {
		t.Errorf("gateway.db after the AuthReq again: %d authorizations, want 1", n)
	}

	// The restarted parties still take purchases and capture them.
	id2 := w.mustBuy(t, panVisa, "e2e restart: after", "5.00")
	waitOrderState(t, w.merchantDB(), id2, "captured", "capture-refused")
	if n, total := bankCaps(); n != 2 || total != 1234+500 {
		t.Errorf("bank.db after a second purchase: %d captures totalling %d, want 2 of 1734", n, total)
	}
}

func hasLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// containsBase reports whether one of paths is the database db (or its
// -wal file).
func containsBase(paths []string, db string) bool {
	for _, p := range paths {
		if b := filepath.Base(p); b == db || b == db+"-wal" {
			return true
		}
	}
	return false
}

func containsDir(paths []string, dir string) bool {
	for _, p := range paths {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func hasWireFile(t testing.TB, dir, suffix string) bool {
	return len(wireFiles(t, dir, suffix)) > 0
}

// wireFiles returns the contents of the files of a wire/ directory whose
// names end in suffix.
func wireFiles(t testing.TB, dir, suffix string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, n := range readDir(t, dir) {
		if strings.HasSuffix(n, suffix) {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}
