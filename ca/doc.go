// Package ca will be setpay's embedded certificate authority: the SET
// hierarchy (Root, Brand, Cardholder/Merchant/Gateway CAs) built on
// github.com/smallstep/certificates, the registration protocols, revocation
// (CRLs and the Brand CRL Identifier) and persistence.
//
// Not yet implemented: it is the subject of the issue "Embedded CA". The
// certificate extensions and certificate types it will issue are defined, and
// verified, in package protocol (see protocol.CertType and docs/PROTOCOL.md);
// until then tests build their certificates with internal/testpki.
package ca
