// Package gateway is the payment gateway agent: an HTTPS server with mutual
// TLS that accepts only merchants' TLS certificates, verifies their AuthReq
// and CapReq, and translates them for the bank behind it (package
// gateway/bank: a simulated issuer and acquirer with their own message
// format).
//
// Where things are:
//   - authorize.go: the handling of AuthReq. The protocol's checks of the
//     AuthReq, the PI and the dual signature are protocol.VerifyAuthReq
//     (protocol/gateway_auth.go); here are the checks only the gateway's
//     state can make (the TLS client is the signing merchant, the XID is
//     not authorized by another request) and the idempotency.
//   - capture.go: the handling of CapReq (protocol.VerifyCapReq checks the
//     CapTokens; the ledger checks an authorization is captured once).
//   - bank_link.go: SET to the bank's format and back.
//   - ledger.go: the SQLite ledger (DIR/gateway.db): authorizations,
//     captures, and the answer recorded for every request, so that a
//     retried or replayed request gets the same answer and places no second
//     hold or capture.
//   - gateway.go: configuration, keys, TLS, the HTTP endpoints.
//
// The gateway reads the card data (it must, to ask the issuer) but never
// the order description: it receives only its hash (HOD). Its ledger and
// logs hold no card number.
package gateway
