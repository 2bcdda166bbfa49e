package protocol

import (
	"reflect"
	"testing"
	"time"
)

// seedChunkPayload is seed 000's third example verbatim, tabs included.
const seedChunkPayload = `{
	"jobId": "89259689-966d-4e03-91b7-fb1509050a7e",
	"taskId": "89259689-966d-4e03-91b7-fb1509050a7e-2357fa3b-da3b-481f-afbc-8cde95ac193a",
	"recordingId": "400002379",
	"streamOutKafkaTopic": "stream_00000012",
	"taskPayload": {
		"url": "http://18763.live.streamtheworld.com/WWWQFMAAC",
		"isLiveStream": true,
		"recordDuration": "1m",
		"generateMediaAssets": true,
		"outputChunkDuration": "10s"
	}
}`

func TestParseTaskPayloadReadsVeritoneExample(t *testing.T) {
	p, err := ParseTaskPayload([]byte(seedChunkPayload))
	if err != nil {
		t.Fatal(err)
	}
	if p.StreamOutKafkaTopic != "stream_00000012" || p.RecordingID != "400002379" || !p.Payload.IsLiveStream || !p.Payload.GenerateMediaAssets {
		t.Errorf("payload = %+v", p)
	}
	rec, err := p.Payload.RecordLimit()
	if err != nil || rec != time.Minute {
		t.Errorf("RecordLimit = %v, %v; want 1m", rec, err)
	}
	chunk, err := p.Payload.ChunkDuration()
	if err != nil || chunk != 10*time.Second {
		t.Errorf("ChunkDuration = %v, %v; want 10s", chunk, err)
	}
}

func TestPayloadDurationsUnsetMeanZero(t *testing.T) {
	var p Payload
	if d, err := p.RecordLimit(); d != 0 || err != nil {
		t.Errorf("RecordLimit = %v, %v", d, err)
	}
	if d, err := p.ChunkDuration(); d != 0 || err != nil {
		t.Errorf("ChunkDuration = %v, %v", d, err)
	}
}

func TestParseTaskPayloadRejects(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"not an object", `"x"`, `task payload: want a JSON object, got a string`},
		{"empty", ``, `task payload: want a JSON object, got nothing`},
		{"truncated", `{"jobId":"j"`, `task payload: invalid JSON: unexpected end of JSON input`},
		{"bad record duration", `{"taskPayload":{"recordDuration":"1x"}}`,
			`task payload: field "taskPayload.recordDuration": duration "1x": want Go syntax like "1m30s" or plain seconds like "90"`},
		{"negative chunk duration", `{"taskPayload":{"outputChunkDuration":"-10s"}}`,
			`task payload: field "taskPayload.outputChunkDuration": duration "-10s": must be positive`},
		{"zero record duration", `{"taskPayload":{"recordDuration":"0"}}`,
			`task payload: field "taskPayload.recordDuration": duration "0": must be positive`},
		{"numeric record duration", `{"taskPayload":{"recordDuration":60}}`,
			`task payload: field "taskPayload.recordDuration": must be a string, got number`},
		{"string isLiveStream", `{"taskPayload":{"isLiveStream":"true"}}`,
			`task payload: field "taskPayload.isLiveStream": must be a boolean, got string`},
		{"payload as a string", `{"taskPayload":"url=x"}`,
			`task payload: field "taskPayload": must be an object, got string`},
		{"numeric recordingId", `{"recordingId":400002379}`,
			`task payload: field "recordingId": must be a string, got number`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseTaskPayload([]byte(c.in))
			if err == nil {
				t.Fatalf("ParseTaskPayload = %+v, want error", p)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, c.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"1m", time.Minute, ""},
		{"10s", 10 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"90", 90 * time.Second, ""},
		{"2.5", 2500 * time.Millisecond, ""},
		{"0.001", time.Millisecond, ""},
		{" 30s ", 30 * time.Second, ""},
		{"", 0, `duration "": is empty`},
		{"   ", 0, `duration "   ": is empty`},
		{"0s", 0, `duration "0s": must be positive`},
		{"-1", 0, `duration "-1": must be positive`},
		{"1 m", 0, `duration "1 m": want Go syntax like "1m30s" or plain seconds like "90"`},
		{"1d", 0, `duration "1d": want Go syntax like "1m30s" or plain seconds like "90"`},
		{"NaN", 0, `duration "NaN": out of range`},
		{"Inf", 0, `duration "Inf": out of range`},
		{"1e12", 0, `duration "1e12": out of range`},
		{"9999999999h", 0, `duration "9999999999h": out of range`},
	}
	for _, c := range cases {
		d, err := ParseDuration(c.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if d != c.want || got != c.wantErr {
			t.Errorf("ParseDuration(%q) = %v, %q; want %v, %q", c.in, d, got, c.want, c.wantErr)
		}
	}
}

func TestTaskPayloadKeepsUnknownMembersThroughValidate(t *testing.T) {
	in := `{"jobId":"j","taskPayload":{"url":"u","libraryId":"lib-1","lang":"en"},"token":"secret"}`
	p, err := ParseTaskPayload([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for k, v := range p.Payload.Extra {
		got["taskPayload."+k] = string(v)
	}
	for k, v := range p.Extra {
		got[k] = string(v)
	}
	want := map[string]string{"taskPayload.libraryId": `"lib-1"`, "taskPayload.lang": `"en"`, "token": `"secret"`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("extra = %v, want %v", got, want)
	}
}
