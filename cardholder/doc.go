// Package cardholder is the cardholder agent: the wallet (keys,
// certificates and card data in a directory, files 0600), the registration
// client (Register, over agent.Register) and the purchase client (Shopper:
// PInitReq, PReq, and the checks of PInitRes and PRes, over mutual TLS with
// the merchant).
//
// Every registration certifies a signature key; a Shopper with Unsigned set
// pays without it (no dual signature, as a cardholder without a
// certificate would), which merchants may allow or refuse
// (CodeCertRequired).
//
// The card data leaves the wallet only inside the PI, sealed to the
// gateway the merchant names: the merchant forwards it unopened.
package cardholder
