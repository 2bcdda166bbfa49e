package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// This file keeps unknown JSON members: every JSON type of the package
// decodes through unmarshalObject and encodes through marshalObject, with v a
// pointer to (or value of) a method-less copy of the type so encoding/json
// does the field work.

// knownNames returns the JSON member names of struct type t, following
// embedded structs the way encoding/json does.
func knownNames(t reflect.Type) []string {
	if v, ok := knownCache.Load(t); ok {
		return v.([]string)
	}
	var names []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			names = append(names, name)
		}
	}
	walk(t)
	knownCache.Store(t, names)
	return names
}

var knownCache sync.Map // reflect.Type -> []string

func isKnown(names []string, key string) bool {
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return true
		}
	}
	return false
}

// unmarshalObject decodes data into v (a pointer to a struct) and stores the
// members v has no field for in *extra, compacted. A JSON null leaves v and
// *extra untouched, as encoding/json does for structs.
func unmarshalObject(data []byte, v any, extra *map[string]json.RawMessage) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	if members == nil {
		return nil
	}
	names := knownNames(reflect.TypeOf(v).Elem())
	*extra = nil
	for k, raw := range members {
		if isKnown(names, k) {
			continue
		}
		if *extra == nil {
			*extra = make(map[string]json.RawMessage)
		}
		(*extra)[k] = compactRaw(raw)
	}
	return nil
}

// marshalObject encodes v (a struct value) and appends the extra members,
// sorted by name, leaving out any whose name matches a field of v.
func marshalObject(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	names := knownNames(reflect.TypeOf(v))
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !isKnown(names, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	buf := bytes.NewBuffer(b[: len(b)-1 : len(b)-1])
	for i, k := range keys {
		raw := extra[k]
		if len(raw) > 0 && !json.Valid(raw) {
			return nil, fmt.Errorf("extra member %q: invalid JSON value", k)
		}
		if raw = compactRaw(raw); raw == nil {
			raw = json.RawMessage("null")
		}
		if i > 0 || len(b) > 2 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(raw)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// compactRaw returns raw as encoding/json writes a RawMessage (no
// insignificant space, HTML characters escaped), and nil for null, so decoded
// values compare equal however the sender formatted them.
func compactRaw(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return raw
	}
	if string(b) == "null" {
		return nil
	}
	return b
}

// jsonError turns an encoding/json error into one that names the context
// and, for a mistyped member, the field.
func jsonError(ctx string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		// encoding/json names the embedded Header in the path; JSON has no
		// such level.
		field := strings.ReplaceAll("."+te.Field, ".Header.", ".")[1:]
		return &FieldError{Context: ctx, Field: field, Problem: fmt.Sprintf("must be %s, got %s", kindName(te.Type), te.Value)}
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	return fmt.Errorf("%s: invalid JSON: %w", ctx, err)
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range for " + t.Kind().String()
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return t.String()
}
