package bank

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/setpay/setpay/protocol"
)

const samplePAN = "4111111111111111"

// samples are valid messages of every type, with and without their
// optional fields.
var samples = map[string]*Message{
	"authorization request": {MTI: MTIAuthRequest, Fields: map[int]string{
		2: samplePAN, 3: "000000", 4: "000000012345", 7: "0315120000", 11: "000001", 14: "2712",
		37: "RRN000000001", 42: "merchant-1", 49: "978"}},
	"authorization request with terminal id": {MTI: MTIAuthRequest, Fields: map[int]string{
		2: "378282246310005", 3: "000000", 4: "999999999999", 7: "1231235959", 11: "999999", 14: "0001",
		37: "abcXYZ012345", 41: "TERM 01 ", 42: "M", 49: "840"}},
	"approval": {MTI: MTIAuthResponse, Fields: map[int]string{
		3: "000000", 4: "000000012345", 7: "0315120000", 11: "000001", 37: "RRN000000001", 38: "A1B2C3",
		39: "00", 42: "merchant-1", 49: "978"}},
	"decline": {MTI: MTIAuthResponse, Fields: map[int]string{
		3: "000000", 4: "000000012345", 7: "0315120000", 11: "000001", 37: "RRN000000001",
		39: "51", 42: strings.Repeat("m", 40), 49: "978"}},
	"capture advice": {MTI: MTICaptureAdvice, Fields: map[int]string{
		3: "000000", 4: "000000010000", 7: "0316080000", 11: "000002", 37: "RRN000000001", 38: "A1B2C3",
		42: "merchant-1", 49: "978"}},
	"capture response": {MTI: MTICaptureResponse, Fields: map[int]string{
		3: "000000", 4: "000000010000", 7: "0316080000", 11: "000002", 37: "RRN000000001", 38: "A1B2C3",
		39: "00", 42: "merchant-1", 49: "978"}},
	"reversal request": {MTI: MTIReversalRequest, Fields: map[int]string{
		3: "000000", 4: "000000012345", 7: "0316080000", 11: "000003", 37: "RRN000000001",
		42: "merchant-1", 49: "978"}},
	"reversal request with auth id": {MTI: MTIReversalRequest, Fields: map[int]string{
		3: "000000", 4: "000000012345", 7: "0316080000", 11: "000003", 37: "RRN000000001", 38: "A1B2C3",
		41: "T1234567", 42: "merchant-1", 49: "978"}},
	"reversal response": {MTI: MTIReversalResponse, Fields: map[int]string{
		3: "000000", 4: "000000012345", 7: "0316080000", 11: "000003", 37: "RRN000000001",
		39: "25", 42: "merchant-1", 49: "978"}},
}

// raw encodes a message without any check, for building malformed input.
func raw(mti string, fields map[int]string) []byte {
	var bitmap uint64
	for n := range fields {
		bitmap |= 1 << (64 - n)
	}
	s := mti + fmt.Sprintf("%016X", bitmap)
	for _, n := range sortedFields(fields) {
		if fieldDefs[n].llvar {
			s += fmt.Sprintf("%02d", len(fields[n]))
		}
		s += fields[n]
	}
	return []byte(s)
}

// with returns the sample authorization request's fields changed: a ""
// value removes the field.
func with(changes map[int]string) map[int]string {
	f := maps.Clone(samples["authorization request"].Fields)
	for n, v := range changes {
		if v == "" {
			delete(f, n)
		} else {
			f[n] = v
		}
	}
	return f
}

func TestMarshalParseRoundTrip(t *testing.T) {
	for name, m := range samples {
		t.Run(name, func(t *testing.T) {
			b, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if want := raw(m.MTI, m.Fields); !bytes.Equal(b, want) {
				t.Fatalf("Marshal = %q, want %q", b, want)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("Parse(Marshal(m)) = %+v, want %+v", got, m)
			}
			again, err := got.Marshal()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("Marshal(Parse(b)) = %q, %v; want %q", again, err, b)
			}
		})
	}
}

