package der_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/setpay/setpay/internal/der"
)

// readCase is one input to one Reader method. The Reader is named "T" and
// the field "f", so a failure's path is "T.f" unless the case says otherwise.
type readCase struct {
	name string
	in   string // hex, spaces allowed
	read func(r *der.Reader) any
	// want is the value read when the input is accepted.
	want any
	// err is the expected failure: its path, ": ", and a substring of the
	// message. Empty: the input must be accepted.
	err string
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad test hex %q: %v", s, err)
	}
	return b
}

// tlv returns the hex of an element with the given tag and contents, in
// minimal DER.
func tlv(tag byte, contents []byte) string {
	var b cryptobyte.Builder
	b.AddASN1(asn1.Tag(tag), func(b *cryptobyte.Builder) { b.AddBytes(contents) })
	return hex.EncodeToString(b.BytesOrPanic())
}

func str(tag byte, s string) string { return tlv(tag, []byte(s)) }

const (
	tagBool      = 0x01
	tagInt       = 0x02
	tagOctets    = 0x04
	tagNull      = 0x05
	tagEnum      = 0x0a
	tagUTF8      = 0x0c
	tagSeq       = 0x30
	tagSet       = 0x31
	tagNumeric   = 0x12
	tagPrintable = 0x13
	tagIA5       = 0x16
	tagUTCTime   = 0x17
	tagGenTime   = 0x18
)

func runReadCases(t *testing.T, cases []readCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := der.NewReader(unhex(t, c.in), "T")
			got := c.read(r)
			r.End()
			err := r.Err()
			if c.err == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if !equalValue(got, c.want) {
					t.Fatalf("read %#v, want %#v", got, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (read %#v), want error %q", got, c.err)
			}
			var de *der.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v is a %T, want *der.Error", err, err)
			}
			path, msg, _ := strings.Cut(c.err, ": ")
			if de.Path != path {
				t.Errorf("error path %q, want %q (%v)", de.Path, path, err)
			}
			if !strings.Contains(de.Msg, msg) {
				t.Errorf("error message %q, want it to contain %q", de.Msg, msg)
			}
			if err.Error() != de.Path+": "+de.Msg {
				t.Errorf("Error() = %q, want path and message", err.Error())
			}
		})
	}
}

func equalValue(got, want any) bool {
	if gt, ok := got.(time.Time); ok {
		wt, ok := want.(time.Time)
		return ok && gt.Equal(wt) && gt.Location() == time.UTC
	}
	if gb, ok := got.([]byte); ok {
		wb, ok := want.([]byte)
		return ok && bytes.Equal(gb, wb)
	}
	return reflect.DeepEqual(got, want)
}

func octets(min, max int) func(*der.Reader) any {
	return func(r *der.Reader) any { return r.Octets("f", min, max) }
}

func TestLengths(t *testing.T) {
	long := strings.Repeat("61", 200)
	runReadCases(t, []readCase{
		{name: "a short-form length is accepted", in: "04 03 616263", read: octets(0, 300), want: []byte("abc")},
		{name: "a zero length is accepted", in: "04 00", read: octets(0, 300), want: []byte{}},
		{name: "a long-form length of 200 is accepted", in: "04 81 c8" + long, read: octets(0, 300), want: bytes.Repeat([]byte("a"), 200)},
		{name: "a long-form length below 128 is rejected", in: "04 81 03 616263", read: octets(0, 300), err: "T.f: want a well-formed DER OCTET STRING"},
		{name: "a long-form zero length is rejected", in: "04 81 00", read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "a length with a leading zero octet is rejected", in: "04 82 00c8" + long, read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "an indefinite length is rejected", in: "04 80 616263 0000", read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "an indefinite-length SEQUENCE is rejected", in: "30 80 0201 01 0000", read: func(r *der.Reader) any {
			r.Sequence("f", func(r *der.Reader) { r.Int("i", 0, 9) })
			return nil
		}, err: "T.f: want a well-formed DER SEQUENCE"},
		{name: "a length past the end of the input is rejected", in: "04 05 616263", read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "a truncated length is rejected", in: "04 82 01", read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "a five-octet length is rejected", in: "04 85 0000000003 616263", read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "a high tag number is rejected", in: "1f 22 01 00", read: octets(0, 300), err: "T.f: want a well-formed DER"},
		{name: "an empty input is a missing field", in: "", read: octets(0, 300), err: "T.f: missing OCTET STRING"},
	})
}

