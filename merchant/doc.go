// Package merchant will be the merchant agent: an HTTPS server with mutual
// TLS for cardholders, an order store and the gateway client.
//
// Not yet implemented (issue "Three agents over mutual TLS"). The merchant's
// protocol steps exist today as pure functions in package protocol
// (protocol/merchant_purchase.go): NewPInitRes, VerifyPReq, NewAuthReq,
// VerifyAuthRes, NewPRes, NewCapReq and VerifyCapRes.
package merchant
