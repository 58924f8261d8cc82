package protocol

import (
	"errors"
	"fmt"
)

// Code is a wire-visible error code. Every check a party makes fails with its
// own Code; the same number travels in the ErrorCode of an [Error] message and
// in the per-item results of a [CapRes]. Code implements error so that
// errors.Is(err, CodeDualSignature) works on any error this package returns.
//
// The numbers are part of the protocol (docs/PROTOCOL.md, "Error codes") and
// never change meaning.
type Code uint16

// Error codes. 0 is "no error" and never appears in an [Error] message.
const (
	// Encoding.
	CodeMalformed          Code = 1 // not strict DER of the expected type
	CodeUnsupportedVersion Code = 2 // MessageHeader version is not 1
	CodeTooLarge           Code = 3 // input over MaxMessageSize
	CodeUnexpectedMessage  Code = 4 // a valid message of the wrong type here

	// Suites.
	CodeUnknownSuite  Code = 10 // a SuiteID this implementation does not know
	CodeSuiteMismatch Code = 11 // a suite other than the one agreed for the transaction
	CodeDowngrade     Code = 12 // PInitRes offer echo differs from what C offered, or choice not offered

	// Certificates.
	CodeCertMissing Code = 20 // no certificate with the signer's or recipient's thumbprint
	CodeCertChain   Code = 21 // chain does not lead to a trusted root through the right CA types
	CodeCertExpired Code = 22 // a certificate is outside its validity period
	CodeCertRevoked Code = 23 // a certificate of the chain is revoked
	CodeCertRole    Code = 24 // certificate type or key usage wrong for this use
	CodeCertKeyType Code = 25 // the certificate's key does not belong to the suite

	// Signatures and envelopes.
	CodeSignature     Code = 30 // a message signature does not verify
	CodeDualSignature Code = 31 // the dual signature does not verify
	CodeDecrypt       Code = 32 // an envelope does not open with the recipient's key

	// Freshness and transaction binding.
	CodeRRPIDMismatch    Code = 40 // a response does not echo the request's RRPID
	CodeChallCMismatch   Code = 41 // Chall-C not echoed
	CodeChallMMismatch   Code = 42 // Chall-M not echoed
	CodeXIDMismatch      Code = 43 // XID differs from the transaction's
	CodeTransIDsMismatch Code = 44 // another TransIDs field differs from the transaction's
	CodeMerchantMismatch Code = 45 // the merchant named is not the one that signed / expected
	CodeWrongGateway     Code = 46 // the gateway named is not this gateway / the agreed one
	CodeCertRequired     Code = 47 // the merchant requires a cardholder certificate

	// Purchase contents.
	CodeHODMismatch     Code = 50 // HOD differs from H(OD, amount, ODSalt) or from CheckDigests
	CodeOIMDMismatch    Code = 51 // the PI's OIMD differs from the merchant's CheckDigests (linkage)
	CodeAmountMismatch  Code = 52 // amount to authorize outside policy of PurchAmt, or currency differs
	CodeAccountHash     Code = 53 // account hash in the certificate differs from H(PAN, expiry, PANSecret)
	CodeCapTokenInvalid Code = 54 // CapToken does not open or does not match the capture item
	CodeCaptureExceeds  Code = 55 // capture amount above the authorized amount
	CodeCardData        Code = 56 // PANData malformed (Luhn, expiry format)
	CodeAlreadyCaptured Code = 57 // the authorization was already captured (gateway ledger)
	CodeUnknownTrans    Code = 58 // no transaction in the receiver's ledger fits the message
	CodeUnavailable     Code = 59 // the receiver cannot answer now (the bank is unreachable); retry the same bytes

	// Registration and revocation.
	CodeChallEEMismatch  Code = 60 // a CA reply does not echo the applicant's Chall-EE or LID-EE
	CodeChallCAMismatch  Code = 61 // LID-CA / Chall-CA were never issued by this CA
	CodeReplay           Code = 62 // a registration request (its RRPID or Chall-CA) was already used
	CodeUnknownAccount   Code = 63 // the issuer knows no such account (PAN) or BIN
	CodeAccountExpiry    Code = 64 // the card expiry differs from the issuer's, or the card expired
	CodeRegSecret        Code = 65 // the registration secret (activation code) is wrong
	CodeAccountRefused   Code = 66 // the issuer refuses certification (blocked account)
	CodeIdentityMismatch Code = 67 // the identity inside the signed request is not the applicant's
	CodeNotEnrolled      Code = 68 // the merchant or gateway is not on the enrollment list
	CodeKeyReused        Code = 69 // the public key is already certified (not fresh)
	CodeUnknownRequest   Code = 70 // no pending registration request with this id
	CodeRegForm          Code = 71 // registration form values missing, unknown or too long
	CodeRequestType      Code = 72 // request type not allowed here (what is asked for, renewal target)
	CodeRevocationInfo   Code = 73 // a BCI or CRL does not verify, is stale, or rolls back
)