func TestTrailingBytes(t *testing.T) {
	seq := func(r *der.Reader) any {
		var v int64
		r.Sequence("s", func(r *der.Reader) { v = r.Int("i", 0, 9) })
		return v
	}
	runReadCases(t, []readCase{
		{name: "a SEQUENCE read entirely is accepted", in: "30 03 020105", read: seq, want: int64(5)},
		{name: "a byte left inside a SEQUENCE is rejected", in: "30 04 020105 00", read: seq, err: "T.s: 1 trailing bytes"},
		{name: "an element left inside a SEQUENCE is rejected", in: "30 05 020105 0500", read: seq, err: "T.s: 2 trailing bytes"},
		{name: "a byte after the top-level element is rejected by End", in: "30 03 020105 00", read: seq, err: "T: 1 trailing bytes"},
		{name: "an element after the top-level element is rejected by End", in: "30 03 020105 30 00", read: seq, err: "T: 2 trailing bytes"},
		{name: "a byte left inside an EXPLICIT wrapper is rejected", in: "a0 04 020105 00", read: func(r *der.Reader) any {
			var v int64
			r.Explicit(0, "x", func(r *der.Reader) { v = r.Int("", 0, 9) })
			return v
		}, err: "T.x: 1 trailing bytes"},
	})
	t.Run("Skip discards what is left and Empty reports it", func(t *testing.T) {
		r := der.NewReader([]byte{2, 1, 5, 0xff}, "T")
		r.Int("i", 0, 9)
		if r.Empty() {
			t.Fatal("Empty before Skip")
		}
		r.Skip()
		if !r.Empty() {
			t.Fatal("not Empty after Skip")
		}
		r.End()
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWrongTags(t *testing.T) {
	// Each wrong element is followed by a NULL; TestBadLastElementIsNotMissing
	// covers a wrong element at the end of the input.
	runReadCases(t, []readCase{
		{name: "an OCTET STRING in place of an INTEGER is rejected", in: "04 01 05 0500", read: func(r *der.Reader) any { return r.Int("f", 0, 9) }, err: "T.f: want a minimal DER INTEGER"},
		{name: "an ENUMERATED in place of an INTEGER is rejected", in: "0a 01 05 0500", read: func(r *der.Reader) any { return r.Int("f", 0, 9) }, err: "T.f: want a minimal DER INTEGER"},
		{name: "an INTEGER in place of an ENUMERATED is rejected", in: "02 01 05 0500", read: func(r *der.Reader) any { return r.Enum("f", 0, 9) }, err: "T.f: want a minimal DER ENUMERATED"},
		{name: "a UTF8String in place of an OCTET STRING is rejected", in: str(tagUTF8, "abc") + "0500", read: octets(0, 9), err: "T.f: want a well-formed DER OCTET STRING"},
		{name: "a constructed OCTET STRING is rejected", in: "24 05 0403616263 0500", read: octets(0, 9), err: "T.f: want a well-formed DER OCTET STRING"},
		{name: "a SET in place of a SEQUENCE is rejected", in: "31 00 0500", read: func(r *der.Reader) any { r.Sequence("f", func(*der.Reader) {}); return nil }, err: "T.f: want a well-formed DER SEQUENCE"},
		{name: "an IA5String in place of a UTF8String is rejected", in: str(tagIA5, "abc") + "0500", read: func(r *der.Reader) any { return r.UTF8("f", 0, 9) }, err: "T.f: want a well-formed DER UTF8String"},
		{name: "a PrintableString in place of a NumericString is rejected", in: str(tagPrintable, "123") + "0500", read: func(r *der.Reader) any { return r.Numeric("f", 0, 9) }, err: "T.f: want a well-formed DER NumericString"},
		{name: "a UTF8String in place of a PrintableString is rejected", in: str(tagUTF8, "en") + "0500", read: func(r *der.Reader) any { return r.Printable("f", 0, 9) }, err: "T.f: want a well-formed DER PrintableString"},
		{name: "an INTEGER in place of a BOOLEAN is rejected", in: "02 01 00", read: func(r *der.Reader) any { return r.Bool("f") }, err: "T.f: want a DER BOOLEAN"},
		{name: "a UTCTime in place of a GeneralizedTime is rejected", in: str(tagUTCTime, "261101120000Z") + "0500", read: func(r *der.Reader) any { return r.Time("f") }, err: "T.f: want a well-formed DER GeneralizedTime"},
		{name: "a [1] in place of a required [0] is rejected", in: "a1 03 020105 0500", read: func(r *der.Reader) any { r.Explicit(0, "f", func(r *der.Reader) { r.Int("", 0, 9) }); return nil }, err: "T.f: want a well-formed DER [0]"},
		{name: "a primitive [0] in place of a required [0] EXPLICIT is rejected", in: "80 01 05 0500", read: func(r *der.Reader) any { r.Explicit(0, "f", func(r *der.Reader) { r.Int("", 0, 9) }); return nil }, err: "T.f: want a well-formed DER [0]"},
		{name: "a missing required [0] is named", in: "", read: func(r *der.Reader) any { r.Explicit(0, "f", func(r *der.Reader) {}); return nil }, err: "T.f: missing [0]"},
		{name: "a SET in place of a SEQUENCE element is rejected", in: "31 00", read: func(r *der.Reader) any { return r.Element("f", 100) }, err: "T.f: want a DER SEQUENCE element"},
	})
}

func TestOctets(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "an OCTET STRING of the minimum length is accepted", in: "04 02 0102", read: octets(2, 4), want: []byte{1, 2}},
		{name: "an OCTET STRING of the maximum length is accepted", in: "04 04 01020304", read: octets(2, 4), want: []byte{1, 2, 3, 4}},
		{name: "an OCTET STRING below the minimum is rejected", in: "04 01 01", read: octets(2, 4), err: "T.f: length 1 outside [2, 4]"},
		{name: "an OCTET STRING above the maximum is rejected", in: "04 05 0102030405", read: octets(2, 4), err: "T.f: length 5 outside [2, 4]"},
		{name: "a fixed-size OCTET STRING of the right size is accepted", in: "04 03 010203", read: octets(3, 3), want: []byte{1, 2, 3}},
		{name: "a fixed-size OCTET STRING one short is rejected", in: "04 02 0102", read: octets(3, 3), err: "T.f: want 3 bytes, got 2"},
		{name: "a fixed-size OCTET STRING one long is rejected", in: "04 04 01020304", read: octets(3, 3), err: "T.f: want 3 bytes, got 4"},
	})
}

