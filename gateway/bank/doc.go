// Package bank is the simulated bank network behind the payment gateway: an
// issuer that keeps card accounts and decides authorizations, and an
// acquirer that records what each merchant captured. The gateway translates
// SET messages (AuthReq, CapReq, AuthRevReq) into the bank's own messages
// and sends them through a [Network]; [*Bank] is the network, backed by one
// SQLite database.
//
// # Using it
//
// The gateway builds an [AuthRequest], [CaptureRequest] or [ReversalRequest],
// marshals it, sends it with [Network.Exchange] and reads the answer with
// the request's ParseResponse, which checks that the answer is to that
// request and gives a [Response] (approved, response code, authorization
// id, SET decline reason). The accounts come from a JSON file
// ([Bank.LoadAccounts], the same file the CA's registration issuer reads) or
// from [Bank.PutAccounts]. [Bank.Account], [Bank.Holds], [Bank.Captures] and
// [Bank.CapturedTotal] are read-only reports for tests and invariant checks.
//
// # Message format
//
// A simplified ISO 8583:1987 in ASCII ([Message], [Parse],
// [Message.Marshal]): a 4-digit message type (MTI), a primary bitmap of 16
// upper-case hexadecimal digits (bit 1, the most significant bit of the
// first byte, is field 1; field 1, the secondary bitmap, must be unset),
// then the fields present in field-number order. A fixed-length field is
// exactly its length; an LLVAR field is a 2-digit decimal length then the
// value. n is digits, an letters and digits, ans printable ASCII
// (0x20-0x7e). A message is at most [MaxMessageSize] bytes.
//
//	field  name                          format        0100 0110 0220 0230 0400 0410
//	  2    PAN                           n12..19 LLVAR  M    -    -    -    -    -
//	  3    processing code (000000)      n6             M    M    M    M    M    M
//	  4    amount, minor units           n12            M    M    M    M    M    M
//	  7    transmission time MMDDhhmmss  n10            M    M    M    M    M    M
//	 11    STAN                          n6             M    M    M    M    M    M
//	 14    expiry date YYMM              n4             M    -    -    -    -    -
//	 37    retrieval reference number    an12           M    M    M    M    M    M
//	 38    authorization id              an6            -    C    M    M    O    C
//	 39    response code                 an2            -    M    -    M    -    M
//	 41    terminal id                   ans8           O    -    O    -    O    -
//	 42    merchant id                   ans1..40 LLVAR M    M    M    M    M    M
//	 49    currency, ISO 4217 numeric    n3             M    M    M    M    M    M
//
// M: mandatory, O: optional, C: in the response when in the request or, for
// 0110, when approved; -: not allowed. Parse rejects any other field, a
// field of the wrong length or characters, a missing mandatory field, an
// unknown MTI, a non-canonical bitmap and trailing bytes, with a
// [*FormatError] that never shows a value (so never a PAN).
//
// Two choices differ from ISO 8583: the merchant id (42) is LLVAR ans..40
// instead of ans15, because SET merchant ids are up to 30 characters (and
// must be ASCII here); and there is no field 90 (original data elements): a
// capture or reversal names its authorization by merchant id and field 37,
// the authorization's RRN. A response echoes its request but for the card
// data (2, 14) and the terminal id (41).
//
// The message types are 0100/0110 authorization, 0220/0230 capture
// (completion advice) and 0400/0410 reversal.
//
// # Response codes
//
//	code  meaning                          when                                         SET reason
//	 00   approved                         -                                            -
//	 05   do not honour                    (DeclineCode(DeclineOther))                  other
//	 12   invalid transaction              processing code not 000000; currency not    other
//	                                       the account's or the authorization's;
//	                                       capture of a reversed or reversal of a
//	                                       captured authorization; a request reusing
//	                                       an answered (merchant id, RRN) for
//	                                       something else
//	 13   invalid amount                   zero amount; capture above the hold;         other
//	                                       reversal of another amount than held
//	 14   invalid card number              no account for the PAN                       unknown account
//	 25   unable to locate original        capture or reversal of no approved           other
//	                                       authorization, or with another auth id
//	 51   insufficient funds               amount > limit - open holds - postings       insufficient funds
//	 54   expired card                     expiry not the account's, or past            expired card
//	 59   suspected fraud                  account status "fraud"                       suspected fraud
//	 61   exceeds amount limit             amount > per-transaction limit               over limit
//	 62   restricted card                  account status "blocked"                     blocked card
//	 65   exceeds frequency limit          VelocityLimit approvals within the window    velocity limit
//
// The issuer checks a 0100 in this order: processing code, account,
// status, expiry, currency, amount, per-transaction limit, velocity,
// available credit. [DeclineReasonOf] and [DeclineCode] map between codes
// and SET decline reasons.
//
// # Duplicates
//
// A request is named by its (merchant id, RRN). Every answered 0100 is
// recorded (approvals and declines); a 0100 with an answered name gets the
// recorded response byte for byte, including the first request's STAN and
// time, and places no second hold. Captures and reversals record their
// "00" answers the same way, so a repeated capture posts once; their other
// answers change nothing, are not recorded, and are computed afresh on a
// retry. A request reusing a recorded name for something else (another
// PAN, amount, currency...; STAN, time and terminal id may differ) gets 12,
// not recorded. So the gateway can repeat any request whose answer it did
// not get, across its own crashes, as long as its RRNs are unique per
// merchant.
//
// # Durability
//
// Each request is one SQLite transaction: its effects and its recorded
// response commit together, before Exchange returns the response, or not
// at all. The database runs in WAL mode with synchronous=FULL, so a
// response the gateway has received survives a crash of the bank. A
// request that does not parse gets an error and changes nothing.
//
// # Card data
//
// The bank is the bank: it stores PANs and expiry dates. It never writes
// them to a log or an error: format errors name the field, account errors
// the account's position in its list, responses never carry them, and the
// API takes PANs as [protocol.PAN], which prints redacted.
//
// # Known gaps
//
// Holds never expire; postings are never paid off (the credit a capture
// uses is gone for good); there is no partial reversal, no refund and no
// settlement file; a reversal answered 25 because its authorization had not
// arrived yet does not stop a late authorization with the same name.
//
// # References
//
//   - ISO 8583-1:2003 (and ISO 8583:1987), Financial transaction card
//     originated messages: message types, data elements, response codes.
//   - SET Secure Electronic Transaction Specification, Book 2: Programmer's
//     Guide (1997), the payment gateway's interface to the financial
//     network.
package bank
