// Package cardholder is the cardholder agent: the wallet (keys,
// certificates and card data in a directory, files 0600), the registration
// client (Register, over agent.Register) and the purchase client (Shopper:
// PInitReq, PReq, and the checks of PInitRes and PRes, over mutual TLS with
// the merchant).
//
// A wallet registered without a signature certificate makes unsigned
// purchases (no dual signature), which merchants may allow or refuse
// (CodeCertRequired).
//
// The card data leaves the wallet only inside the PI, sealed to the
// gateway the merchant names: the merchant forwards it unopened.
package cardholder