func TestStrings(t *testing.T) {
	utf8f := func(r *der.Reader) any { return r.UTF8("f", 1, 8) }
	num := func(r *der.Reader) any { return r.Numeric("f", 6, 19) }
	pr := func(r *der.Reader) any { return r.Printable("f", 1, 8) }
	runReadCases(t, []readCase{
		{name: "a UTF8String with non-ASCII letters is accepted", in: str(tagUTF8, "Café"), read: utf8f, want: "Café"},
		{name: "a UTF8String of the maximum byte length is accepted", in: str(tagUTF8, "ééé-a"), read: utf8f, want: "ééé-a"},
		{name: "an empty UTF8String below the minimum is rejected", in: str(tagUTF8, ""), read: utf8f, err: "T.f: length 0 outside [1, 8]"},
		{name: "a UTF8String over the maximum byte length is rejected", in: str(tagUTF8, "éééé-"), read: utf8f, err: "T.f: length 9 outside [1, 8]"},
		{name: "a UTF8String with a NUL is rejected", in: str(tagUTF8, "a\x00b"), read: utf8f, err: "T.f: contains a control character"},
		{name: "a UTF8String with a newline is rejected", in: str(tagUTF8, "a\nb"), read: utf8f, err: "T.f: contains a control character"},
		{name: "a UTF8String with a tab is rejected", in: str(tagUTF8, "a\tb"), read: utf8f, err: "T.f: contains a control character"},
		{name: "a UTF8String with DEL is rejected", in: str(tagUTF8, "a\x7fb"), read: utf8f, err: "T.f: contains a control character"},
		{name: "a UTF8String with a C1 control is rejected", in: str(tagUTF8, "a\u0085b"), read: utf8f, err: "T.f: contains a control character"},
		{name: "a UTF8String with an invalid byte is rejected", in: str(tagUTF8, "a\xffb"), read: utf8f, err: "T.f: not valid UTF-8"},
		{name: "a UTF8String with a truncated sequence is rejected", in: str(tagUTF8, "ab\xc3"), read: utf8f, err: "T.f: not valid UTF-8"},
		{name: "a UTF8String with an overlong encoding is rejected", in: str(tagUTF8, "\xc0\xaf"), read: utf8f, err: "T.f: not valid UTF-8"},
		{name: "a UTF8String with a surrogate is rejected", in: str(tagUTF8, "\xed\xa0\x80"), read: utf8f, err: "T.f: not valid UTF-8"},

		{name: "a NumericString of digits is accepted", in: str(tagNumeric, "4111111111111111"), read: num, want: "4111111111111111"},
		{name: "a NumericString with a space is rejected", in: str(tagNumeric, "411111 1111"), read: num, err: "T.f: not all digits"},
		{name: "a NumericString with a letter is rejected", in: str(tagNumeric, "41111a"), read: num, err: "T.f: not all digits"},
		{name: "a NumericString with a sign is rejected", in: str(tagNumeric, "-411111"), read: num, err: "T.f: not all digits"},
		{name: "a NumericString with non-ASCII digits is rejected", in: str(tagNumeric, "41111١"), read: num, err: "T.f: not all digits"},
		{name: "a NumericString below the minimum is rejected", in: str(tagNumeric, "41111"), read: num, err: "T.f: length 5 outside [6, 19]"},
		{name: "a NumericString above the maximum is rejected", in: str(tagNumeric, "41111111111111111111"), read: num, err: "T.f: length 20 outside [6, 19]"},

		{name: "a PrintableString language tag is accepted", in: str(tagPrintable, "en-US"), read: pr, want: "en-US"},
		{name: "a PrintableString with an underscore is rejected", in: str(tagPrintable, "en_US"), read: pr, err: "T.f: character outside [A-Za-z0-9-]"},
		{name: "a PrintableString with a space is rejected", in: str(tagPrintable, "en US"), read: pr, err: "T.f: character outside [A-Za-z0-9-]"},
		{name: "a PrintableString with a dot is rejected", in: str(tagPrintable, "en.US"), read: pr, err: "T.f: character outside [A-Za-z0-9-]"},
		{name: "a PrintableString with a non-ASCII byte is rejected", in: str(tagPrintable, "fr-Ç"), read: pr, err: "T.f: character outside [A-Za-z0-9-]"},
		{name: "an empty PrintableString below the minimum is rejected", in: str(tagPrintable, ""), read: pr, err: "T.f: length 0 outside [1, 8]"},
		{name: "a PrintableString above the maximum is rejected", in: str(tagPrintable, "en-US-x-abc"), read: pr, err: "T.f: length 11 outside [1, 8]"},
	})
}

