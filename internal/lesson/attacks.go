package lesson

import "github.com/setpay/setpay/protocol"

// Attack is one attack the walkthrough can run: what the attacker does, and
// the party and code that must catch it.
type Attack struct {
	Name    string        `json:"name"`
	Summary string        `json:"summary"`
	Party   Party         `json:"party"`
	Check   string        `json:"check"`
	Code    protocol.Code `json:"code"`
}

var attacks = []Attack{
	{"replay", "a PReq recorded from an earlier purchase is sent again for this one", Merchant, "OIData's transaction ids are this transaction's", protocol.CodeXIDMismatch},
	{"swap-oi", "the merchant links the payment to the order information of another order", Gateway, "linkage: the PI's hash of the OI and its HOD equal the merchant's", protocol.CodeOIMDMismatch},
	{"tamper-ds", "one bit of the dual signature is changed in transit", Merchant, "the dual signature over hash(PI) and hash(OI) verifies with the cardholder's certificate", protocol.CodeDualSignature},
	{"merchant-opens-pi", "the merchant tries to read the payment instruction with its own key", Merchant, "the merchant cannot open the PI (it tries, in this attack)", protocol.CodeDecrypt},
	{"revoked-card", "the cardholder's certificate has been revoked", Merchant, "the dual signature over hash(PI) and hash(OI) verifies with the cardholder's certificate", protocol.CodeCertRevoked},
	{"wrong-gateway", "the PI is sealed to another gateway than the merchant named", Merchant, "OIData names the gateway of PInitRes", protocol.CodeWrongGateway},
	{"inflate-amount", "the merchant asks to authorize more than the cardholder agreed", Gateway, "the amount to authorize is the amount the cardholder agreed", protocol.CodeAmountMismatch},
	{"downgrade", "a man in the middle removes the stronger suite from the cardholder's offer", Cardholder, "offeredSuites echoes exactly what the cardholder offered (no downgrade)", protocol.CodeDowngrade},
}

// Attacks lists the attacks.
func Attacks() []Attack { return append([]Attack(nil), attacks...) }

func attackByName(name string) (*Attack, bool) {
	for i := range attacks {
		if attacks[i].Name == name {
			return &attacks[i], true
		}
	}
	return nil, false
}
