package vectors

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"github.com/setpay/setpay/protocol"
)

// in reads a hex input of a construction vector.
func in(v *Construction, name string) ([]byte, error) {
	s, ok := v.Inputs[name].(string)
	if !ok {
		return nil, fmt.Errorf("input %q missing or not a string", name)
	}
	return parseHex(s)
}

func num(v *Construction, name string) (int64, error) {
	f, ok := v.Inputs[name].(float64)
	if !ok {
		return 0, fmt.Errorf("input %q missing or not a number", name)
	}
	return int64(f), nil
}

func same(what string, got, want []byte) error {
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: computed %x, vector has %x", what, got, want)
	}
	return nil
}

func fixed[T ~[32]byte](b []byte) (T, error) {
	var t T
	if len(b) != len(t) {
		return t, fmt.Errorf("want %d bytes, got %d", len(t), len(b))
	}
	copy(t[:], b)
	return t, nil
}

// construction recomputes a construction vector from its inputs.
func (st *state) construction(v *Construction) error {
	s := st.suite
	switch v.Name {
	case "labelled-input":
		label, _ := v.Inputs["label"].(string)
		suite, err := num(v, "suite")
		if err != nil {
			return err
		}
		content, err := in(v, "content")
		if err != nil {
			return err
		}
		return same("labelled", protocol.Labelled(label, protocol.Suite(suite), content), v.Output["labelled"])
	case "HOD":
		od, err1 := in(v, "od")
		cur, err2 := num(v, "currency")
		amt, err3 := num(v, "amount")
		salt, err4 := in(v, "od_salt")
		if err := firstErr(err1, err2, err3, err4); err != nil {
			return err
		}
		n, err := fixed[protocol.Nonce](salt)
		if err != nil {
			return err
		}
		a := protocol.Amount{Currency: uint16(cur), Value: amt}
		hin := protocol.HODInput(od, a, n)
		hod := protocol.HOD(s, od, a, n)
		return firstErr(same("hod_input", hin, v.Intermediate["hod_input"]),
			same("labelled", protocol.Labelled("setpay/1 HOD", s, hin), v.Intermediate["labelled"]),
			same("hod", hod[:], v.Output["hod"]))
	case "OIMD":
		b, err := in(v, "oidata")
		if err != nil {
			return err
		}
		oi, err := protocol.Decode[protocol.OIData](b)
		if err != nil {
			return err
		}
		d := protocol.OIMD(s, oi)
		return same("oimd", d[:], v.Output["oimd"])
	case "PIMD":
		b, err := in(v, "pidata")
		if err != nil {
			return err
		}
		pi, err := protocol.Decode[protocol.PIData](b)
		if err != nil {
			return err
		}
		d := protocol.PIMD(s, pi)
		return same("pimd", d[:], v.Output["pimd"])
	case "dual-signature":
		pimd, err1 := in(v, "pimd")
		oimd, err2 := in(v, "oimd")
		if err := firstErr(err1, err2); err != nil {
			return err
		}
		p, err1 := fixed[protocol.Digest](pimd)
		o, err2 := fixed[protocol.Digest](oimd)
		if err := firstErr(err1, err2); err != nil {
			return err
		}
		dsIn := protocol.DualSignatureInput(p, o)
		labelled := protocol.Labelled("setpay/1 dual signature", s, dsIn)
		if err := firstErr(same("dual_signature_input", dsIn, v.Intermediate["dual_signature_input"]),
			same("labelled", labelled, v.Intermediate["labelled"])); err != nil {
			return err
		}
		return verifyRaw(st.cardholder.Cert, labelled, v.Output["signature"])
	case "PI-seal":
		return st.piSeal(v)
	case "account-hash":
		pan, err := protocol.NewPAN(fmt.Sprint(v.Inputs["pan"]))
		if err != nil {
			return err
		}
		exp, _ := v.Inputs["card_expiry"].(string)
		sec, err := in(v, "pan_secret")
		if err != nil {
			return err
		}
		ps, err := fixed[protocol.Secret](sec)
		if err != nil {
			return err
		}
		h := protocol.AccountHash(s, pan, exp, ps)
		return same("account_hash", h[:], v.Output["account_hash"])
	case "TransStain":
		x, err1 := in(v, "xid")
		cs, err2 := in(v, "card_secret")
		if err := firstErr(err1, err2); err != nil {
			return err
		}
		var xid protocol.XID
		if len(x) != len(xid) {
			return fmt.Errorf("xid must be %d bytes", len(xid))
		}
		copy(xid[:], x)
		sec, err := fixed[protocol.Secret](cs)
		if err != nil {
			return err
		}
		h := protocol.TransStain(s, xid, sec)
		return same("trans_stain", h[:], v.Output["trans_stain"])
	case "CapToken":
		key, err1 := in(v, "token_key")
		salt, err2 := in(v, "salt")
		pt, err3 := in(v, "plaintext")
		aad, err4 := in(v, "aad")
		if err := firstErr(err1, err2, err3, err4); err != nil {
			return err
		}
		k, err := fixed[protocol.Secret](key)
		if err != nil {
			return err
		}
		id := protocol.TokenKeyID(s, k)
		got, err := capTokenOpen(s, key, salt, v.Output["ciphertext"], aad)
		if err != nil {
			return fmt.Errorf("CapToken does not open: %w", err)
		}
		return firstErr(same("key_id", id[:], v.Output["key_id"]), same("plaintext", got, pt))
	}
	return fmt.Errorf("unknown construction %q", v.Name)
}

