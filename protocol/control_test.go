package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var submitted = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

type controlCase struct {
	file   string // under testdata/golden
	key    string
	topic  string
	msg    ControlMessage
	decode func(key, value []byte) (ControlMessage, error)
}

func decodeVODJob(key, value []byte) (ControlMessage, error) {
	j, err := DecodeVODJob(key, value)
	if j == nil {
		return nil, err
	}
	return j, err
}

func decodeLiveControl(key, value []byte) (ControlMessage, error) {
	m, err := DecodeLiveControl(key, value)
	if m == nil {
		return nil, err
	}
	return m, err
}

func decodeJobRun(key, value []byte) (ControlMessage, error) {
	m, err := DecodeJobRun(key, value)
	if m == nil {
		return nil, err
	}
	return m, err
}

func decodeAlert(key, value []byte) (ControlMessage, error) {
	m, err := DecodeAlert(key, value)
	if m == nil {
		return nil, err
	}
	return m, err
}

func controlCases() []controlCase {
	start, end := int64(184000), int64(191500)
	return []controlCase{
		{"alert_raised.json", "rule-5c1d0e7a9b42", TopicAlerts, &Alert{
			EventID: "al-9f86d081884c7d65:raised", AlertID: "al-9f86d081884c7d65", Event: AlertRaised,
			RuleID: "rule-5c1d0e7a9b42", RuleName: "dead air on studio A", Condition: "silence",
			Scope: "job:job-3e87dd00aab5", JobID: "job-3e87dd00aab5", StreamID: "live-54390fa40812",
			StartMs: &start, EndMs: &end, Summary: "silence for 7.5 s (at least 5 s)",
			Details:  json.RawMessage(`{"duration_ms":7500,"engine":"silence"}`),
			RaisedAt: submitted}, decodeAlert},
		{"alert_resolved_segments.json", "rule-0a1b2c3d4e5f", TopicAlerts, &Alert{
			EventID: "al-2c26b46b68ffc68f:resolved", AlertID: "al-2c26b46b68ffc68f", Event: AlertResolved,
			RuleID: "rule-0a1b2c3d4e5f", Condition: "no_segments", Scope: "stream:live-54390fa40812",
			StreamID: "live-54390fa40812", StartedAt: submitted.Add(-time.Minute), EndedAt: submitted.Add(30 * time.Second),
			Summary:  "no segments from live-54390fa40812 for 1m30s",
			RaisedAt: submitted, ResolvedAt: submitted.Add(30 * time.Second)}, decodeAlert},
		{"control_vod_job_upload.json", "vod-3e87dd00aab5", TopicVODJobs, &VODJob{
			StreamID: "vod-3e87dd00aab5", SourceKey: "vod-3e87dd00aab5/source/episode.mp4",
			Title: "Episode 1", SubmittedAt: submitted}, decodeVODJob},
		{"control_vod_job_url.json", "vod-0123456789ab", TopicVODJobs, &VODJob{
			StreamID: "vod-0123456789ab", SourceURL: "https://example.com/episode.mp4", SubmittedAt: submitted}, decodeVODJob},
		{"control_vod_job_unknown_fields.json", "vod-1", TopicVODJobs, &VODJob{
			StreamID: "vod-1", SourceKey: "vod-1/source/a.mp4",
			Extra: map[string]json.RawMessage{"priority": json.RawMessage(`5`), "ladder": json.RawMessage(`["720p","360p"]`)}}, decodeVODJob},
		{"control_live_start.json", "live-54390fa40812", TopicLiveControl, &LiveControl{
			Action: LiveStart, StreamID: "live-54390fa40812", Title: "Studio A",
			SourceURL: "https://example.com/live/stream.ts", RequestedAt: submitted}, decodeLiveControl},
		{"control_live_end.json", "live-54390fa40812", TopicLiveControl, &LiveControl{
			Action: LiveEnd, StreamID: "live-54390fa40812", RequestedAt: submitted}, decodeLiveControl},
		{"control_live_unknown_fields.json", "live-2", TopicLiveControl, &LiveControl{
			Action: LiveEnd, StreamID: "live-2",
			Extra: map[string]json.RawMessage{"reason": json.RawMessage(`"operator"`)}}, decodeLiveControl},
		{"control_job_run.json", "job-5f0c2a9e71b4", TopicJobs, &JobRun{
			JobID: "job-5f0c2a9e71b4", SubmittedAt: submitted}, decodeJobRun},
	}
}

