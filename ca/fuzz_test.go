package ca_test

import (
	"testing"

	"github.com/setpay/setpay/protocol"
)

// FuzzRegistrarHandle feeds arbitrary bytes to the registration authority:
// it must answer every input with a parsable reply and never panic, and bad
// input must issue nothing.
func FuzzRegistrarHandle(f *testing.F) {
	r := newRig(f)
	// Seeds: each kind of registration request, as an applicant sends it.
	a := r.applicant(protocol.RoleCardholder, protocol.SuitePQ)
	init, _ := a.CardCInitReq(nil)
	f.Add(protocol.NewWrapper(init, regNow, nil, nil).Marshal())
	if res, ok := r.send(init).(*protocol.CardCInitRes); ok && a.CheckCardCInitRes(res, nil) == nil {
		pan, _ := protocol.NewPAN(testPAN)
		rf, _ := a.RegFormReq(pan, protocol.RequestInitial)
		f.Add(protocol.NewWrapper(rf, regNow, nil, nil).Marshal())
	}
	m := r.applicant(protocol.RoleMerchant, protocol.SuiteNIST)
	me, _ := m.MeAqCInitReq(protocol.Identity{ID: "M-0001", AcquirerBIN: "400000"}, protocol.RequestInitial, nil)
	f.Add(protocol.NewWrapper(me, regNow, nil, nil).Marshal())
	f.Add([]byte{0x30, 0x00})
	before := r.issuedCount()
	f.Fuzz(func(t *testing.T, in []byte) {
		out := r.reg.Handle(t.Context(), in)
		if _, err := protocol.Parse(out); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if r.issuedCount() != before {
			t.Fatal("a fuzzed request issued a certificate")
		}
	})
}
