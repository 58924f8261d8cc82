package merchant

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

// Purchase answers a purchase message of order id from the buyer (the
// thumbprint of its TLS certificate): a PInitReq with a PInitRes, a PReq
// with a PRes, or either with an Error (DER in, DER out).
func (m *Merchant) Purchase(ctx context.Context, id string, buyer []byte, in []byte) []byte {
	o, err := m.store.get(ctx, id)
	if err != nil {
		return m.fail(in, protocol.SuitePQ, err)
	}
	if o == nil || string(o.Buyer) != string(buyer) {
		return m.fail(in, protocol.SuitePQ, errNoOrder)
	}
	w, err := protocol.Parse(in)
	if err != nil {
		return m.fail(in, o.Suite, err)
	}
	switch msg := w.Message.(type) {
	case *protocol.PInitReq:
		return m.pinit(ctx, o, msg, in)
	case *protocol.PReq:
		return m.preq(ctx, o, msg, in)
	}
	return m.fail(in, o.Suite, &protocol.CheckError{Code: protocol.CodeUnexpectedMessage, Detail: "want PInitReq or PReq, got " + w.Message.Type().String()})
}

func hashOf(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// pinit answers PInitReq: the merchant chooses the suite, a fresh XID and
// Chall-M, and names the gateway whose key-exchange certificate the PI
// must be sealed to. A PInitReq for an order already initiated is answered
// with the recorded PInitRes if it is the same request, refused otherwise.
func (m *Merchant) pinit(ctx context.Context, o *order, req *protocol.PInitReq, in []byte) []byte {
	h := hashOf(in)
	if o.State != stateAgreed {
		if string(o.PInitReq) == string(h) {
			return o.PInitRes
		}
		return m.fail(in, o.Suite, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this order was already initiated"})
	}
	s, err := protocol.ChooseSuite(req.Suites, m.Suites())
	if err != nil {
		return m.fail(in, protocol.SuitePQ, err)
	}
	gw, err := m.gatewayCert(ctx, s)
	if err != nil {
		m.log.Error("gateway certificate", "err", err)
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the merchant cannot reach its gateway"})
	}
	var xid protocol.XID
	var challM protocol.Challenge
	if _, err := io.ReadFull(m.rand, xid[:]); err != nil {
		return m.fail(in, s, err)
	}
	if _, err := io.ReadFull(m.rand, challM[:]); err != nil {
		return m.fail(in, s, err)
	}
	now := m.now().UTC().Truncate(time.Second)
	res, err := protocol.NewPInitRes(&protocol.PInitResParams{Req: req, Suite: s, Key: m.keys[s].Sig, Gateway: gw.chain,
		LIDM: []byte(o.ID), XID: xid, ChallM: challM, PReqDate: now})
	if err != nil {
		return m.fail(in, s, err)
	}
	out := protocol.NewWrapper(res, now, &res.Data.TransIDs, &res.Data.RRPID).Marshal()
	ok, err := m.store.update(ctx, o.ID, stateAgreed, map[string]any{"state": stateInitiated, "suite": s, "xid": xid[:], "pinitreq": h, "pinitres": out})
	if err != nil {
		return m.fail(in, s, err)
	}
	if !ok { // a concurrent PInitReq won
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this order was already initiated"})
	}
	m.log.Info("PInitRes sent", "order", o.ID, "suite", s.String())
	return out
}

// preq answers PReq: the protocol's checks (protocol.VerifyPReq against
// the PInitRes sent and the order agreed), then the authorization at the
// gateway, then PRes. The AuthReq is recorded before it is sent, so that a
// retry (the cardholder sending the same PReq again, after a failure or a
// crash) resends the same bytes and the gateway's ledger answers it
// without a second authorization.
func (m *Merchant) preq(ctx context.Context, o *order, req *protocol.PReq, in []byte) []byte {
	h := hashOf(in)
	s := o.Suite
	switch {
	case o.State == stateAgreed:
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeUnknownTrans, Detail: "PReq before PInitReq"})
	case o.State != stateInitiated && string(o.PReq) != string(h):
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this order was already paid with another PReq"})
	case o.PRes != nil:
		return o.PRes // answered: the same PReq again
	case o.State == stateAuthorizing:
		return m.authorize(ctx, o, &req.OIData, in)
	}
	w, err := protocol.Parse(o.PInitRes)
	if err != nil {
		return m.fail(in, s, err)
	}
	sent := w.Message.(*protocol.PInitRes)
	od := protocol.Order{OD: []byte(o.Description), PurchAmt: o.Amount}
	v, err := protocol.VerifyPReq(m.trust.Get(s), &sent.Data, &od, req, m.cfg.RequireCert)
	if err != nil {
		return m.refuse(ctx, o, in, err)
	}
	gw, err := m.gatewayCert(ctx, s)
	if err != nil {
		m.log.Error("gateway certificate", "err", err)
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the merchant cannot reach its gateway"})
	}
	p := &protocol.AuthReqParams{Keys: m.keys[s], Gateway: gw.cert, TransIDs: sent.Data.TransIDs, AuthAmt: o.Amount,
		PReq: v, PI: req.PI, Rand: m.rand}
	if _, err := io.ReadFull(m.rand, p.RRPID[:]); err != nil {
		return m.fail(in, s, err)
	}
	authReq, err := protocol.NewAuthReq(p)
	if err != nil {
		return m.fail(in, s, err)
	}
	data := p.Data()
	now := m.now().UTC().Truncate(time.Second)
	o.AuthReq = protocol.NewWrapper(authReq, now, &p.TransIDs, &p.RRPID).Marshal()
	o.AuthReqData = protocol.Encode(&data)
	ok, err := m.store.update(ctx, o.ID, stateInitiated, map[string]any{"state": stateAuthorizing, "preq": h, "authreq": o.AuthReq,
		"authreq_data": o.AuthReqData, "oidata": protocol.Encode(&req.OIData)})
	if err != nil {
		return m.fail(in, s, err)
	}
	if !ok {
		// Another copy of a PReq moved the order on meanwhile: if it was
		// this PReq, answer as for a retry (its AuthReq, not this one, is
		// the one recorded); otherwise it is another PReq.
		now, err := m.store.get(ctx, o.ID)
		if err != nil {
			return m.fail(in, s, err)
		}
		if now != nil && string(now.PReq) == string(h) && (now.PRes != nil || now.State == stateAuthorizing) {
			return m.preq(ctx, now, req, in)
		}
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeReplay, Detail: "this order is being paid by another PReq"})
	}
	o.State, o.PReq = stateAuthorizing, h
	return m.authorize(ctx, o, &req.OIData, in)
}

