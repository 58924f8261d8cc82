package lesson

import (
	"errors"
	"slices"
	"strings"

	"github.com/setpay/setpay/protocol"
)

// checkDef is one check a receiver makes, with the codes it fails with.
type checkDef struct {
	name  string
	codes []protocol.Code
	// hint, when set, is part of the receiver's detail of this check's
	// failure: it tells apart checks that fail with the same code.
	hint string
}

var (
	certCodes  = []protocol.Code{protocol.CodeCertMissing, protocol.CodeCertChain, protocol.CodeCertExpired, protocol.CodeCertRevoked, protocol.CodeCertRole, protocol.CodeCertKeyType}
	parseCheck = checkDef{"the message is strict DER of a known type", []protocol.Code{protocol.CodeMalformed, protocol.CodeUnsupportedVersion, protocol.CodeTooLarge, protocol.CodeUnexpectedMessage}, ""}
)

func codes(cs ...any) []protocol.Code {
	var out []protocol.Code
	for _, c := range cs {
		switch c := c.(type) {
		case protocol.Code:
			out = append(out, c)
		case []protocol.Code:
			out = append(out, c...)
		}
	}
	return out
}

// checks are the receivers' checks of each message, in the order the
// protocol package makes them (its Verify functions' documentation, and
// docs/PROTOCOL.md §9).
var checks = map[string][]checkDef{
	"PInitReq": {
		parseCheck,
		{"the merchant supports a suite the cardholder offers", codes(protocol.CodeUnknownSuite, protocol.CodeDowngrade), ""},
	},
	"PInitRes": {
		parseCheck,
		{"the suite chosen is one the cardholder offered", codes(protocol.CodeDowngrade), "did not offer"},
		{"the merchant's signature, certificate chain, role and validity", codes(protocol.CodeSignature, certCodes), ""},
		{"offeredSuites echoes exactly what the cardholder offered (no downgrade)", codes(protocol.CodeDowngrade), ""},
		{"RRPID and Chall-C are echoed", codes(protocol.CodeRRPIDMismatch, protocol.CodeChallCMismatch), ""},
		{"LID-C and language are the cardholder's", codes(protocol.CodeTransIDsMismatch), ""},
		{"the gateway's key-exchange certificate is valid", certCodes, ""},
	},
	"PReq": {
		parseCheck,
		{"a dual signature is present if the merchant requires one", codes(protocol.CodeCertRequired), ""},
		{"the dual signature over hash(PI) and hash(OI) verifies with the cardholder's certificate", codes(protocol.CodeDualSignature, protocol.CodeSuiteMismatch, certCodes), ""},
		{"OIData's transaction ids are this transaction's", codes(protocol.CodeXIDMismatch, protocol.CodeTransIDsMismatch), ""},
		{"Chall-M and Chall-C are echoed", codes(protocol.CodeChallMMismatch, protocol.CodeChallCMismatch), ""},
		{"OIData names the gateway of PInitRes", codes(protocol.CodeWrongGateway), "OIData names"},
		{"HOD = hash(order description, amount, salt) for the agreed order", codes(protocol.CodeHODMismatch), ""},
		{"the PI is sealed under this suite to that gateway", codes(protocol.CodeSuiteMismatch, protocol.CodeWrongGateway), "PI"},
		{"the merchant cannot open the PI (it tries, in this attack)", codes(protocol.CodeDecrypt), ""},
	},
	"AuthReq": {
		parseCheck,
		{"the AuthReq envelope opens with the gateway's key", codes(protocol.CodeUnknownSuite, protocol.CodeSuiteMismatch, protocol.CodeDecrypt), "AuthReq"},
		{"the merchant's signature, certificate, role and validity", codes(protocol.CodeSignature, certCodes), ""},
		{"the merchant's key-exchange certificate is valid and the same merchant's", codes(certCodes, protocol.CodeMerchantMismatch), ""},
		{"the PI is sealed to this gateway and opens for this XID", codes(protocol.CodeSuiteMismatch, protocol.CodeWrongGateway, protocol.CodeDecrypt), "PI"},
		{"the dual signature verifies with the cardholder's certificate", codes(protocol.CodeDualSignature, certCodes), ""},
		{"PIHead names this gateway", codes(protocol.CodeWrongGateway), "PIHead"},
		{"PIHead's transaction ids are the AuthReq's", codes(protocol.CodeXIDMismatch, protocol.CodeTransIDsMismatch), ""},
		{"linkage: the PI's hash of the OI and its HOD equal the merchant's", codes(protocol.CodeOIMDMismatch, protocol.CodeHODMismatch), ""},
		{"PIHead names the merchant that signed the AuthReq", codes(protocol.CodeMerchantMismatch), ""},
		{"the amount to authorize is the amount the cardholder agreed", codes(protocol.CodeAmountMismatch), ""},
		{"the card data is well formed", codes(protocol.CodeCardData), ""},
		{"the account hash in the cardholder's certificate matches the card", codes(protocol.CodeAccountHash), ""},
	},
	"AuthRes": {
		parseCheck,
		{"the envelope opens with the merchant's key", codes(protocol.CodeDecrypt, protocol.CodeSuiteMismatch), ""},
		{"the gateway's signature and certificate, by the gateway the merchant sealed to", codes(protocol.CodeSignature, certCodes, protocol.CodeWrongGateway), ""},
		{"RRPID and transaction ids are the AuthReq's", codes(protocol.CodeRRPIDMismatch, protocol.CodeXIDMismatch, protocol.CodeTransIDsMismatch), ""},
		{"AuthRes names this merchant", codes(protocol.CodeMerchantMismatch), ""},
		{"the amount approved is not above the amount asked", codes(protocol.CodeAmountMismatch), ""},
	},
	"PRes": {
		parseCheck,
		{"signed by the merchant of PInitRes", codes(protocol.CodeMerchantMismatch, protocol.CodeSignature, certCodes), ""},
		{"RRPID and Chall-C echo the PReq", codes(protocol.CodeRRPIDMismatch, protocol.CodeChallCMismatch), ""},
		{"transaction ids are this transaction's", codes(protocol.CodeXIDMismatch, protocol.CodeTransIDsMismatch), ""},
	},
	"CapReq": {
		parseCheck,
		{"the envelope opens with the gateway's key", codes(protocol.CodeDecrypt, protocol.CodeSuiteMismatch), ""},
		{"the merchant's signature and certificates", codes(protocol.CodeSignature, certCodes, protocol.CodeMerchantMismatch), ""},
		{"each CapToken opens, and is for this transaction, merchant and authorization", codes(protocol.CodeCapTokenInvalid, protocol.CodeXIDMismatch, protocol.CodeMerchantMismatch, protocol.CodeRRPIDMismatch), ""},
		{"each capture is in the authorized currency and not above the authorized amount", codes(protocol.CodeAmountMismatch, protocol.CodeCaptureExceeds), ""},
	},
	"CapRes": {
		parseCheck,
		{"the envelope opens with the merchant's key", codes(protocol.CodeDecrypt, protocol.CodeSuiteMismatch), ""},
		{"the gateway's signature, by the gateway the merchant sealed to", codes(protocol.CodeSignature, certCodes, protocol.CodeWrongGateway), ""},
		{"RRPID, merchant and batch are the CapReq's", codes(protocol.CodeRRPIDMismatch, protocol.CodeMerchantMismatch), ""},
		{"one result per item, none capturing more than asked", codes(protocol.CodeTransIDsMismatch, protocol.CodeXIDMismatch, protocol.CodeAmountMismatch), ""},
	},
}