func TestIntegers(t *testing.T) {
	in := func(min, max int64) func(*der.Reader) any {
		return func(r *der.Reader) any { return r.Int("f", min, max) }
	}
	all := in(-1<<63, 1<<63-1)
	runReadCases(t, []readCase{
		{name: "zero is accepted", in: "02 01 00", read: all, want: int64(0)},
		{name: "127 is accepted", in: "02 01 7f", read: all, want: int64(127)},
		{name: "128 with its sign octet is accepted", in: "02 02 0080", read: all, want: int64(128)},
		{name: "-1 is accepted", in: "02 01 ff", read: all, want: int64(-1)},
		{name: "-129 is accepted", in: "02 02 ff7f", read: all, want: int64(-129)},
		{name: "the largest int64 is accepted", in: "02 08 7fffffffffffffff", read: all, want: int64(1<<63 - 1)},
		{name: "the smallest int64 is accepted", in: "02 08 8000000000000000", read: all, want: int64(-1 << 63)},
		{name: "a value at the minimum is accepted", in: "02 01 01", read: in(1, 999), want: int64(1)},
		{name: "a value at the maximum is accepted", in: "02 02 03e7", read: in(1, 999), want: int64(999)},
		{name: "a value below the minimum is rejected", in: "02 01 00", read: in(1, 999), err: "T.f: INTEGER"},
		{name: "a value above the maximum is rejected", in: "02 02 03e8", read: in(1, 999), err: "T.f: INTEGER"},
		{name: "a negative value for a non-negative field is rejected", in: "02 01 ff", read: in(0, 999), err: "T.f: INTEGER"},
		{name: "a positive value with a needless zero octet is rejected", in: "02 02 0001 0500", read: all, err: "T.f: want a minimal DER INTEGER"},
		{name: "zero in two octets is rejected", in: "02 02 0000 0500", read: all, err: "T.f: want a minimal DER INTEGER"},
		{name: "a negative value with a needless 0xff octet is rejected", in: "02 02 ffff 0500", read: all, err: "T.f: want a minimal DER INTEGER"},
		{name: "an empty INTEGER is rejected", in: "02 00 0500", read: all, err: "T.f: want a minimal DER INTEGER"},
		{name: "an INTEGER beyond 64 bits is rejected", in: "02 09 010000000000000000 0500", read: all, err: "T.f: want a minimal DER INTEGER that fits in 64 bits"},
		{name: "2^63 is rejected", in: "02 09 008000000000000000 0500", read: all, err: "T.f: want a minimal DER INTEGER that fits in 64 bits"},
		{name: "a missing INTEGER is named", in: "", read: all, err: "T.f: missing INTEGER"},
		{name: "an ENUMERATED in range is accepted", in: "0a 01 02", read: func(r *der.Reader) any { return r.Enum("f", 0, 2) }, want: int64(2)},
		{name: "an ENUMERATED out of range is rejected", in: "0a 01 03", read: func(r *der.Reader) any { return r.Enum("f", 0, 2) }, err: "T.f: ENUMERATED"},
		{name: "a non-minimal ENUMERATED is rejected", in: "0a 02 0002 0500", read: func(r *der.Reader) any { return r.Enum("f", 0, 2) }, err: "T.f: want a minimal DER ENUMERATED"},
	})
}

func TestBool(t *testing.T) {
	b := func(r *der.Reader) any { return r.Bool("f") }
	runReadCases(t, []readCase{
		{name: "0x00 is false", in: "01 01 00", read: b, want: false},
		{name: "0xff is true", in: "01 01 ff", read: b, want: true},
		{name: "0x01 is rejected", in: "01 01 01", read: b, err: "T.f: want a DER BOOLEAN"},
		{name: "0x7f is rejected", in: "01 01 7f", read: b, err: "T.f: want a DER BOOLEAN"},
		{name: "0xfe is rejected", in: "01 01 fe", read: b, err: "T.f: want a DER BOOLEAN"},
		{name: "an empty BOOLEAN is rejected", in: "01 00", read: b, err: "T.f: want a DER BOOLEAN"},
		{name: "a two-octet BOOLEAN is rejected", in: "01 02 00ff", read: b, err: "T.f: want a DER BOOLEAN"},
		{name: "a missing BOOLEAN is rejected", in: "", read: b, err: "T.f: want a DER BOOLEAN"},
	})
}

