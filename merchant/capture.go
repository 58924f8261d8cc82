package merchant

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/setpay/setpay/internal/agent"
	"github.com/setpay/setpay/protocol"
)

// CaptureResult sums up one capture run.
type CaptureResult struct {
	Batches  int
	Captured int // items captured
	Refused  int // items the gateway refused
}

// Capture captures every authorized order not yet captured, in batches of
// at most protocol.MaxCapItems per suite. Batches sent earlier without a
// recorded answer (the merchant stopped or the gateway did not answer) are
// sent again first, byte for byte, so the gateway answers them from its
// ledger and captures nothing twice. Each batch is recorded before it is
// sent.
func (m *Merchant) Capture(ctx context.Context) (_ CaptureResult, err error) {
	m.capMu.Lock()
	defer m.capMu.Unlock()
	var r CaptureResult
	open, err := m.store.openBatches(ctx)
	if err != nil {
		return r, err
	}
	// A batch that cannot be settled now (the gateway is down, or its
	// answer does not verify) stays recorded and is resent at the next run;
	// it does not hold up new batches.
	var unsettled []error
	for _, b := range open {
		if err := m.sendBatch(ctx, b, &r); err != nil {
			unsettled = append(unsettled, err)
		}
	}
	defer func() {
		if len(unsettled) > 0 {
			err = errors.Join(append(unsettled, err)...)
		}
	}()
	for _, s := range m.Suites() {
		for {
			orders, err := m.store.toCapture(ctx, s, protocol.MaxCapItems)
			if err != nil || len(orders) == 0 {
				if err != nil {
					return r, err
				}
				break
			}
			b, err := m.newBatch(ctx, s, orders)
			if err != nil {
				return r, err
			}
			if err := m.sendBatch(ctx, b, &r); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// newBatch builds, signs, seals and records the CapReq of orders.
func (m *Merchant) newBatch(ctx context.Context, s protocol.Suite, orders []*order) (*batch, error) {
	gw, err := m.gatewayCert(ctx, s)
	if err != nil {
		return nil, err
	}
	items := make([]protocol.CapItem, 0, len(orders))
	ids := make([]string, 0, len(orders))
	for _, o := range orders {
		d, err := protocol.Decode[protocol.AuthResData](o.AuthResData)
		if err != nil || d.CapToken == nil {
			return nil, fmt.Errorf("order %s: no CapToken recorded", o.ID)
		}
		items = append(items, protocol.CapItem{TransIDs: d.TransIDs, AuthRRPID: d.RRPID, CapAmt: d.AuthAmt, CapToken: *d.CapToken})
		ids = append(ids, o.ID)
	}
	id, err := m.store.nextBatchID(ctx)
	if err != nil {
		return nil, err
	}
	var rrpid protocol.RRPID
	if _, err := io.ReadFull(m.rand, rrpid[:]); err != nil {
		return nil, err
	}
	req, sent, err := protocol.NewCapReq(m.keys[s], gw.cert, rrpid, id, items, m.rand)
	if err != nil {
		return nil, err
	}
	b := &batch{ID: id, Suite: s, Request: protocol.NewWrapper(req, m.now().UTC().Truncate(time.Second), nil, &rrpid).Marshal(), Sent: protocol.Encode(sent)}
	if err := m.store.newBatch(ctx, b, ids); err != nil {
		return nil, err
	}
	return b, nil
}

// sendBatch sends a recorded batch and records the CapRes.
func (m *Merchant) sendBatch(ctx context.Context, b *batch, r *CaptureResult) error {
	gw, err := m.gatewayCert(ctx, b.Suite)
	if err != nil {
		return err
	}
	w, _, err := agent.PostDER(ctx, m.gw, m.cfg.Gateway+"/capture", b.Request)
	if err != nil {
		return fmt.Errorf("capture batch %d: %w", b.ID, err)
	}
	res, err := protocol.Expect[*protocol.CapRes](w)
	if err != nil {
		return fmt.Errorf("capture batch %d: %w", b.ID, err)
	}
	sent, err := protocol.Decode[protocol.CapReqData](b.Sent)
	if err != nil {
		return err
	}
	d, err := protocol.VerifyCapRes(m.trust.Get(b.Suite), m.keys[b.Suite], gw.cert, sent, res)
	if err != nil {
		return fmt.Errorf("capture batch %d: %w", b.ID, err)
	}
	if err := m.store.finishBatch(ctx, b.ID, d.Items); err != nil {
		return err
	}
	r.Batches++
	for _, it := range d.Items {
		if it.Code == 0 {
			r.Captured++
		} else {
			r.Refused++
		}
	}
	m.log.Info("capture batch answered", "batch", b.ID, "items", len(d.Items))
	return nil
}

// CaptureEvery runs Resume and Capture every interval until ctx is done,
// logging failures (what failed is retried at the next run).
func (m *Merchant) CaptureEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := m.Resume(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("resuming authorizations failed", "err", err)
			} else if n > 0 {
				m.log.Info("resumed authorizations", "orders", n)
			}
			if r, err := m.Capture(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("capture failed; retrying at the next run", "err", err)
			} else if r.Batches > 0 {
				m.log.Info("captured", "batches", r.Batches, "items", r.Captured, "refused", r.Refused)
			}
		}
	}
}