// piSeal reproduces the HPKE seal of the PI from the encapsulation seed and
// opens it with the recipient's private key.
func (st *state) piSeal(v *Construction) error {
	s := st.suite
	skb, err1 := in(v, "recipient_private_key")
	info, err2 := in(v, "info")
	aad, err3 := in(v, "aad")
	pt, err4 := in(v, "plaintext")
	seed, err5 := in(v, "encapsulation_seed")
	if err := firstErr(err1, err2, err3, err4, err5); err != nil {
		return err
	}
	sk, err := s.KEM().UnmarshalBinaryPrivateKey(skb)
	if err != nil {
		return err
	}
	snd, err := s.HPKE().NewSender(sk.Public(), info)
	if err != nil {
		return err
	}
	enc, sealer, err := snd.Setup(bytes.NewReader(seed))
	if err != nil {
		return err
	}
	ct, err := sealer.Seal(pt, aad)
	if err != nil {
		return err
	}
	if err := firstErr(same("enc", enc, v.Output["enc"]), same("ciphertext", ct, v.Output["ciphertext"])); err != nil {
		return err
	}
	rcv, err := s.HPKE().NewReceiver(sk, info)
	if err != nil {
		return err
	}
	op, err := rcv.Setup(v.Output["enc"])
	if err != nil {
		return err
	}
	got, err := op.Open(v.Output["ciphertext"], aad)
	if err != nil {
		return fmt.Errorf("does not open: %w", err)
	}
	return same("opened plaintext", got, pt)
}

