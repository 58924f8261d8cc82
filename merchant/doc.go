// Package merchant is the merchant agent: an HTTPS server with mutual TLS
// for cardholders (only cardholders' TLS certificates are accepted), a
// small catalogue from which an order description and amount are agreed,
// an order store, and the gateway client that asks for authorization and
// captures authorized orders in batches.
//
// Where things are:
//   - catalogue.go: the catalogue and the agreement of an order.
//   - purchase.go: PInitReq and PReq from the cardholder; the protocol's
//     checks are protocol.VerifyPReq (protocol/merchant_purchase.go), the
//     authorization at the gateway is recorded before it is sent so that a
//     retry resends the same bytes.
//   - capture.go: capture batches (CapReq), recorded before they are sent
//     and resent as they are until answered.
//   - orders.go: the SQLite order store (DIR/merchant.db).
//   - merchant.go: configuration, keys, TLS, the HTTP endpoints.
//
// The merchant never sees card data: the PI reaches it sealed to the
// gateway, and it forwards it unopened.
package merchant