func TestTime(t *testing.T) {
	tm := func(r *der.Reader) any { return r.Time("f") }
	gt := func(s string) string { return str(tagGenTime, s) }
	const form = "T.f: want GeneralizedTime YYYYMMDDHHMMSSZ"
	runReadCases(t, []readCase{
		{name: "YYYYMMDDHHMMSSZ is accepted", in: gt("20261101120000Z"), read: tm, want: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)},
		{name: "the last second of a year is accepted", in: gt("20261231235959Z"), read: tm, want: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{name: "a leap day is accepted", in: gt("20280229000000Z"), read: tm, want: time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{name: "fractional seconds are rejected", in: gt("20261101120000.5Z"), read: tm, err: form},
		{name: "zero fractional seconds are rejected", in: gt("20261101120000.0Z"), read: tm, err: form},
		{name: "a comma before fractional seconds is rejected", in: gt("20261101120000,5Z"), read: tm, err: form},
		{name: "a positive offset is rejected", in: gt("20261101120000+0100"), read: tm, err: form},
		{name: "a zero offset is rejected", in: gt("20261101120000+0000"), read: tm, err: form},
		{name: "a negative offset is rejected", in: gt("20261101120000-0500"), read: tm, err: form},
		{name: "a local time without Z is rejected", in: gt("20261101120000"), read: tm, err: form},
		{name: "a lower-case z is rejected", in: gt("20261101120000z"), read: tm, err: form},
		{name: "a two-digit year is rejected", in: gt("261101120000Z"), read: tm, err: form},
		{name: "a time without seconds is rejected", in: gt("202611011200Z"), read: tm, err: form},
		{name: "a time without minutes is rejected", in: gt("2026110112Z"), read: tm, err: form},
		{name: "month 13 is rejected", in: gt("20261301120000Z"), read: tm, err: form},
		{name: "day 0 is rejected", in: gt("20261100120000Z"), read: tm, err: form},
		{name: "February 30 is rejected", in: gt("20260230120000Z"), read: tm, err: form},
		{name: "February 29 of a common year is rejected", in: gt("20270229120000Z"), read: tm, err: form},
		{name: "hour 24 is rejected", in: gt("20261101240000Z"), read: tm, err: form},
		{name: "second 60 is rejected", in: gt("20261101235960Z"), read: tm, err: form},
		{name: "a letter among the digits is rejected", in: gt("2026110112000aZ"), read: tm, err: form},
		{name: "a space among the digits is rejected", in: gt("2026110112 000Z"), read: tm, err: form},
		{name: "a signed year is rejected", in: gt("+026110112000Z"), read: tm, err: form},
		{name: "an empty GeneralizedTime is rejected", in: gt(""), read: tm, err: form},
		{name: "a missing GeneralizedTime is named", in: "", read: tm, err: "T.f: missing GeneralizedTime"},
	})
}

func TestSequenceOf(t *testing.T) {
	list := func(min, max int) func(*der.Reader) any {
		return func(r *der.Reader) any {
			var out []int64
			r.SequenceOf("l", min, max, func(r *der.Reader) { out = append(out, r.Int("", 0, 99)) })
			return out
		}
	}
	runReadCases(t, []readCase{
		{name: "an empty list is accepted when the minimum is 0", in: "30 00", read: list(0, 3), want: []int64(nil)},
		{name: "a list of the minimum size is accepted", in: "30 03 020101", read: list(1, 3), want: []int64{1}},
		{name: "a list of the maximum size is accepted", in: "30 09 020101 020102 020103", read: list(1, 3), want: []int64{1, 2, 3}},
		{name: "an empty list below the minimum is rejected", in: "30 00", read: list(1, 3), err: "T.l: want at least 1 elements, got 0"},
		{name: "a list below the minimum is rejected", in: "30 03 020101", read: list(2, 3), err: "T.l: want at least 2 elements, got 1"},
		{name: "a list above the maximum is rejected", in: "30 0c 020101 020102 020103 020104", read: list(1, 3), err: "T.l: more than 3 elements"},
		{name: "a bad element is named by its index", in: "30 09 020101 040102 020103", read: list(1, 3), err: "T.l[1]: want a minimal DER INTEGER"},
		{name: "an out-of-range element is named by its index", in: "30 09 020101 020102 020164", read: list(1, 3), err: "T.l[2]: INTEGER"},
		{name: "a truncated element is rejected", in: "30 05 020101 0201", read: list(1, 3), err: "T.l[1]: want a minimal DER INTEGER"},
		{name: "a SET OF in place of a SEQUENCE OF is rejected", in: "31 03 020101 0500", read: list(1, 3), err: "T.l: want a well-formed DER SEQUENCE OF"},
	})
}

func TestChoice(t *testing.T) {
	choice := func(r *der.Reader) any {
		var got string
		r.Choice("c", []int{0, 2}, func(tag int, r *der.Reader) {
			switch tag {
			case 0:
				got = fmt.Sprint("int ", r.Int("i", 0, 9))
			case 2:
				got = "octets " + string(r.Octets("o", 0, 9))
			}
		})
		return got
	}
	runReadCases(t, []readCase{
		{name: "the first alternative is accepted", in: "a0 03 020105", read: choice, want: "int 5"},
		{name: "the second alternative is accepted", in: "a2 04 0402 6869", read: choice, want: "octets hi"},
		{name: "an unknown alternative is rejected with its tag", in: "a1 03 020105", read: choice, err: "T.c: unknown CHOICE alternative (tag byte 0xa1)"},
		{name: "a primitive alternative tag is rejected", in: "80 01 05", read: choice, err: "T.c: unknown CHOICE alternative (tag byte 0x80)"},
		{name: "a universal tag is rejected", in: "02 01 05", read: choice, err: "T.c: unknown CHOICE alternative (tag byte 0x02)"},
		{name: "a missing CHOICE is named", in: "", read: choice, err: "T.c: missing CHOICE"},
		{name: "an alternative with a bad body names the path inside it", in: "a0 05 040105 0500", read: choice, err: "T.c.i: want a minimal DER INTEGER"},
		{name: "an alternative with trailing bytes is rejected", in: "a0 05 020105 0500", read: choice, err: "T.c: 2 trailing bytes"},
	})
}

func TestOptionalExplicit(t *testing.T) {
	opt := func(r *der.Reader) any {
		var v int64 = -1
		present := r.OptionalExplicit(0, "o", func(r *der.Reader) { v = r.Int("", 0, 9) })
		after := r.Int("after", 0, 9)
		return [3]int64{map[bool]int64{false: 0, true: 1}[present], v, after}
	}
	runReadCases(t, []readCase{
		{name: "an absent optional field reads nothing", in: "020107", read: opt, want: [3]int64{0, -1, 7}},
		{name: "a present optional field is read", in: "a0 03 020105 020107", read: opt, want: [3]int64{1, 5, 7}},
		{name: "another tag is left for the next field", in: "a1 03 020105 0500", read: opt, err: "T.after: want a minimal DER INTEGER"},
		{name: "a present optional field with a bad body is rejected", in: "a0 05 040105 0500 020107", read: opt, err: "T.o: want a minimal DER INTEGER"},
		{name: "a present optional field with trailing bytes is rejected", in: "a0 05 020105 0500 020107", read: opt, err: "T.o: 2 trailing bytes"},
		{name: "a repeated optional field is rejected", in: "a0 03 020105 a0 03 020105 020107", read: opt, err: "T.after: want a minimal DER INTEGER"},
		{name: "a primitive [0] is not the optional field", in: "80 01 05 0500", read: opt, err: "T.after: want a minimal DER INTEGER"},
	})
	t.Run("an absent optional field at the end of the input reads nothing", func(t *testing.T) {
		r := der.NewReader(nil, "T")
		if r.OptionalExplicit(0, "o", func(*der.Reader) { t.Fatal("called") }) {
			t.Fatal("reported present")
		}
		if r.Peek(0) {
			t.Fatal("Peek on empty input")
		}
		r.End()
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestElementAndRaw(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "an element is returned whole", in: "30 03 020105", read: func(r *der.Reader) any { return r.Element("f", 5) }, want: []byte{0x30, 3, 2, 1, 5}},
		{name: "an element over its limit is rejected", in: "30 03 020105", read: func(r *der.Reader) any { return r.Element("f", 4) }, err: "T.f: element of 5 bytes exceeds 4"},
		{name: "a non-minimal element length is rejected", in: "30 81 03 020105", read: func(r *der.Reader) any { return r.Element("f", 99) }, err: "T.f: want a DER SEQUENCE element"},
		{name: "Raw returns exactly the bytes read", in: "30 03 020105 020106", read: func(r *der.Reader) any {
			raw := r.Raw(func(r *der.Reader) { r.Sequence("s", func(r *der.Reader) { r.Int("i", 0, 9) }) })
			r.Int("j", 0, 9)
			return raw
		}, want: []byte{0x30, 3, 2, 1, 5}},
		{name: "Raw of a failed read is nil and the error is kept", in: "30 05 040105 0500", read: func(r *der.Reader) any {
			return r.Raw(func(r *der.Reader) { r.Sequence("s", func(r *der.Reader) { r.Int("i", 0, 9) }) })
		}, err: "T.s.i: want a minimal DER INTEGER"},
	})
}

func TestStickyError(t *testing.T) {
	// SEQUENCE { wrong-tag INTEGER, bad BOOLEAN, OCTET STRING }: only the
	// first failure is kept, and later reads do nothing.
	in := unhex(t, "30 0a 040101 010102 0402 6869")
	r := der.NewReader(in, "Msg")
	var b bool
	var o []byte
	var i int64 = -1
	calls := 0
	r.Sequence("body", func(r *der.Reader) {
		i = r.Int("version", 0, 9)
		b = r.Bool("flag")
		o = r.Octets("data", 0, 9)
		r.Fail("semantic", "should not replace the first error")
		r.Sequence("nested", func(*der.Reader) { calls++ })
		r.SequenceOf("list", 0, 9, func(*der.Reader) { calls++ })
		r.Choice("choice", []int{0}, func(int, *der.Reader) { calls++ })
		if r.OptionalExplicit(0, "opt", func(*der.Reader) { calls++ }) {
			t.Error("OptionalExplicit reported present after an error")
		}
		if !r.Time("time").IsZero() || r.UTF8("u", 0, 9) != "" || r.Numeric("n", 0, 9) != "" ||
			r.Printable("p", 0, 9) != "" || r.Enum("e", 0, 9) != 0 || r.Element("el", 99) != nil {
			t.Error("a read after an error returned a value")
		}
	})
	r.End()
	err := r.Err()
	if err == nil {
		t.Fatal("accepted")
	}
	if i != 0 || b || o != nil || calls != 0 {
		t.Errorf("reads after the first error did something: i=%d b=%v o=%v calls=%d", i, b, o, calls)
	}
	var de *der.Error
	if !errors.As(err, &de) || de.Path != "Msg.body.version" {
		t.Fatalf("error %v, want the first failure at Msg.body.version", err)
	}
	if got := err.Error(); got != "Msg.body.version: want a minimal DER INTEGER that fits in 64 bits" {
		t.Errorf("Error() = %q", got)
	}

	t.Run("a failure inside a nested reader is the Reader's error", func(t *testing.T) {
		r := der.NewReader(unhex(t, "30 05 a0 03 010105"), "Msg")
		r.Sequence("a", func(r *der.Reader) { r.Explicit(0, "b", func(r *der.Reader) { r.Bool("c") }) })
		r.Fail("later", "ignored")
		if err := r.Err(); err == nil || err.Error() != "Msg.a.b.c: want a DER BOOLEAN" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("Fail names the field path", func(t *testing.T) {
		r := der.NewReader(unhex(t, "30 03 020105"), "Msg")
		r.Sequence("a", func(r *der.Reader) {
			if v := r.Int("n", 0, 9); v == 5 {
				r.Fail("n", "five is reserved (got %d)", v)
			}
		})
		if err := r.Err(); err == nil || err.Error() != "Msg.a.n: five is reserved (got 5)" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a Reader without a name gives paths without a leading dot", func(t *testing.T) {
		r := der.NewReader(nil, "")
		r.Int("n", 0, 9)
		if err := r.Err(); err == nil || err.Error() != "n: missing INTEGER" {
			t.Fatalf("error %v", err)
		}
	})
}

// TestBadLastElementIsNotMissing checks the diagnosis of a field that is
// present but wrong when nothing follows it. (Elsewhere in this file such
// inputs are followed by a NULL, so that each table tests its own subject.)
func TestBadLastElementIsNotMissing(t *testing.T) {
	runReadCases(t, []readCase{
		{name: "an OCTET STRING in place of a final INTEGER is not missing", in: "04 01 05", read: func(r *der.Reader) any { return r.Int("f", 0, 9) }, err: "T.f: want a minimal DER INTEGER"},
		{name: "a non-minimal final INTEGER is not missing", in: "02 02 0001", read: func(r *der.Reader) any { return r.Int("f", 0, 9) }, err: "T.f: want a minimal DER INTEGER"},
		{name: "an INTEGER in place of a final ENUMERATED is not missing", in: "02 01 05", read: func(r *der.Reader) any { return r.Enum("f", 0, 9) }, err: "T.f: want a minimal DER ENUMERATED"},
		{name: "a UTF8String in place of a final OCTET STRING is not missing", in: str(tagUTF8, "abc"), read: octets(0, 9), err: "T.f: want a well-formed DER OCTET STRING"},
		{name: "a SET in place of a final SEQUENCE is not missing", in: "31 00", read: func(r *der.Reader) any { r.Sequence("f", func(*der.Reader) {}); return nil }, err: "T.f: want a well-formed DER SEQUENCE"},
		{name: "a UTCTime in place of a final GeneralizedTime is not missing", in: str(tagUTCTime, "261101120000Z"), read: func(r *der.Reader) any { return r.Time("f") }, err: "T.f: want a well-formed DER GeneralizedTime"},
		{name: "a [1] in place of a final required [0] is not missing", in: "a1 03 020105", read: func(r *der.Reader) any { r.Explicit(0, "f", func(r *der.Reader) { r.Int("", 0, 9) }); return nil }, err: "T.f: want a well-formed DER [0]"},
	})
}

func TestErrorsNeverEchoValues(t *testing.T) {
	const pan = "4111111111111111"
	for _, c := range []struct {
		name string
		in   string // hex
		read func(r *der.Reader)
	}{
		{"a NumericString too long", str(tagNumeric, pan), func(r *der.Reader) { r.Numeric("pan", 12, 15) }},
		{"a NumericString too short", str(tagNumeric, pan), func(r *der.Reader) { r.Numeric("pan", 17, 19) }},
		{"a NumericString with a letter", str(tagNumeric, pan+"x"), func(r *der.Reader) { r.Numeric("pan", 12, 19) }},
		{"a NumericString in the wrong tag", str(tagPrintable, pan), func(r *der.Reader) { r.Numeric("pan", 12, 19) }},
		{"a NumericString with trailing bytes", str(tagNumeric, pan) + "00", func(r *der.Reader) { r.Numeric("pan", 12, 19) }},
		{"a NumericString with a bad length", "1281" + hex.EncodeToString([]byte{16}) + hex.EncodeToString([]byte(pan)), func(r *der.Reader) { r.Numeric("pan", 12, 19) }},
		{"a UTF8String with a control character", str(tagUTF8, pan+"\n"), func(r *der.Reader) { r.UTF8("s", 1, 40) }},
		{"a UTF8String too long", str(tagUTF8, pan), func(r *der.Reader) { r.UTF8("s", 1, 8) }},
		{"a PrintableString with a bad character", str(tagPrintable, pan+"_"), func(r *der.Reader) { r.Printable("s", 1, 40) }},
		{"an OCTET STRING too long", str(tagOctets, pan), func(r *der.Reader) { r.Octets("s", 1, 8) }},
		{"an INTEGER out of range", tlv(tagInt, []byte{0x0e, 0x9b, 0x08, 0xa5, 0x68, 0xf1, 0xc7}), func(r *der.Reader) { r.Int("n", 0, 1000) }},
		{"an ENUMERATED out of range", tlv(tagEnum, []byte{0x0e, 0x9b, 0x08, 0xa5, 0x68, 0xf1, 0xc7}), func(r *der.Reader) { r.Enum("n", 0, 9) }},
	} {
		t.Run("the error for "+c.name+" does not contain the value", func(t *testing.T) {
			r := der.NewReader(unhex(t, c.in), "PANData")
			c.read(r)
			r.End()
			err := r.Err()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "PANData") {
				t.Errorf("error %q does not name the field path", err)
			}
			for _, secret := range []string{pan, pan[:12], hex.EncodeToString([]byte(pan))} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the field's value", err)
					break
				}
			}
		})
	}
}

