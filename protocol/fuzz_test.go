package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecode checks that no record crashes Decode or a StreamReader, that
// every failure is an error (never a nil message without one), and that a
// record that decodes cleanly survives Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	// The seed corpus lives in testdata/fuzz/FuzzDecode; these add the
	// golden messages.
	for _, c := range goldenCases() {
		msg := c.msg(f)
		if key, value, err := Encode(msg); err == nil {
			f.Add(key, value)
		}
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		msg, err := Decode(key, value)

		var fresh, open StreamReader
		open.Check(&StreamInit{ChunkSize: 8})
		fresh.Next(key, value)
		open.Next(key, value)

		if msg == nil {
			if err == nil {
				t.Fatal("nil message and nil error")
			}
			return
		}
		if err != nil {
			return
		}
		if got := KeyFor(msg); msg.MessageType() == TypeRawStream || msg.MessageType() == TypeStreamInit || msg.MessageType() == TypeStreamEOF {
			if got != string(key) {
				t.Fatalf("KeyFor = %q, want the key it was decoded from, %q", got, key)
			}
		}
		key2, value2, err := Encode(msg)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v\nmessage: %#v", err, msg)
		}
		again, err := Decode(key2, value2)
		if err != nil {
			t.Fatalf("encoded message does not decode: %v\nvalue: %s", err, value2)
		}
		if !reflect.DeepEqual(again, msg) {
			t.Fatalf("round trip changed the message:\n got: %#v\nwant: %#v\nvalue: %s", again, msg, value2)
		}
		if eo, ok := msg.(*EngineOutput); ok && len(eo.Content) > 0 && eo.Content[0] == '{' {
			if _, err := eo.Document(); err != nil {
				t.Fatalf("valid engine_output content is not a Document: %v", err)
			}
		}
	})
}

// FuzzParseTaskPayload checks that ParseTaskPayload never crashes and that
// a payload it accepts encodes and parses back unchanged.
func FuzzParseTaskPayload(f *testing.F) {
	f.Add([]byte(seedChunkPayload))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseTaskPayload(data)
		if err != nil {
			if p != nil {
				t.Fatal("payload returned with an error")
			}
			return
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted payload does not encode: %v", err)
		}
		again, err := ParseTaskPayload(b)
		if err != nil {
			t.Fatalf("encoded payload does not parse: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip changed the payload:\n got: %#v\nwant: %#v", again, p)
		}
	})
}

// FuzzParseDuration checks that ParseDuration never crashes, that what it
// accepts is positive, and that the result's own String form parses back
// to it.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1m", "10s", "90", "2.5", "1h30m", "-1", "1e9", "0x1p4", ".5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d <= 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
		if again, err := ParseDuration(d.String()); err != nil || again != d {
			t.Fatalf("ParseDuration(%q) = %v, but ParseDuration(%q) = %v, %v", s, d, d.String(), again, err)
		}
	})
}
