package protocol_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/setpay/setpay/internal/testpki"
	"github.com/setpay/setpay/protocol"
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Example runs a whole purchase in memory with the package's API, as the
// three agents do over the network, and shows what each party learns.
func Example() {
	p := testpki.New(protocol.SuitePQ, "example") // CA hierarchy, cardholder, merchant, gateway
	rnd := rand.NewChaCha8([32]byte{})            // fixed randomness: the run is reproducible
	order := protocol.Order{OD: []byte("1 x The Illustrated SET"), PurchAmt: protocol.Amount{Currency: 978, Value: 4200}}

	// Cardholder -> merchant: PInitReq. Merchant -> cardholder: PInitRes.
	pinitReq := must(protocol.NewPInitReq(rnd, []byte("C-1"), "en", testpki.TestBrand, testpki.TestBIN, []protocol.Suite{protocol.SuitePQ}, nil))
	pinitRes := must(protocol.NewPInitRes(&protocol.PInitResParams{Req: pinitReq, Suite: protocol.SuitePQ,
		Key: p.Merchant.Sig, Gateway: p.Gateway.KE.Chain, LIDM: []byte("M-1"), XID: protocol.XID{1}, ChallM: protocol.Challenge{2}, PReqDate: testpki.Epoch}))
	terms := must(protocol.VerifyPInitRes(p.Trust, pinitReq, pinitRes, nil))

	// Cardholder -> merchant: PReq, dual-signed, PI sealed to the gateway.
	preq := must(protocol.NewPReq(&protocol.PReqParams{Terms: terms, ChallC: pinitReq.ChallC, BrandID: testpki.TestBrand, BIN: testpki.TestBIN,
		OD: order.OD, PurchAmt: order.PurchAmt, RRPID: protocol.RRPID{3}, ODSalt: protocol.Nonce{4}, EXNonce: protocol.Nonce{5},
		Card: p.Card, Key: p.Cardholder, Rand: rnd}))
	verified := must(protocol.VerifyPReq(p.Trust, &pinitRes.Data, &order, preq.PReq, true))
	fmt.Println("merchant verified the dual signature of", verified.Cardholder.X509.Subject.CommonName)

	// Merchant -> gateway: AuthReq. Gateway -> merchant: AuthRes.
	authReq := must(protocol.NewAuthReq(&protocol.AuthReqParams{Keys: p.Merchant, Gateway: terms.Gateway, TransIDs: pinitRes.Data.TransIDs,
		RRPID: protocol.RRPID{6}, AuthAmt: order.PurchAmt, PReq: verified, PI: preq.PReq.PI, Rand: rnd}))
	auth := must(protocol.VerifyAuthReq(p.Trust, p.Gateway, protocol.AmountPolicy{}, authReq))
	fmt.Println("gateway read the card:", auth.PANData.PAN, "and the amount:", auth.PIHead.PurchAmt.Value)
	authRes := must(protocol.NewAuthRes(p.Gateway, auth, &protocol.AuthDecision{Result: protocol.AuthApproved,
		AuthAmt: order.PurchAmt, AuthCode: "A1B2C3", BankRef: []byte("hold-1")}, testpki.Epoch, rnd))
	approved := must(protocol.VerifyAuthRes(p.Trust, p.Merchant, terms.Gateway, &auth.Request, authRes))
	fmt.Println("merchant got approval", approved.AuthCode, "naming itself:", approved.MerchantID)

	// Merchant -> cardholder: PRes.
	pres := must(protocol.NewPRes(p.Merchant.Sig, &preq.PReq.OIData, protocol.PurchApproved, &approved.AuthAmt, 0))
	done := must(protocol.VerifyPRes(p.Trust, terms, &preq.PReq.OIData, pres, nil))
	fmt.Println("cardholder's purchase approved:", done.Status == protocol.PurchApproved)

	// Merchant -> gateway: CapReq. Gateway -> merchant: CapRes.
	item := protocol.CapItem{TransIDs: approved.TransIDs, AuthRRPID: approved.RRPID, CapAmt: approved.AuthAmt, CapToken: *approved.CapToken}
	capReq, sent := must2(protocol.NewCapReq(p.Merchant, terms.Gateway, protocol.RRPID{7}, 1, []protocol.CapItem{item}, rnd))
	batch := must(protocol.VerifyCapReq(p.Trust, p.Gateway, capReq))
	capRes := must(protocol.NewCapRes(p.Gateway, batch, []protocol.CapResItem{{XID: item.TransIDs.XID, CapAmt: batch.Items[0].Token.AuthAmt}}, rnd))
	captured := must(protocol.VerifyCapRes(p.Trust, p.Merchant, terms.Gateway, sent, capRes))
	fmt.Println("captured:", captured.Items[0].CapAmt.Value)
	// Output:
	// merchant verified the dual signature of cardholder
	// gateway read the card: [PAN redacted] and the amount: 4200
	// merchant got approval A1B2C3 naming itself: M-0001
	// cardholder's purchase approved: true
	// captured: 4200
}

func must2[T, U any](t T, u U, err error) (T, U) {
	if err != nil {
		panic(err)
	}
	return t, u
}
