package protocol_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/setpay/setpay/internal/testpki"
	. "github.com/setpay/setpay/protocol"
)

// secrets returns the byte strings no merchant may ever hold: the PAN (as
// ASCII digits, as the DER NumericString carries it), the card secrets and
// the expiry-plus-PAN account input.
func cardSecrets(f *flow) map[string][]byte {
	return map[string][]byte{
		"PAN":        []byte(f.card.PAN.Digits()),
		"CardSecret": f.card.CardSecret[:],
		"PANSecret":  f.card.PANSecret[:],
	}
}

func assertAbsent(t *testing.T, where string, data []byte, secrets map[string][]byte) {
	t.Helper()
	for name, s := range secrets {
		if bytes.Contains(data, s) {
			t.Errorf("%s contains the %s", where, name)
		}
		if bytes.Contains(data, []byte(hex.EncodeToString(s))) {
			t.Errorf("%s contains the %s in hex", where, name)
		}
	}
}

// TestMerchantNeverSeesCardData collects every byte the merchant receives
// (PInitReq, PReq, AuthRes, CapRes on the wire) and every plaintext it can
// open (AuthRes and CapRes contents), and checks that none holds the PAN or
// the card secrets. It also checks that the merchant's own key cannot open
// the PI.
func TestMerchantNeverSeesCardData(t *testing.T) {
	for _, s := range Suites {
		t.Run(s.String(), func(t *testing.T) {
			f := newFlow(t, s)
			f.run()
			sec := cardSecrets(f)
			received := map[string]Message{"PInitReq": f.pinitReq, "PReq": f.preq, "AuthRes": f.authRes, "CapRes": f.capRes}
			for name, m := range received {
				assertAbsent(t, name+" as received by the merchant", NewWrapper(m, testpki.Epoch, nil, nil).Marshal(), sec)
			}
			pt, err := OpenEnvelope(f.p.Merchant.KE, &f.authRes.Sealed, LabelSealAuthRes, nil)
			if err != nil {
				t.Fatal(err)
			}
			assertAbsent(t, "the AuthRes plaintext", pt, sec)
			// What the merchant's verification returns and keeps.
			assertAbsent(t, "the merchant's view of AuthRes", []byte(fmt.Sprintf("%#v", f.authData)), sec)
			assertAbsent(t, "the merchant's view of PReq", []byte(fmt.Sprintf("%#v %#v", f.verified, f.preq)), sec)

			if _, err := OpenEnvelope(f.p.Merchant.KE, &f.preq.PI.Sealed, LabelSealPIDual, PIAAD(f.preq.OIData.TransIDs.XID)); CodeOf(err) != CodeDecrypt {
				t.Errorf("merchant key on the PI: got %v, want CodeDecrypt", err)
			}
		})
	}
}

// TestGatewayNeverSeesOrderDescription collects every byte the gateway
// receives and every plaintext it opens (AuthReq and its PI, CapReq and the
// CapTokens) and checks that none holds the order description or the ODSalt
// that would let it test guesses of the order against HOD.
func TestGatewayNeverSeesOrderDescription(t *testing.T) {
	for _, s := range Suites {
		t.Run(s.String(), func(t *testing.T) {
			f := newFlow(t, s)
			f.run()
			sec := map[string][]byte{"order description": f.order.OD, "ODSalt": f.preq.OIData.ODSalt[:]}
			for name, m := range map[string]Message{"AuthReq": f.authReq, "CapReq": f.capReq} {
				assertAbsent(t, name+" as received by the gateway", NewWrapper(m, testpki.Epoch, nil, nil).Marshal(), sec)
			}
			xid := f.preq.OIData.TransIDs.XID
			opened := map[string][]byte{}
			var err error
			if opened["AuthReq"], err = OpenEnvelope(f.p.Gateway.KE, &f.authReq.Sealed, LabelSealAuthReq, nil); err != nil {
				t.Fatal(err)
			}
			if opened["PI"], err = OpenEnvelope(f.p.Gateway.KE, &f.authReq.PI.Sealed, LabelSealPIDual, PIAAD(xid)); err != nil {
				t.Fatal(err)
			}
			if opened["CapReq"], err = OpenEnvelope(f.p.Gateway.KE, &f.capReq.Sealed, LabelSealCapReq, nil); err != nil {
				t.Fatal(err)
			}
			if opened["CapToken"], err = OpenCapToken(f.p.Gateway, f.authData.CapToken, xid); err != nil {
				t.Fatal(err)
			}
			for name, pt := range opened {
				assertAbsent(t, "the "+name+" plaintext the gateway opens", pt, sec)
			}
			assertAbsent(t, "the gateway's Authorization", []byte(fmt.Sprintf("%#v", f.auth)), sec)
			// The gateway does hold the card data: the test would be
			// vacuous if the PI plaintext were not what we think it is.
			if !bytes.Contains(opened["PI"], []byte(testpki.TestPAN)) {
				t.Fatal("the PI plaintext does not hold the PAN; the test is looking at the wrong bytes")
			}
		})
	}
}

// TestCardDataNeverPrints checks that PANs and secrets print redacted with
// every fmt verb, inside structures, and in slog output, and that errors
// about card data do not repeat it.
func TestCardDataNeverPrints(t *testing.T) {
	f := newFlow(t, SuitePQ)
	f.run()
	pan := testpki.TestPAN
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("authorization", "pan", f.auth.PANData.PAN, "panData", f.auth.PANData, "card", f.card)
	outputs := []string{
		fmt.Sprint(f.card.PAN), fmt.Sprintf("%v %+v %#v %s %q %x %d", f.card.PAN, f.card.PAN, f.card.PAN, f.card.PAN, f.card.PAN, f.card.PAN, f.card.PAN),
		fmt.Sprintf("%+v %#v", f.card, f.auth), fmt.Sprintf("%v", f.auth.PANData),
		logs.String(),
	}
	secrets := []string{pan, hex.EncodeToString(f.card.PANSecret[:]), hex.EncodeToString(f.card.CardSecret[:]), fmt.Sprint([]byte(pan))}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output %q contains a secret", out)
			}
		}
	}
	for _, bad := range []string{"4111111111111112", "41111111111111x1", "4111"} {
		if _, err := NewPAN(bad); err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("NewPAN(%q) error %v repeats the input", bad, err)
		}
	}
}