// TestGoldenControlMessages encodes each control message and compares the
// value with its golden file, then decodes the golden file and compares
// with the message. Run with -update to rewrite the files after a
// deliberate change.
func TestGoldenControlMessages(t *testing.T) {
	for _, c := range controlCases() {
		t.Run(c.file, func(t *testing.T) {
			key, value, err := EncodeControl(c.msg)
			if err != nil {
				t.Fatalf("EncodeControl: %v", err)
			}
			if string(key) != c.key || c.msg.Topic() != c.topic {
				t.Errorf("key %q on topic %s, want %q on %s", key, c.msg.Topic(), c.key, c.topic)
			}
			path := filepath.Join("testdata", "golden", c.file)
			got := indent(t, value)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded value differs from %s:\n got: %s\nwant: %s", path, got, want)
			}
			decoded, err := c.decode(key, want)
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			if !reflect.DeepEqual(decoded, c.msg) {
				t.Errorf("decode golden:\n got: %#v\nwant: %#v", decoded, c.msg)
			}
		})
	}
}

func TestControlMessagesKeepUnknownMembers(t *testing.T) {
	j, err := DecodeVODJob(nil, []byte(`{"stream_id":"vod-1","source_key":"k","newField":{"a": [1, 2]},"Title":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if j.Title != "t" || string(j.Extra["newField"]) != `{"a":[1,2]}` || len(j.Extra) != 1 {
		t.Fatalf("decoded %+v, want title t and newField kept", j)
	}
	_, value, err := EncodeControl(j)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(value, []byte(`"newField":{"a":[1,2]}`)) {
		t.Errorf("re-encoded %s lost newField", value)
	}
}

func TestControlMessagesTakeTheStreamIDFromTheKey(t *testing.T) {
	m, err := DecodeLiveControl([]byte("live-7"), []byte(`{"action":"end"}`))
	if err != nil || m.StreamID != "live-7" {
		t.Fatalf("DecodeLiveControl = %+v, %v; want stream live-7 from the key", m, err)
	}
	m, err = DecodeLiveControl([]byte("live-7"), []byte(`{"action":"end","stream_id":"live-8"}`))
	if err != nil || m.StreamID != "live-8" {
		t.Fatalf("DecodeLiveControl = %+v, %v; want the value's stream live-8", m, err)
	}
	j, err := DecodeVODJob([]byte("vod-7"), []byte(`{}`))
	if err != nil || j.StreamID != "vod-7" {
		t.Fatalf("DecodeVODJob = %+v, %v; want stream vod-7 from the key", j, err)
	}
}

func TestControlDecodersRejectWithFieldNamedErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		decode func(key, value []byte) (ControlMessage, error)
		key    string
		value  string
		field  string // "" when the error is about the whole value
		want   string
	}{
		{"job: no job id anywhere", decodeJobRun, "", `{}`, "job_id", "is required"},
		{"job: bad job id", decodeJobRun, "", `{"job_id":"a/b"}`, "job_id", "job ids use"},
		{"vod: empty value", decodeVODJob, "k", ``, "", "vod job: value is not a JSON object: got nothing"},
		{"vod: array", decodeVODJob, "k", `[1]`, "", "vod job: value is not a JSON object: got an array"},
		{"vod: truncated", decodeVODJob, "k", `{"stream_id":"a"`, "", "vod job: invalid JSON"},
		{"vod: no stream id anywhere", decodeVODJob, "", `{"source_key":"a"}`, "stream_id", "is required"},
		{"vod: stream id a number", decodeVODJob, "k", `{"stream_id":7}`, "stream_id", "must be a string, got number"},
		{"vod: title an object", decodeVODJob, "k", `{"stream_id":"a","title":{}}`, "title", "must be a string, got object"},
		{"vod: bad time", decodeVODJob, "k", `{"stream_id":"a","submitted_at":"yesterday"}`, "submitted_at", `must be an RFC 3339 time like "2024-05-01T12:00:00Z", got "\"yesterday\""`},
		{"vod: time a number", decodeVODJob, "k", `{"stream_id":"a","submitted_at":1700000000}`, "submitted_at", "must be an RFC 3339 time"},
		{"live: no action", decodeLiveControl, "k", `{"stream_id":"a"}`, "action", `is required: "start" or "end"`},
		{"live: unknown action", decodeLiveControl, "k", `{"action":"pause","stream_id":"a"}`, "action", `must be "start" or "end", got "pause"`},
		{"live: action a bool", decodeLiveControl, "k", `{"action":true}`, "action", "must be a string, got bool"},
		{"live: no stream id anywhere", decodeLiveControl, "", `{"action":"start"}`, "stream_id", "is required"},
		{"live: bad requested_at", decodeLiveControl, "k", `{"action":"end","requested_at":"2024-13-01T00:00:00Z"}`, "requested_at", "must be an RFC 3339 time"},
		{"live: not json", decodeLiveControl, "k", `start live-1`, "", "live control: value is not a JSON object: got a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := tc.decode([]byte(tc.key), []byte(tc.value))
			if err == nil || msg != nil {
				t.Fatalf("decoded %#v, %v; want an error", msg, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			var fe *FieldError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Errorf("error %q does not name field %q", err, tc.field)
			}
		})
	}
}

func TestAlertRefusesWithFieldNamedErrors(t *testing.T) {
	valid := `"alert_id":"al-1","rule_id":"rule-1","condition":"keyword","scope":"job:job-1","summary":"s","raised_at":"2024-05-01T12:00:00Z"`
	for _, tc := range []struct{ value, field, want string }{
		{`{"event_id":"al-1:raised","event":"raised",` + valid + `,"start_ms":5,"end_ms":4}`, "end_ms", "must not be before start_ms"},
		{`{"event_id":"al-1:raised","event":"raised",` + valid + `,"start_ms":5}`, "end_ms", "come together"},
		{`{"event_id":"al-1:raised","event":"opened",` + valid + `}`, "event", `must be "raised" or "resolved"`},
		{`{"event_id":"al-2:raised","event":"raised",` + valid + `}`, "event_id", `must be "al-1:raised"`},
		{`{"event_id":"al-1:resolved","event":"resolved",` + valid + `}`, "resolved_at", "is required"},
		{`{"event_id":"al-1:raised","event":"raised",` + strings.Replace(valid, "job:job-1", "title:x", 1) + `}`, "scope", `"job:<id>" or "stream:<id>"`},
		{`{"event_id":"al-1:raised","event":"raised",` + valid + `,"details":[1]}`, "details", "must be a JSON object"},
		{`{"event_id":":raised","event":"raised","rule_id":"r"}`, "alert_id", "is empty"},
	} {
		_, err := DecodeAlert(nil, []byte(tc.value))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeAlert(%s) = %v; want field %s: %s", tc.value, err, tc.field, tc.want)
		}
	}
	if m, err := DecodeAlert([]byte("rule-1"), []byte(strings.Replace(`{"event_id":"al-1:raised","event":"raised",`+valid+`}`, `"rule_id":"rule-1",`, "", 1))); err != nil || m.RuleID != "rule-1" {
		t.Errorf("rule id from the key: %+v, %v", m, err)
	}
}

func TestEncodeControlRefusesInvalidMessages(t *testing.T) {
	for _, m := range []ControlMessage{&VODJob{}, &LiveControl{StreamID: "a"}, &LiveControl{Action: LiveEnd}, (*VODJob)(nil)} {
		if key, value, err := EncodeControl(m); err == nil {
			t.Errorf("EncodeControl(%#v) = %q, %q; want an error", m, key, value)
		}
	}
}

// fuzzControl checks that decode never crashes, fails with an error and no
// message or succeeds with a valid one, and that what it accepts encodes
// to a value that decodes to the same message.
func fuzzControl(f *testing.F, decode func(key, value []byte) (ControlMessage, error), of ControlMessage, seeds ...string) {
	for _, c := range controlCases() {
		if _, value, err := EncodeControl(c.msg); err == nil && reflect.TypeOf(c.msg) == reflect.TypeOf(of) {
			f.Add([]byte(c.key), value)
		}
	}
	for _, s := range seeds {
		f.Add([]byte("k"), []byte(s))
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		msg, err := decode(key, value)
		if err != nil {
			if msg != nil {
				t.Fatalf("message %#v returned with error %v", msg, err)
			}
			return
		}
		if err := msg.Validate(); err != nil {
			t.Fatalf("decoded message is invalid: %v", err)
		}
		key2, value2, err := EncodeControl(msg)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v\nmessage: %#v", err, msg)
		}
		again, err := decode(key2, value2)
		if err != nil {
			t.Fatalf("encoded message does not decode: %v\nvalue: %s", err, value2)
		}
		_, value3, err := EncodeControl(again)
		if err != nil || !bytes.Equal(value3, value2) {
			t.Fatalf("round trip changed the message:\n first: %s\nsecond: %s (%v)", value2, value3, err)
		}
	})
}

func FuzzDecodeVODJob(f *testing.F) {
	fuzzControl(f, decodeVODJob, &VODJob{}, `{}`, `{"stream_id":1}`, `{"submitted_at":"2024-05-01T12:00:00+02:00"}`, `{"x":null,"X":1}`)
}

func FuzzDecodeLiveControl(f *testing.F) {
	fuzzControl(f, decodeLiveControl, &LiveControl{}, `{"action":"start"}`, `{"action":"end","requested_at":null}`, `{"action":"stop"}`)
}

func FuzzDecodeAlert(f *testing.F) {
	fuzzControl(f, decodeAlert, &Alert{}, `{"event":"raised"}`, `{"alert_id":"a","event":"resolved","event_id":"a:resolved"}`, `{"start_ms":-1}`)
}

func FuzzDecodeJobRun(f *testing.F) {
	fuzzControl(f, decodeJobRun, &JobRun{}, `{"job_id":"job-1"}`, `{"job_id":7}`, `{"submitted_at":"x"}`)
}

func TestHeaderValues(t *testing.T) {
	at := time.UnixMicro(1_700_000_000_123_456)
	if v := FormatReceivedAt(at); string(v) != "1700000000123456" {
		t.Errorf("FormatReceivedAt = %q", v)
	}
	if got, err := ParseReceivedAt(FormatReceivedAt(at)); err != nil || !got.Equal(at) {
		t.Errorf("ParseReceivedAt round trip = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "-5", "1.5", "abc", "99999999999999999999"} {
		if _, err := ParseReceivedAt([]byte(bad)); err == nil || !strings.Contains(err.Error(), HeaderReceivedAt) {
			t.Errorf("ParseReceivedAt(%q) = %v, want an error naming the header", bad, err)
		}
	}
	if v := FormatLiveEnd("ended on request"); string(v) != `"ended on request"` {
		t.Errorf("FormatLiveEnd = %s", v)
	}
	if r, err := ParseLiveEnd(FormatLiveEnd("gone \"now\"")); err != nil || r != `gone "now"` {
		t.Errorf("ParseLiveEnd round trip = %q, %v", r, err)
	}
	if _, err := ParseLiveEnd([]byte("ended")); err == nil || !strings.Contains(err.Error(), HeaderLiveEnd) {
		t.Errorf("ParseLiveEnd(ended) = %v, want an error naming the header", err)
	}
	if v := FormatPublishToken(17); string(v) != "17" {
		t.Errorf("FormatPublishToken = %q", v)
	}
	if got, err := ParsePublishToken(FormatPublishToken(1 << 40)); err != nil || got != 1<<40 {
		t.Errorf("ParsePublishToken round trip = %d, %v", got, err)
	}
	for _, bad := range []string{"", "0", "-5", "1.5", " 7", "abc", "9223372036854775808"} {
		if _, err := ParsePublishToken([]byte(bad)); err == nil || !strings.Contains(err.Error(), HeaderPublishToken) {
			t.Errorf("ParsePublishToken(%q) = %v, want an error naming the header", bad, err)
		}
	}
}

// FuzzParsePublishToken checks that ParsePublishToken never crashes, that
// what it accepts is positive, and that it formats back to the same bytes.
func FuzzParsePublishToken(f *testing.F) {
	for _, s := range []string{"17", "0", "-1", "", "+5", "007"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		tok, err := ParsePublishToken(v)
		if err != nil {
			return
		}
		if tok <= 0 {
			t.Fatalf("ParsePublishToken(%q) = %d, want a positive token or an error", v, tok)
		}
		again, err := ParsePublishToken(FormatPublishToken(tok))
		if err != nil || again != tok {
			t.Fatalf("ParsePublishToken(%q) = %d, but its formatted value parses to %d, %v", v, tok, again, err)
		}
	})
}

// FuzzParseReceivedAt checks that ParseReceivedAt never crashes and that
// what it accepts formats back to a value that parses to the same time.
func FuzzParseReceivedAt(f *testing.F) {
	for _, s := range []string{"1700000000123456", "0", "-1", "", "1e6", "+5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		at, err := ParseReceivedAt(v)
		if err != nil {
			return
		}
		again, err := ParseReceivedAt(FormatReceivedAt(at))
		if err != nil || !again.Equal(at) {
			t.Fatalf("ParseReceivedAt(%q) = %v, but its formatted value parses to %v, %v", v, at, again, err)
		}
	})
}