func TestNoTruncationParses(t *testing.T) {
	for name, m := range samples {
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range len(b) {
			if _, err := Parse(b[:i]); err == nil {
				t.Errorf("%s: the %d-byte prefix parses", name, i)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	valid := raw(MTIAuthRequest, with(nil))
	replace := func(old, new string) []byte { return bytes.Replace(valid, []byte(old), []byte(new), 1) }
	reversal := samples["reversal request with auth id"]
	lower := raw(reversal.MTI, reversal.Fields)
	if !bytes.ContainsAny(lower[4:20], "ABCDEF") {
		t.Fatal("the reversal sample's bitmap has no letter to lower")
	}
	lower = append([]byte(strings.ToLower(string(lower[:20]))), lower[20:]...)
	tests := []struct {
		name  string
		in    []byte
		field int // the field the error names, 0 for the message as a whole
	}{
		{"an empty message", nil, 0},
		{"a message shorter than its type", []byte("01"), 0},
		{"an unknown message type", append([]byte("0200"), valid[4:]...), 0},
		{"a message type with a letter", append([]byte("01A0"), valid[4:]...), 0},
		{"a message cut inside the bitmap", valid[:12], 0},
		{"a lower-case bitmap", lower, 0},
		{"a bitmap with a non-hex digit", append([]byte("0100G"), valid[5:]...), 0},
		{"a secondary bitmap", raw(MTIAuthRequest, with(map[int]string{1: "0000000000000000"})), 0},
		{"a message over the size limit", append(bytes.Clone(valid), bytes.Repeat([]byte("0"), MaxMessageSize)...), 0},
		{"trailing bytes", append(bytes.Clone(valid), '0'), 0},
		{"an undefined field", raw(MTIAuthRequest, with(map[int]string{5: "000000012345"})), 5},
		{"a field the message type does not allow", raw(MTIAuthRequest, with(map[int]string{39: "00"})), 39},
		{"a missing mandatory field", raw(MTIAuthRequest, with(map[int]string{14: ""})), 14},
		{"a response without its response code", raw(MTIAuthResponse, map[int]string{
			3: "000000", 4: "000000012345", 7: "0315120000", 11: "000001", 37: "RRN000000001", 42: "m", 49: "978"}), 39},
		{"a PAN too short", raw(MTIAuthRequest, with(map[int]string{2: "41111111111"})), 2},
		{"a PAN too long", raw(MTIAuthRequest, with(map[int]string{2: "41111111111111111111"})), 2},
		{"a PAN with a letter", raw(MTIAuthRequest, with(map[int]string{2: "41111111111111X1"})), 2},
		{"a length prefix with a letter", replace("16"+samplePAN, "1A"+samplePAN), 2},
		{"a length prefix beyond the end of the message", replace("10merchant-1978", "39merchant-1978"), 42},
		{"a zero length prefix", replace("10merchant-1", "00"), 42},
		{"a message cut inside a length prefix", valid[:21], 2},
		{"a message cut inside a fixed field", valid[:20+2+16+3], 3},
		{"a field shorter than its fixed length", raw(MTIAuthRequest, with(map[int]string{49: "97"})), 49},
		{"a merchant id over 40 characters", raw(MTIAuthRequest, with(map[int]string{42: strings.Repeat("m", 41)})), 42},
		{"a merchant id with a control character", raw(MTIAuthRequest, with(map[int]string{42: "merchant\n1"})), 42},
		{"a merchant id with a non-ASCII byte", raw(MTIAuthRequest, with(map[int]string{42: "caf\xc3\xa9"})), 42},
		{"an amount with a space", raw(MTIAuthRequest, with(map[int]string{4: "00000001234 "})), 4},
		{"a negative amount", raw(MTIAuthRequest, with(map[int]string{4: "-00000001234"})), 4},
		{"an RRN with a hyphen", raw(MTIAuthRequest, with(map[int]string{37: "RRN-00000001"})), 37},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			m, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", m)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("error %q names field %d, want %d", err, fe.Field, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "bank: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if strings.Contains(err.Error(), "41111111111") {
				t.Errorf("error %q shows the PAN", err)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name  string
		m     *Message
		field int
	}{
		{"an unknown message type", &Message{MTI: "0200", Fields: with(nil)}, 0},
		{"no fields", &Message{MTI: MTIAuthRequest}, 2},
		{"a field number out of range", &Message{MTI: MTIAuthRequest, Fields: with(map[int]string{65: "1"})}, 65},
		{"field 1", &Message{MTI: MTIAuthRequest, Fields: with(map[int]string{1: "0"})}, 1},
		{"a PAN with a letter", &Message{MTI: MTIAuthRequest, Fields: with(map[int]string{2: "41111111111111X1"})}, 2},
		{"a short amount", &Message{MTI: MTIAuthRequest, Fields: with(map[int]string{4: "12345"})}, 4},
		{"a response code in a request", &Message{MTI: MTIAuthRequest, Fields: with(map[int]string{39: "00"})}, 39},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			b, err := tt.m.Marshal()
			if err == nil {
				t.Fatalf("Marshal accepted it: %q", b)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("error %v, want a *FormatError naming field %d", err, tt.field)
			}
			if strings.Contains(err.Error(), "41111111111") {
				t.Errorf("error %q shows the PAN", err)
			}
		})
	}
}

func TestDeclineCodes(t *testing.T) {
	for r := protocol.DeclineInsufficientFunds; r <= protocol.DeclineOther; r++ {
		code, ok := DeclineCode(r)
		if !ok {
			t.Fatalf("DeclineCode(%v) reports false", r)
		}
		back, ok := DeclineReasonOf(code)
		if !ok || back != r {
			t.Errorf("DeclineReasonOf(DeclineCode(%v)) = %v, %v", r, back, ok)
		}
	}
	if _, ok := DeclineCode(0); ok {
		t.Error("DeclineCode(0) reports true")
	}
	for _, code := range []string{CodeApproved, "94", "", "XX"} {
		if r, ok := DeclineReasonOf(code); ok {
			t.Errorf("DeclineReasonOf(%q) = %v, true", code, r)
		}
	}
	for _, code := range []string{CodeInvalidTransaction, CodeInvalidAmount, CodeUnableToLocateOriginal} {
		if r, ok := DeclineReasonOf(code); !ok || r != protocol.DeclineOther {
			t.Errorf("DeclineReasonOf(%q) = %v, %v; want other", code, r, ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, m := range samples {
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed message: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(b)) = %q, want %q", again, b)
		}
	})
}