var codeNames = map[Code]string{
	CodeMalformed:          "malformed message",
	CodeUnsupportedVersion: "unsupported version",
	CodeTooLarge:           "message too large",
	CodeUnexpectedMessage:  "unexpected message",
	CodeUnknownSuite:       "unknown suite",
	CodeSuiteMismatch:      "suite mismatch",
	CodeDowngrade:          "suite downgrade",
	CodeCertMissing:        "certificate missing",
	CodeCertChain:          "certificate chain invalid",
	CodeCertExpired:        "certificate expired or not yet valid",
	CodeCertRevoked:        "certificate revoked",
	CodeCertRole:           "certificate type or key usage wrong",
	CodeCertKeyType:        "certificate key not of the suite",
	CodeSignature:          "signature invalid",
	CodeDualSignature:      "dual signature invalid",
	CodeDecrypt:            "envelope does not open",
	CodeRRPIDMismatch:      "RRPID mismatch",
	CodeChallCMismatch:     "Chall-C mismatch",
	CodeChallMMismatch:     "Chall-M mismatch",
	CodeXIDMismatch:        "XID mismatch",
	CodeTransIDsMismatch:   "TransIDs mismatch",
	CodeMerchantMismatch:   "merchant mismatch",
	CodeWrongGateway:       "wrong gateway",
	CodeCertRequired:       "cardholder certificate required",
	CodeHODMismatch:        "HOD mismatch",
	CodeOIMDMismatch:       "OI/PI linkage mismatch",
	CodeAmountMismatch:     "amount mismatch",
	CodeAccountHash:        "account hash mismatch",
	CodeCapTokenInvalid:    "CapToken invalid",
	CodeCaptureExceeds:     "capture exceeds authorization",
	CodeCardData:           "card data invalid",
	CodeAlreadyCaptured:    "already captured",
	CodeUnknownTrans:       "unknown transaction",
	CodeUnavailable:        "temporarily unavailable",
	CodeChallEEMismatch:    "Chall-EE mismatch",
	CodeChallCAMismatch:    "Chall-CA mismatch",
	CodeReplay:             "replayed request",
	CodeUnknownAccount:     "unknown account",
	CodeAccountExpiry:      "card expiry wrong",
	CodeRegSecret:          "registration secret wrong",
	CodeAccountRefused:     "account refused",
	CodeIdentityMismatch:   "identity mismatch",
	CodeNotEnrolled:        "not enrolled",
	CodeKeyReused:          "key already certified",
	CodeUnknownRequest:     "unknown request",
	CodeRegForm:            "registration form invalid",
	CodeRequestType:        "request type not allowed",
	CodeRevocationInfo:     "revocation information invalid",
}

// Codes returns every defined Code in increasing order.
func Codes() []Code {
	var cs []Code
	for c := Code(1); c < 256; c++ {
		if _, ok := codeNames[c]; ok {
			cs = append(cs, c)
		}
	}
	return cs
}

// Known reports whether c is a defined code.
func (c Code) Known() bool { _, ok := codeNames[c]; return ok }

// String returns the short name of the code, e.g. "dual signature invalid".
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Error makes Code an error, so that codes can be compared with errors.Is.
func (c Code) Error() string { return fmt.Sprintf("protocol: %s (%d)", c.String(), uint16(c)) }

// CheckError is the error every check of this package returns: a wire Code and a
// local detail that says precisely what failed. The detail never contains card
// data, keys or secrets.
type CheckError struct {
	Code   Code
	Detail string
	Err    error // underlying cause, if any (a parse error, an x509 error)
}

func (e *CheckError) Error() string {
	s := "protocol: " + e.Code.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the Code and the cause, so errors.Is matches both.
func (e *CheckError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Code, e.Err}
	}
	return []error{e.Code}
}

// CodeOf returns the Code carried by err, or 0 if err carries none.
func CodeOf(err error) Code {
	var e *CheckError
	if errors.As(err, &e) {
		return e.Code
	}
	var c Code
	if errors.As(err, &c) {
		return c
	}
	return 0
}

func fail(c Code, format string, args ...any) error {
	return &CheckError{Code: c, Detail: fmt.Sprintf(format, args...)}
}

func failWrap(c Code, err error, format string, args ...any) error {
	return &CheckError{Code: c, Detail: fmt.Sprintf(format, args...), Err: err}
}
