package protocol_test

import (
	"errors"
	"strings"
	"testing"

	. "github.com/setpay/setpay/protocol"
)

func TestErrorMessage(t *testing.T) {
	for _, s := range Suites {
		f := newFlow(t, s)
		f.must(f.pinit)
		f.pinitRes.Data.ChallM[0] ^= 1
		cause := f.checkPInitRes()
		offending := NewWrapper(f.pinitRes, f.pinitRes.Data.TransIDs.PReqDate, nil, nil).Marshal()

		t.Run(s.String()+"/a signed Error carries the code and verifies", func(t *testing.T) {
			e, err := NewError(cause, Challenge{9}, s, offending, f.p.Merchant.Sig)
			if err != nil {
				t.Fatal(err)
			}
			e = wire(t, e)
			if e.Data.Code != CodeSignature || e.Data.Thumb == nil || *e.Data.Thumb != ErrorThumb(s, offending) {
				t.Fatalf("Error data = %+v", e.Data)
			}
			if !strings.Contains(e.Data.Detail, "PInitRes") {
				t.Errorf("detail %q does not say what failed", e.Data.Detail)
			}
			if _, err := VerifyError(f.p.Trust, e, CertMerchantSignature, s); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(s.String()+"/a changed signed Error does not verify", func(t *testing.T) {
			e, _ := NewError(cause, Challenge{9}, s, offending, f.p.Merchant.Sig)
			e.Data.Code = CodeDecrypt
			if _, err := VerifyError(f.p.Trust, wire(t, e), CertMerchantSignature, s); CodeOf(err) != CodeSignature {
				t.Fatalf("got %v", err)
			}
		})
		t.Run(s.String()+"/an unsigned Error cannot be verified", func(t *testing.T) {
			e, _ := NewError(cause, Challenge{9}, s, nil, nil)
			e = wire(t, e)
			if e.Signature != nil || e.Data.Thumb != nil {
				t.Fatalf("unsigned Error = %+v", e)
			}
			if _, err := VerifyError(f.p.Trust, e, CertMerchantSignature, s); CodeOf(err) != CodeSignature {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Codes() {
		if !c.Known() || seen[c.String()] || strings.HasPrefix(c.String(), "code ") {
			t.Errorf("code %d has a missing or duplicate name %q", c, c.String())
		}
		seen[c.String()] = true
		err := error(&CheckError{Code: c, Detail: "x"})
		if !errors.Is(err, c) || CodeOf(err) != c {
			t.Errorf("errors.Is/CodeOf do not see code %d", c)
		}
	}
	if len(Codes()) < 30 {
		t.Errorf("only %d codes", len(Codes()))
	}
}

func TestChooseSuite(t *testing.T) {
	if s, err := ChooseSuite([]Suite{77, SuiteNIST, SuitePQ}, []Suite{SuitePQ, SuiteNIST}); err != nil || s != SuiteNIST {
		t.Errorf("ChooseSuite follows the cardholder's order: got %v, %v", s, err)
	}
	if _, err := ChooseSuite([]Suite{SuitePQ}, []Suite{SuiteNIST}); CodeOf(err) != CodeUnknownSuite {
		t.Errorf("no common suite: got %v", err)
	}
	for _, s := range Suites {
		if got, err := ParseSuite(s.String()); err != nil || got != s {
			t.Errorf("ParseSuite(%q) = %v, %v", s, got, err)
		}
	}
}
