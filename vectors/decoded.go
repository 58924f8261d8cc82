package vectors

import (
	"encoding/hex"
	"reflect"
	"time"

	"github.com/setpay/setpay/protocol"
)

// Decoded renders a parsed protocol structure as the "decoded" field of a
// message vector: structures become objects keyed by the Go field names of
// package protocol (which follow the ASN.1 names of docs/PROTOCOL.md), byte
// strings and fixed-size arrays lowercase hex, times RFC 3339 UTC, numbers
// numbers, and a message inside a wrapper an object {"type": name, "fields":
// {...}}. A field is rendered from the Go value, so an absent OPTIONAL field
// appears as its Go zero value: null for an absent structure or byte string,
// [] for an absent list, 0 or "" for an absent number or string; a CHOICE
// shows as the fields of its Go type (for example PI.DualSignature null for
// the unsigned alternative, whose PReq.PIMD is then all zeros).
func Decoded(v any) any { return decoded(reflect.ValueOf(v)) }

var (
	timeType = reflect.TypeFor[time.Time]()
	panType  = reflect.TypeFor[protocol.PAN]()
)

func decoded(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	switch v.Type() {
	case timeType:
		return v.Interface().(time.Time).UTC().Format(time.RFC3339)
	case panType:
		return v.Interface().(protocol.PAN).Digits()
	}
	if m, ok := v.Interface().(protocol.Message); ok && v.Kind() == reflect.Interface {
		return map[string]any{"type": m.Type().String(), "fields": decoded(reflect.ValueOf(m))}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return decoded(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous { // embedded Signed: its fields belong to the message
				for k, x := range decoded(v.Field(i)).(map[string]any) {
					out[k] = x
				}
				continue
			}
			out[f.Name] = decoded(v.Field(i))
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Type().Elem() == reflect.TypeFor[byte]() {
			if v.Kind() == reflect.Slice && v.IsNil() {
				return nil
			}
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return hex.EncodeToString(b)
		}
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = decoded(v.Index(i))
		}
		return out
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	}
	panic("vectors: cannot render " + v.Type().String())
}
