package cardholder_test

import (
	"slices"
	"testing"
	"time"

	"github.com/setpay/setpay/internal/agenttest"
)

// BenchmarkPurchase is the latency of one whole purchase as the cardholder
// sees it: order agreement, PInitReq/PInitRes and PReq/PRes over mutual
// TLS (connections reused), with the merchant's AuthReq/AuthRes to the
// gateway, the issuer's decision and every ledger write (SQLite,
// synchronous=FULL) in between; suite pq, all parties in this process.
// It reports the median and the 95th percentile besides the mean.
//
//	go test ./cardholder -run '^$' -bench Purchase -benchtime 200x
func BenchmarkPurchase(b *testing.B) {
	r := agenttest.New(b, agenttest.Options{VelocityLimit: 1 << 30})
	c := r.NewCardholder(agenttest.CardholderOptions{})
	if _, err := c.Buy(r.Merchant, tea); err != nil { // warm the connections
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		rec, err := c.Buy(r.Merchant, tea)
		if err != nil || rec.Err() != nil {
			b.Fatal(err, rec.Err())
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*95/100]), "p95-ms")
}