// markChecks returns the checks party makes on message, with their results
// for err (nil: all passed): the first check whose codes include err's
// code failed with err's detail, the earlier ones passed, the later ones
// were not reached. attackOnly checks (the last PReq check) are listed
// only when they ran.
func markChecks(message string, party Party, err error, ranOptional bool) []Check {
	defs := checks[message]
	if message == "PReq" && !ranOptional {
		defs = defs[:len(defs)-1]
	}
	code := protocol.CodeOf(err)
	failedAt := -1
	if err != nil {
		failedAt = len(defs) - 1 // an unlisted code: the last check
		detail := detailOf(err)
		for i, d := range defs {
			if slices.Contains(d.codes, code) && (d.hint == "" || strings.Contains(detail, d.hint)) {
				failedAt = i
				break
			}
		}
	}
	out := make([]Check, len(defs))
	for i, d := range defs {
		c := Check{Party: party, Name: d.name, Result: Passed}
		switch {
		case failedAt < 0 || i < failedAt:
		case i == failedAt:
			c.Result, c.Code, c.CodeName, c.Detail = Failed, int(code), code.String(), detailOf(err)
		default:
			c.Result = NotReached
		}
		out[i] = c
	}
	return out
}

// detailOf is the receiver's account of a failure, without the code.
func detailOf(err error) string {
	var ce *protocol.CheckError
	if errors.As(err, &ce) {
		return ce.Detail
	}
	return err.Error()
}
