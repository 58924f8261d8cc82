// Package agent is the plumbing the three setpay agents (cardholder,
// merchant, gateway) share: the party's credentials on disk, the
// registration client, the trust store kept current from the CA's BCI and
// CRLs, setpay messages over HTTPS, the HTTP server's lifecycle, and the
// SQLite ledgers. The protocol itself is in package protocol; what each
// party does with it is in its own package.
package agent