// refuse records that a check of the PReq failed and answers with the
// Error; a retry of the same PReq gets the same answer.
func (m *Merchant) refuse(ctx context.Context, o *order, in []byte, err error) []byte {
	out := m.fail(in, o.Suite, err)
	set := map[string]any{"state": stateRefused, "pres": out, "code": int(agent.Code(err))}
	if o.PReq == nil { // refused by the merchant's own checks; else the PReq is recorded
		set["preq"] = hashOf(in)
	}
	if _, uerr := m.store.update(ctx, o.ID, o.State, set); uerr != nil {
		m.log.Error("recording a refusal", "order", o.ID, "err", uerr)
	}
	return out
}

// gatewayRetries bounds the attempts to reach the gateway for one request.
const gatewayRetries = 4

// authorize sends the recorded AuthReq (retrying while the gateway is
// unavailable), checks the AuthRes and answers the cardholder with PRes,
// for the PReq whose OIData is oi (in is the PReq's DER, nil when Resume
// settles an order no cardholder is waiting for).
func (m *Merchant) authorize(ctx context.Context, o *order, oi *protocol.OIData, in []byte) []byte {
	s := o.Suite
	gw, err := m.gatewayCert(ctx, s)
	if err != nil {
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the merchant cannot reach its gateway"})
	}
	var w *protocol.Wrapper
	for attempt, wait := 1, 100*time.Millisecond; ; attempt, wait = attempt+1, wait*2 {
		w, _, err = agent.PostDER(ctx, m.gw, m.cfg.Gateway+"/auth", o.AuthReq)
		if err == nil || !retryable(err) || attempt == gatewayRetries {
			break
		}
		m.log.Warn("gateway unavailable, retrying", "order", o.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the purchase was cancelled"})
		case <-time.After(wait):
		}
	}
	if err != nil {
		var re *agent.RemoteError
		if errors.As(err, &re) && re.Data.Code != protocol.CodeUnavailable {
			return m.refuse(ctx, o, in, err) // the gateway refused the AuthReq
		}
		// Still authorizing: the cardholder may send the same PReq again.
		return m.fail(in, s, &protocol.CheckError{Code: protocol.CodeUnavailable, Detail: "the gateway does not answer; send the same PReq again later"})
	}
	res, err := protocol.Expect[*protocol.AuthRes](w)
	if err != nil {
		return m.refuse(ctx, o, in, err)
	}
	sent, err := protocol.Decode[protocol.AuthReqData](o.AuthReqData)
	if err != nil {
		return m.fail(in, s, err)
	}
	d, err := protocol.VerifyAuthRes(m.trust.Get(s), m.keys[s], gw.cert, sent, res)
	if err != nil {
		return m.refuse(ctx, o, in, err)
	}
	set := map[string]any{"authres_data": protocol.Encode(d)}
	var pres *protocol.PRes
	if d.Result == protocol.AuthApproved {
		pres, err = protocol.NewPRes(m.keys[s].Sig, oi, protocol.PurchApproved, &d.AuthAmt, 0)
		set["state"], set["auth_amount"] = stateAuthorized, d.AuthAmt.Value
	} else {
		pres, err = protocol.NewPRes(m.keys[s].Sig, oi, protocol.PurchDeclined, nil, d.Reason)
		set["state"], set["reason"] = stateDeclined, int(d.Reason)
	}
	if err != nil {
		return m.fail(in, s, err)
	}
	out := protocol.NewWrapper(pres, m.now().UTC().Truncate(time.Second), &oi.TransIDs, &oi.RRPID).Marshal()
	set["pres"] = out
	if _, err := m.store.update(ctx, o.ID, stateAuthorizing, set); err != nil {
		return m.fail(in, s, err)
	}
	m.log.Info("PRes sent", "order", o.ID, "state", set["state"], "reason", d.Reason.String())
	return out
}

// retryable reports whether a gateway exchange may succeed if tried again
// with the same bytes: the gateway said so, or it was not reached.
func retryable(err error) bool {
	var re *agent.RemoteError
	if errors.As(err, &re) {
		return re.Data.Code == protocol.CodeUnavailable
	}
	return true
}

// Resume settles the orders left authorizing (the merchant stopped, or the
// gateway did not answer, after the AuthReq was recorded and before its
// answer was): it sends each recorded AuthReq again, byte for byte, and
// records the outcome and the PRes, so that an approved authorization is
// captured even if the cardholder never retries. It returns how many
// orders it settled.
func (m *Merchant) Resume(ctx context.Context) (int, error) {
	orders, err := m.store.inState(ctx, stateAuthorizing)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range orders {
		oi, err := protocol.Decode[protocol.OIData](o.OIData)
		if err != nil {
			return n, fmt.Errorf("order %s: %w", o.ID, err)
		}
		m.authorize(ctx, o, oi, nil)
		if now, err := m.store.get(ctx, o.ID); err == nil && now != nil && now.State != stateAuthorizing {
			n++
		}
	}
	return n, nil
}