// verifyRaw checks a signature over a labelled input with a certificate's
// key, with the standard library only.
func verifyRaw(c *protocol.Cert, labelled, sig []byte) error {
	switch k := c.X509.PublicKey.(type) {
	case ed25519.PublicKey:
		if ed25519.Verify(k, labelled, sig) {
			return nil
		}
	case *ecdsa.PublicKey:
		d := sha256.Sum256(labelled)
		if ecdsa.VerifyASN1(k, d[:], sig) {
			return nil
		}
	}
	return fmt.Errorf("signature does not verify")
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// transcript replays a whole purchase as the three parties, with the PKI's
// keys, and compares every intermediate value.
func (st *state) transcript(v *Transcript) error {
	if len(v.Steps) != 8 {
		return fmt.Errorf("%d steps, want 8", len(v.Steps))
	}
	t, err := st.trust(&Context{})
	if err != nil {
		return err
	}
	step := func(i int) []byte { return v.Steps[i].Message }
	order := protocol.Order{OD: v.Order.OD, PurchAmt: protocol.Amount{Currency: uint16(v.Order.Currency), Value: v.Order.Amount}}
	at := func(i int, err error) error {
		if err != nil {
			return fmt.Errorf("step %d (%s to %s, %s): %w", i+1, v.Steps[i].From, v.Steps[i].To, v.Steps[i].Type, err)
		}
		return nil
	}

	req, err := parseAs[*protocol.PInitReq](step(0))
	if err != nil {
		return at(0, err)
	}
	pinitRes, err := parseAs[*protocol.PInitRes](step(1))
	if err != nil {
		return at(1, err)
	}
	terms, err := protocol.VerifyPInitRes(t, req, pinitRes, nil)
	if err != nil {
		return at(1, err)
	}
	preq, err := parseAs[*protocol.PReq](step(2))
	if err != nil {
		return at(2, err)
	}
	vp, err := protocol.VerifyPReq(t, &pinitRes.Data, &order, preq, false)
	if err != nil {
		return at(2, err)
	}
	hod := protocol.HOD(st.suite, order.OD, order.PurchAmt, preq.OIData.ODSalt)
	if err := firstErr(same("hod", hod[:], v.Intermediate["hod"]), same("oimd", vp.OIMD[:], v.Intermediate["oimd"]),
		same("oidata", protocol.Encode(&preq.OIData), v.Intermediate["oidata"])); err != nil {
		return at(2, err)
	}
	authReq, err := parseAs[*protocol.AuthReq](step(3))
	if err != nil {
		return at(3, err)
	}
	auth, err := protocol.VerifyAuthReq(t, st.gateway, protocol.AmountPolicy{}, authReq)
	if err != nil {
		return at(3, err)
	}
	pic, err := protocol.Decode[protocol.PIContent](v.Intermediate["picontent"])
	if err != nil {
		return at(3, fmt.Errorf("picontent: %w", err))
	}
	pimd := protocol.PIMD(st.suite, &protocol.PIData{PIHead: auth.PIHead, PANData: auth.PANData})
	if err := firstErr(same("PIData the gateway opened", protocol.Encode(&protocol.PIData{PIHead: auth.PIHead, PANData: auth.PANData}), protocol.Encode(&pic.PIData)),
		same("pimd", pimd[:], v.Intermediate["pimd"]), sameSigned[protocol.AuthReqData](&auth.Request, v.Intermediate["authreq_signed"])); err != nil {
		return at(3, err)
	}
	if preq.PI.DualSigned() {
		ds := protocol.DualSignatureInput(pimd, vp.OIMD)
		ah := protocol.AccountHash(st.suite, auth.PANData.PAN, auth.PANData.CardExpiry, auth.PANData.PANSecret)
		if err := firstErr(same("dual_signature_input", ds, v.Intermediate["dual_signature_input"]), same("account_hash", ah[:], v.Intermediate["account_hash"])); err != nil {
			return at(3, err)
		}
	}
	authRes, err := parseAs[*protocol.AuthRes](step(4))
	if err != nil {
		return at(4, err)
	}
	ad, err := protocol.VerifyAuthRes(t, st.merchant, terms.Gateway, &auth.Request, authRes)
	if err != nil {
		return at(4, err)
	}
	if err := sameSigned[protocol.AuthResData](ad, v.Intermediate["authres_signed"]); err != nil {
		return at(4, err)
	}
	if ad.CapToken == nil {
		return at(4, fmt.Errorf("no CapToken"))
	}
	tok, err := capTokenOpen(st.suite, st.gateway.TokenKey[:], ad.CapToken.Enc, ad.CapToken.Ciphertext, append([]byte{0x04, 0x14}, ad.TransIDs.XID[:]...))
	if err != nil {
		return at(4, fmt.Errorf("CapToken: %w", err))
	}
	if err := same("captoken_data", tok, v.Intermediate["captoken_data"]); err != nil {
		return at(4, err)
	}
	pres, err := parseAs[*protocol.PRes](step(5))
	if err != nil {
		return at(5, err)
	}
	if _, err := protocol.VerifyPRes(t, terms, &preq.OIData, pres, nil); err != nil {
		return at(5, err)
	}
	capReq, err := parseAs[*protocol.CapReq](step(6))
	if err != nil {
		return at(6, err)
	}
	b, err := protocol.VerifyCapReq(t, st.gateway, capReq)
	if err != nil {
		return at(6, err)
	}
	for i, it := range b.Items {
		if it.Err != nil {
			return at(6, fmt.Errorf("item %d: %w", i, it.Err))
		}
	}
	if err := sameSigned[protocol.CapReqData](&b.Request, v.Intermediate["capreq_signed"]); err != nil {
		return at(6, err)
	}
	capRes, err := parseAs[*protocol.CapRes](step(7))
	if err != nil {
		return at(7, err)
	}
	cd, err := protocol.VerifyCapRes(t, st.merchant, terms.Gateway, &b.Request, capRes)
	if err != nil {
		return at(7, err)
	}
	return at(7, sameSigned[protocol.CapResData](cd, v.Intermediate["capres_signed"]))
}

// sameSigned compares what a party verified with the data of the signed
// plaintext the transcript publishes.
func sameSigned[T any, PT interface {
	*T
	protocol.Structure
}](got PT, signed []byte) error {
	s, err := protocol.Decode[protocol.Signed[T, PT]](signed)
	if err != nil {
		return err
	}
	return same("signed data", protocol.Encode(got), protocol.Encode(PT(&s.Data)))
}
