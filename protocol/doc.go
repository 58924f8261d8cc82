// Package protocol is the heart of setpay: the SET purchase messages, their
// strict DER encoding, the crypto suites, the dual signature, the HPKE
// envelopes, and the check each party makes of each message. It has no I/O:
// the agents (packages cardholder, merchant and gateway) move its messages
// over mutual TLS; tests and the vectors run them in memory.
//
// # The purchase
//
// A purchase is eight messages. Each step is one function; the verifying
// functions return the first failed check as a [*CheckError] carrying a
// wire [Code]:
//
//	C -> M  PInitReq   NewPInitReq
//	M -> C  PInitRes   NewPInitRes        / VerifyPInitRes  (cardholder)
//	C -> M  PReq       NewPReq            / VerifyPReq      (merchant)
//	M -> P  AuthReq    NewAuthReq         / VerifyAuthReq   (gateway)
//	P -> M  AuthRes    NewAuthRes         / VerifyAuthRes   (merchant)
//	M -> C  PRes       NewPRes            / VerifyPRes      (cardholder)
//	M -> P  CapReq     NewCapReq          / VerifyCapReq    (gateway)
//	P -> M  CapRes     NewCapRes          / VerifyCapRes    (merchant)
//
// The files are named for the party whose steps they hold:
// cardholder_purchase.go, merchant_purchase.go, gateway_auth.go (the
// gateway's check of the dual signature, the PI–OI linkage and the account
// hash) and gateway_capture.go.
//
// # What each party can read
//
// The cardholder splits the purchase into OIData, which the merchant reads,
// and PIData (PIHead and the card data in PANData), which is sealed with HPKE
// to the gateway's key-exchange certificate. The dual signature covers
// H(PIData) and H(OIData), so merchant and gateway can each verify it
// without seeing the other half. The gateway sees HOD, a salted hash of the
// order description, never the description; the merchant sees neither the
// PAN nor the secrets. [PAN] and [Secret] never print their values.
//
// # Suites
//
// [SuitePQ] (default) signs with Ed25519 and seals with HPKE X-Wing
// (X25519 + ML-KEM-768), HKDF-SHA256, AES-256-GCM; [SuiteNIST] signs with
// ECDSA P-256 and seals with HPKE DHKEM(P-256), HKDF-SHA256, AES-128-GCM.
// The suite number is inside every signed, hashed and sealed input
// ([Labelled]), so nothing made under one suite verifies under another.
//
// # Differences from SET 1.0
//
// The dual signature names the gateway (PIHead.PEThumb, OIData.PEThumb) and
// the gateway checks it is the one named; AuthRes names the merchant and the
// XID: the two flaws Bella, Massacci and Paulson's formal analysis found.
// HPKE replaces SET's RSA-OAEP "extra encryption". docs/PROTOCOL.md lists
// every difference and gives the ASN.1 of every message.
//
// # Encoding
//
// Every message is ASN.1 DER in a [Wrapper]. [Parse] accepts only inputs
// that are their own canonical encoding, at most [MaxMessageSize] bytes, of
// [Version] 1; so `openssl asn1parse -inform DER` shows any message and
// re-encoding any accepted input gives the same bytes.
//
// # Determinism
//
// Every randomized step takes its nonces as parameters and its HPKE
// encapsulation randomness as an io.Reader; signatures are deterministic
// (Ed25519; ECDSA with RFC 6979). Fixed inputs give byte-identical messages,
// which the test vectors rely on. Time enters only through [Trust.Now] and
// explicit dates.
//
// # References
//
//   - SET Secure Electronic Transaction Specification, Books 1–3, Version
//     1.0, Visa and MasterCard, May 1997.
//   - G. Bella, F. Massacci, L. C. Paulson, "Verifying the SET Purchase
//     Protocols", Journal of Automated Reasoning 36, 2006; and "An overview of
//     the verification of SET", IJIS 4, 2005.
//   - RFC 9180, Hybrid Public Key Encryption; draft-connolly-cfrg-xwing-kem,
//     X-Wing; RFC 8032, Ed25519; FIPS 186-5 and RFC 6979, ECDSA.
//   - RFC 5280, X.509 certificates; ITU-T X.690, DER.
package protocol
