// Package ca is setpay's embedded certificate authority: the SET certificate
// hierarchy of each crypto suite, issuance through embedded
// github.com/smallstep/certificates authorities, revocation with CRLs and
// the Brand CRL Identifier (BCI), and persistence in a CA directory. The
// registration protocols (cardholder, merchant and gateway registration)
// are answered by a [Registrar] on top of it.
//
// # Hierarchy
//
// A CA directory holds one hierarchy per suite (both by default):
//
//	Root CA (self-signed, 10 years)
//	└── Brand CA (5 years)
//	    ├── Cardholder CA (3 years) ── cardholder signature and TLS certificates
//	    ├── Merchant CA             ── merchant signature, key-exchange and TLS certificates
//	    ├── Gateway CA              ── gateway signature, key-exchange and TLS certificates
//	    └── the CA server's TLS certificate (protocol.CertCATLS)
//
// CA keys are Ed25519 in suite pq and ECDSA P-256 in suite nist. Every CA
// certificate has basic constraints (CA, path length 2, 1 and 0 from root to
// role CAs), key usage certSign and crlSign, a subject key identifier
// (RFC 7093 method 1), setpay's critical certificate-type extension and the
// brand extension (protocol.CertTypeExtension, protocol.BrandExtension).
// Each role CA also holds registration keys ([Authority.Sig],
// [Authority.KE]): a signature and a key-exchange certificate it issued to
// itself (protocol.CertType.RegistrationTypes), so that its
// certificate-signing key signs nothing but certificates and CRLs. The
// key-exchange key is the suite's KEM: X-Wing (pq) or DHKEM(P-256) (nist).
// End-entity certificates are valid one year by default
// (Options.Validity), never beyond their issuer.
//
// # Issuance
//
// Every certificate below the root, the brand and role CA certificates
// included, is issued by [Authority.Issue] through the CA's embedded
// smallstep authority (authority.NewEmbedded with the CA's certificate and
// key as its X.509 signer). smallstep issues from a certificate request
// whose self-signature it checks; the applicant's proof of possession is
// the registration protocol's business, so each authority makes one
// placeholder request when it starts, signed by an Ed25519 key that exists
// only in the process, and reuses it. A certificate modifier
// (provisioner.CertificateModifierFunc) then replaces everything smallstep
// derived from that request with setpay's template: subject, serial number
// (16 bytes from the CA's random source), validity (from the CA's clock;
// smallstep would otherwise issue a zero lifetime), key usage, extended key
// usage (serverAuth and clientAuth for TLS types), basic constraints,
// subject key identifier, extensions and the subject's public key. A
// DHKEM(P-256) key becomes an id-ecPublicKey P-256 point.
//
// crypto/x509 cannot marshal an X-Wing key. An X-Wing certificate is issued
// for the placeholder key; its SubjectPublicKeyInfo is then replaced by the
// X-Wing one (protocol.MarshalXWingSPKI) and the TBSCertificate signed
// again with the CA key (internal/x509x, shared with internal/testpki). The
// result is checked against the CA certificate, and smallstep's copy of the
// certificate in its database is replaced with it.
//
// Every issued certificate is parsed with protocol.ParseCertificate before
// it is returned, and recorded in an index of setpay's in the authority's
// database (its final DER, type, subject, validity and revocation details):
// [CA.List] and the registrar read it.
//
// # Revocation
//
// [Authority.Revoke] records a revocation through smallstep
// (authority.Revoke, which keeps the revocation table) and reissues the
// CA's CRL at once. Every CA publishes a CRL ([Authority.CRL]); the brand
// CA signs a BCI ([Hierarchy.BCI]) listing the current CRL of the root,
// brand and role CAs of its hierarchy (less a revoked role CA's), numbered
// increasingly. A relying
// party checks the BCI and CRLs with protocol.Trust.UpdateRevocation;
// [CA.Trust] does so for the CA's own checks.
//
// setpay builds the CRLs itself (crypto/x509.CreateRevocationList over
// smallstep's revocation table) instead of running smallstep's CRL
// generator: that one takes thisUpdate, nextUpdate and revocation times from
// time.Now and regenerates on a timer, so its CRLs would disagree with a
// Trust on the CA's clock and could not be reproduced. setpay's CRLs are
// stored in smallstep's CRL table of the authority. A CRL is valid for
// Options.CRLValidity (default 24 hours) and reissued, with the next CRL
// number, when half of that has passed. Revocations, CRL numbers and the
// BCI number persist in the databases across [CA.Close] and [Open].
//
// # Storage
//
// A CA directory (created 0700) holds, for each suite, DIR/<suite>/:
//
//	root.pem brand.pem cardholder-ca.pem merchant-ca.pem gateway-ca.pem   CA certificates
//	chain.pem                        the brand and role CA certificates (the intermediates)
//	<role>-ca-sig.pem <role>-ca-ke.pem   a role CA's registration certificates
//	ca-tls.pem                       the CA server's TLS certificate
//	*.key                            the private keys, 0600
//	db/root.db db/brand.db db/<role>-ca.db   one bbolt database per authority
//
// Signature and TLS keys are PKCS#8 ("PRIVATE KEY"); with a passphrase
// they are encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY", PBES2 with PBKDF2 and
// AES-256-CBC, go.step.sm/crypto/pemutil). KEM keys have no PKCS#8 form
// there: a "SETPAY XWING PRIVATE KEY" or "SETPAY DHKEM P256 PRIVATE KEY"
// block holds the scheme's 32-byte private key, and with a passphrase a
// "SETPAY ENCRYPTED ..." block holds it in the same PBES2 encryption. A
// wrong passphrase makes [Open] fail with [ErrPassphrase].
//
// Each authority has a database of its own because a smallstep database
// holds one CRL. bbolt files are the default; [DBOptions] selects another
// smallstep nosql driver, PostgreSQL for larger deployments. A bbolt file is
// locked while open: one process uses a CA directory at a time.
//
// # Reproducibility
//
// Options.Rand is the only source of randomness (keys, serial numbers,
// placeholder keys, salts and IVs of encrypted keys) and Options.Now the
// only clock (validity, CRL and BCI times, revocation times). Go 1.26
// ignores most random sources given to crypto functions, so keys are
// derived from bytes read from Rand (ed25519.NewKeyFromSeed,
// ecdsa.ParseRawPrivateKey, the KEM's DeriveKeyPair) and every CA signature
// is deterministic: CA signers are wrapped to sign with a nil reader, which
// makes ECDSA use RFC 6979 nonces, and Ed25519 is deterministic anyway.
// With a seeded Rand and a fixed Now, [Init] writes byte-identical
// certificate and key files, and CRLs and BCIs are reproducible too. The
// databases' files are not byte-identical (bbolt's page layout).
//
// # References
//
//   - SET Secure Electronic Transaction Specification, Book 2:
//     Programmer's Guide, and Book 3: Formal Protocol Definition (1997):
//     the certificate hierarchy, registration, the BCI.
//   - RFC 5280: X.509 certificates and CRLs; RFC 6979: deterministic ECDSA;
//     RFC 7093: key identifiers; RFC 9180: HPKE; RFC 8018: PBES2.
//   - draft-connolly-cfrg-xwing-kem: X-Wing.
//   - docs/PROTOCOL.md: setpay's certificate profile and messages.
package ca