func TestWritersProduceWhatReadersAccept(t *testing.T) {
	when := time.Date(2026, 11, 1, 13, 0, 0, 999_999_999, time.FixedZone("CET", 3600))
	b, err := der.Marshal(func(b *cryptobyte.Builder) {
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			der.AddUTF8(b, "Café")
			der.AddNumeric(b, "4111111111111111")
			der.AddPrintable(b, "en-US")
			der.AddTime(b, when)
			der.AddExplicit(b, 3, func(b *cryptobyte.Builder) { b.AddASN1Int64(7) })
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := tlv(tagSeq, unhex(t, str(tagUTF8, "Café")+str(tagNumeric, "4111111111111111")+str(tagPrintable, "en-US")+
		str(tagGenTime, "20261101120000Z")+"a3 03 020107"))
	if !bytes.Equal(b, unhex(t, want)) {
		t.Fatalf("wrote %x, want %s", b, strings.ReplaceAll(want, " ", ""))
	}
	r := der.NewReader(b, "T")
	r.Sequence("s", func(r *der.Reader) {
		if got := r.UTF8("u", 1, 9); got != "Café" {
			t.Errorf("UTF8 %q", got)
		}
		if got := r.Numeric("n", 1, 19); got != "4111111111111111" {
			t.Error("Numeric differs")
		}
		if got := r.Printable("p", 1, 9); got != "en-US" {
			t.Errorf("Printable %q", got)
		}
		if got := r.Time("t"); !got.Equal(when.Truncate(time.Second)) || got.Location() != time.UTC {
			t.Errorf("Time %v, want %v in UTC", got, when.Truncate(time.Second))
		}
		r.Explicit(3, "x", func(r *der.Reader) {
			if got := r.Int("", 0, 9); got != 7 {
				t.Errorf("Int %d", got)
			}
		})
	})
	r.End()
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

// --- fuzzing ---

// schema is a small structure using every Reader method:
//
//	Schema ::= SEQUENCE {
//	  version  INTEGER (0..10),
//	  flag     BOOLEAN,
//	  id       OCTET STRING (SIZE(1..8)),
//	  name     UTF8String (SIZE(1..16)),
//	  digits   NumericString (SIZE(0..19)),
//	  lang     PrintableString (SIZE(1..8)),
//	  when     GeneralizedTime,
//	  opt      [0] EXPLICIT INTEGER OPTIONAL,
//	  choice   CHOICE { [1] INTEGER, [2] OCTET STRING (SIZE(0..4)) },
//	  list     SEQUENCE SIZE(0..4) OF ENUMERATED (0..3),
//	  cert     SEQUENCE (element of at most 64 bytes) }
type schema struct {
	Version   int64
	Flag      bool
	ID        []byte
	Name      string
	Digits    string
	Lang      string
	When      time.Time
	Opt       *int64
	ChoiceTag int
	ChoiceInt int64
	ChoiceOct []byte
	List      []int64
	Cert      []byte
}

func (s *schema) parse(r *der.Reader) {
	r.Sequence("", func(r *der.Reader) {
		s.Version = r.Int("version", 0, 10)
		s.Flag = r.Bool("flag")
		s.ID = r.Octets("id", 1, 8)
		s.Name = r.UTF8("name", 1, 16)
		s.Digits = r.Numeric("digits", 0, 19)
		s.Lang = r.Printable("lang", 1, 8)
		s.When = r.Time("when")
		r.OptionalExplicit(0, "opt", func(r *der.Reader) { v := r.Int("", -5, 5); s.Opt = &v })
		r.Choice("choice", []int{1, 2}, func(tag int, r *der.Reader) {
			s.ChoiceTag = tag
			if tag == 1 {
				s.ChoiceInt = r.Int("", 0, 1<<40)
			} else {
				s.ChoiceOct = r.Octets("", 0, 4)
			}
		})
		r.SequenceOf("list", 0, 4, func(r *der.Reader) { s.List = append(s.List, r.Enum("", 0, 3)) })
		s.Cert = r.Element("cert", 64)
	})
}

func (s *schema) marshal(b *cryptobyte.Builder) {
	der.AddSequence(b, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(s.Version)
		b.AddASN1Boolean(s.Flag)
		b.AddASN1OctetString(s.ID)
		der.AddUTF8(b, s.Name)
		der.AddNumeric(b, s.Digits)
		der.AddPrintable(b, s.Lang)
		der.AddTime(b, s.When)
		if s.Opt != nil {
			der.AddExplicit(b, 0, func(b *cryptobyte.Builder) { b.AddASN1Int64(*s.Opt) })
		}
		der.AddExplicit(b, s.ChoiceTag, func(b *cryptobyte.Builder) {
			if s.ChoiceTag == 1 {
				b.AddASN1Int64(s.ChoiceInt)
			} else {
				b.AddASN1OctetString(s.ChoiceOct)
			}
		})
		der.AddSequence(b, func(b *cryptobyte.Builder) {
			for _, e := range s.List {
				b.AddASN1Enum(e)
			}
		})
		b.AddBytes(s.Cert)
	})
}

func schemaSeeds(t testing.TB) [][]byte {
	opt := int64(-3)
	seeds := []schema{
		{Version: 1, ID: []byte{1}, Name: "a", Lang: "en", When: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
			ChoiceTag: 1, ChoiceInt: 300, Cert: []byte{0x30, 0}},
		{Version: 10, Flag: true, ID: []byte("12345678"), Name: "Café ☕", Digits: "4111111111111111", Lang: "en-US",
			When: time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), Opt: &opt, ChoiceTag: 2, ChoiceOct: []byte("ab"),
			List: []int64{0, 1, 2, 3}, Cert: []byte{0x30, 3, 2, 1, 5}},
	}
	var out [][]byte
	for _, s := range seeds {
		var b cryptobyte.Builder
		s.marshal(&b)
		out = append(out, b.BytesOrPanic())
	}
	return out
}

func TestSchemaSeedsParse(t *testing.T) {
	for i, b := range schemaSeeds(t) {
		var s schema
		r := der.NewReader(b, "Schema")
		s.parse(r)
		r.End()
		if err := r.Err(); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
	}
}

// FuzzReader checks that the Reader never panics, that its errors are
// *der.Error naming a path under the Reader's name, and that whatever it
// accepts is the canonical encoding the writers produce: a strict reader
// accepts exactly one encoding of each value.
func FuzzReader(f *testing.F) {
	for _, b := range schemaSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var s schema
		r := der.NewReader(in, "Schema")
		s.parse(r)
		r.End()
		if err := r.Err(); err != nil {
			var de *der.Error
			if !errors.As(err, &de) || !strings.HasPrefix(de.Path, "Schema") {
				t.Fatalf("error %v (%T) does not name a path under Schema", err, err)
			}
			return
		}
		var b cryptobyte.Builder
		s.marshal(&b)
		out, err := b.Bytes()
		if err != nil {
			t.Fatalf("accepted input does not re-encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", in, out)
		}
	})
}
