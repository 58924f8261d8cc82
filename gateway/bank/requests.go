package bank

import (
	"fmt"
	"strconv"
	"time"

	"github.com/setpay/setpay/protocol"
)

// This file holds the typed requests the gateway sends and the one response
// type it reads back. Each request marshals itself to the wire format and
// parses the bank's answer to it, checking that the answer is to this
// request: build the request, Marshal, [Network.Exchange], ParseResponse.

// processingPurchase is the only processing code (field 3) the bank
// handles: purchase of goods or services from the default accounts.
const processingPurchase = "000000"

// AuthRequest is an authorization request (0100) to the issuer: hold Amount
// on the card for the merchant. The pair (MerchantID, RRN) names the
// authorization from then on: a retry with the same pair gets the recorded
// answer, and the capture and the reversal name it again.
type AuthRequest struct {
	PAN        protocol.PAN
	Expiry     string    // YYYYMM, as in PANData.CardExpiry
	Amount     int64     // minor units, 1..999999999999
	Currency   int       // ISO 4217 numeric, 1..999
	MerchantID string    // 1..40 printable ASCII characters
	RRN        string    // retrieval reference number: 12 letters or digits, unique per merchant
	STAN       int       // systems trace audit number, 0..999999
	When       time.Time // transmission time (field 7)
}

// Marshal encodes the request as a 0100 message.
func (r *AuthRequest) Marshal() ([]byte, error) {
	if len(r.Expiry) != 6 {
		return nil, formatErr(FieldExpiry, "card expiry is not YYYYMM")
	}
	m := header(MTIAuthRequest, r.MerchantID, r.RRN, r.Amount, r.Currency, r.STAN, r.When)
	m.Fields[FieldPAN] = r.PAN.Digits()
	m.Fields[FieldExpiry] = r.Expiry[2:]
	return m.Marshal()
}

// ParseResponse parses the issuer's answer (0110) and checks it answers r.
// An approved response carries an authorization id; a declined one a
// reason.
func (r *AuthRequest) ParseResponse(b []byte) (*Response, error) {
	return parseResponse(b, MTIAuthResponse, r.MerchantID, r.RRN, r.Amount, r.Currency)
}

// CaptureRequest is a capture (0220, completion advice) to the acquirer: of
// the authorization (MerchantID, RRN) with id AuthID, post Amount (at most
// the amount held) to the card and pay it to the merchant; the rest of the
// hold is released.
type CaptureRequest struct {
	MerchantID string
	RRN        string // the authorization's
	AuthID     string // the authorization's, field 38 of its approval
	Amount     int64
	Currency   int
	STAN       int
	When       time.Time
}

// Marshal encodes the request as a 0220 message.
func (r *CaptureRequest) Marshal() ([]byte, error) {
	m := header(MTICaptureAdvice, r.MerchantID, r.RRN, r.Amount, r.Currency, r.STAN, r.When)
	m.Fields[FieldAuthID] = r.AuthID
	return m.Marshal()
}

// ParseResponse parses the acquirer's answer (0230) and checks it answers r.
func (r *CaptureRequest) ParseResponse(b []byte) (*Response, error) {
	return parseResponse(b, MTICaptureResponse, r.MerchantID, r.RRN, r.Amount, r.Currency)
}

// ReversalRequest is a reversal (0400) to the issuer: release the whole hold
// of the authorization (MerchantID, RRN). Amount and Currency are the
// authorization's. AuthID is optional (the gateway may not have seen the
// approval, e.g. after a crash); when set it must match.
type ReversalRequest struct {
	MerchantID string
	RRN        string
	AuthID     string // optional
	Amount     int64
	Currency   int
	STAN       int
	When       time.Time
}

// Marshal encodes the request as a 0400 message.
func (r *ReversalRequest) Marshal() ([]byte, error) {
	m := header(MTIReversalRequest, r.MerchantID, r.RRN, r.Amount, r.Currency, r.STAN, r.When)
	if r.AuthID != "" {
		m.Fields[FieldAuthID] = r.AuthID
	}
	return m.Marshal()
}

// ParseResponse parses the issuer's answer (0410) and checks it answers r.
func (r *ReversalRequest) ParseResponse(b []byte) (*Response, error) {
	return parseResponse(b, MTIReversalResponse, r.MerchantID, r.RRN, r.Amount, r.Currency)
}

// header returns a message with the fields every request carries.
func header(mti, merchantID, rrn string, amount int64, currency, stan int, when time.Time) *Message {
	return &Message{MTI: mti, Fields: map[int]string{
		FieldProcessingCode:   processingPurchase,
		FieldAmount:           fmt.Sprintf("%012d", amount),
		FieldTransmissionTime: when.UTC().Format("0102150405"),
		FieldSTAN:             fmt.Sprintf("%06d", stan),
		FieldRRN:              rrn,
		FieldMerchantID:       merchantID,
		FieldCurrency:         fmt.Sprintf("%03d", currency),
	}}
}

// Response is the bank's answer to a request, as the request's
// ParseResponse reads it.
type Response struct {
	Code     string                 // field 39, one of the Code constants
	Approved bool                   // Code is "00"
	AuthID   string                 // field 38: of an approved authorization; echoed by captures and reversals that sent it; else ""
	Reason   protocol.DeclineReason // when not approved: DeclineReasonOf(Code)
	STAN     int                    // field 11; a repeated request gets the first one's answer, with its STAN
}

func parseResponse(b []byte, mti, merchantID, rrn string, amount int64, currency int) (*Response, error) {
	m, err := Parse(b)
	if err != nil {
		return nil, err
	}
	if m.MTI != mti {
		return nil, fmt.Errorf("bank: got a %s message, want %s", m.MTI, mti)
	}
	f := m.Fields
	switch {
	case f[FieldMerchantID] != merchantID:
		return nil, fmt.Errorf("bank: %s answers another merchant", mti)
	case f[FieldRRN] != rrn:
		return nil, fmt.Errorf("bank: %s answers another retrieval reference number", mti)
	case f[FieldAmount] != fmt.Sprintf("%012d", amount):
		return nil, fmt.Errorf("bank: %s answers another amount", mti)
	case f[FieldCurrency] != fmt.Sprintf("%03d", currency):
		return nil, fmt.Errorf("bank: %s answers another currency", mti)
	}
	r := &Response{Code: f[FieldResponseCode], AuthID: f[FieldAuthID]}
	r.STAN, _ = strconv.Atoi(f[FieldSTAN]) // six digits: Parse checked
	if r.Code == CodeApproved {
		r.Approved = true
		if mti == MTIAuthResponse && r.AuthID == "" {
			return nil, fmt.Errorf("bank: approved %s without an authorization id", mti)
		}
		return r, nil
	}
	reason, ok := DeclineReasonOf(r.Code)
	if !ok {
		return nil, fmt.Errorf("bank: %s has unknown response code %q", mti, r.Code)
	}
	if mti == MTIAuthResponse && r.AuthID != "" {
		return nil, fmt.Errorf("bank: declined %s with an authorization id", mti)
	}
	r.Reason = reason
	return r, nil
}
