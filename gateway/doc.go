// Package gateway will be the payment gateway agent with the simulated bank
// (issuer and acquirer) behind it.
//
// Not yet implemented (issue "Three agents over mutual TLS"). The gateway's
// protocol checks exist today as pure functions in package protocol:
// protocol.VerifyAuthReq and protocol.NewAuthRes
// (protocol/gateway_auth.go), protocol.VerifyCapReq and protocol.NewCapRes
// (protocol/gateway_capture.go).
package gateway
