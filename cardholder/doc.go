// Package cardholder will be the cardholder agent: the wallet (keys,
// certificate, card data), the registration client and the purchase client
// over mutual TLS.
//
// Not yet implemented (issue "Three agents over mutual TLS"). The cardholder's
// protocol steps exist today as pure functions in package protocol:
// protocol.NewPInitReq, protocol.VerifyPInitRes, protocol.NewPReq and
// protocol.VerifyPRes (protocol/cardholder_purchase.go).
package cardholder
