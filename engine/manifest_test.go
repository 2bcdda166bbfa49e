package engine

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const whisperYAML = `# an external speech engine
name: whisper
title: Whisper speech recognition
engineMode: chunk
summary: Transcribes speech
description: |
  Runs whisper.cpp on each chunk.
inputs: [audio/wav, audio/mpeg]
outputs: [transcript]
options:
  - name: language
    type: string
    default: en
    enum: [en, de, fr]
    doc: Spoken language (ISO 639-1)
  - name: beam
    type: int
    default: 5
    min: 1
    max: 16
    doc: Beam width
  - name: max_silence
    type: duration
    default: 2s
    doc: Longest pause inside one utterance
examples:
  - title: German news
    options: {language: de, beam: 8}
http:
  url: http://127.0.0.1:8888/whisper/
`

const whisperJSON = `{
  "name": "whisper", "title": "Whisper speech recognition", "engineMode": "chunk",
  "summary": "Transcribes speech", "description": "Runs whisper.cpp on each chunk.\n",
  "inputs": ["audio/wav", "audio/mpeg"], "outputs": ["transcript"],
  "options": [
    {"name": "language", "type": "string", "default": "en", "enum": ["en", "de", "fr"], "doc": "Spoken language (ISO 639-1)"},
    {"name": "beam", "type": "int", "default": 5, "min": 1, "max": 16, "doc": "Beam width"},
    {"name": "max_silence", "type": "duration", "default": "2s", "doc": "Longest pause inside one utterance"}
  ],
  "examples": [{"title": "German news", "options": {"language": "de", "beam": 8}}],
  "http": {"url": "http://127.0.0.1:8888/whisper/"}
}`

func TestParseManifestReadsYAMLAndJSONAlike(t *testing.T) {
	y, err := ParseManifest([]byte(whisperYAML))
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseManifest([]byte(whisperJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y, j) {
		t.Errorf("YAML and JSON differ:\n%+v\n%+v", y, j)
	}
	if y.Mode != ModeChunk || y.HTTP.ProcessURL() != "http://127.0.0.1:8888/whisper/process" || y.HTTP.ReadyURL() != "http://127.0.0.1:8888/whisper/ready" {
		t.Errorf("manifest = %+v %+v", y.Spec, y.HTTP)
	}
	if o, _ := y.Option("max_silence"); o.Default != 2*time.Second {
		t.Errorf("max_silence default = %#v", o.Default)
	}
	if o, _ := y.Option("beam"); o.Default != int64(5) || o.Max != int64(16) {
		t.Errorf("beam = %#v", o)
	}
}

func TestParseManifestRoundTripsThroughJSON(t *testing.T) {
	m, err := ParseManifest([]byte(whisperYAML))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseManifest(b)
	if err != nil {
		t.Fatalf("re-parse %s: %v", b, err)
	}
	if !reflect.DeepEqual(m, back) {
		t.Errorf("round trip changed the manifest:\n%+v\n%+v", m, back)
	}
	if !strings.Contains(string(b), `"default":"2s"`) || !strings.Contains(string(b), `"engineMode":"chunk"`) {
		t.Errorf("JSON form = %s", b)
	}
}

func TestParseManifestFillsKafkaDefaults(t *testing.T) {
	m, err := ParseManifest([]byte("name: silence\nengineMode: stream\nsummary: s\ninputs: [audio/*]\noutputs: [tag]\nkafka: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kafka.Topic != "chunk_silence" || m.Kafka.Group != "weir_engine_silence" {
		t.Errorf("kafka = %+v", m.Kafka)
	}
	m, err = ParseManifest([]byte(`{"name":"silence","engineMode":"stream","summary":"s","inputs":["audio/*"],"outputs":["tag"],"kafka":{"topic":"work.silence","group":"silence-workers"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kafka.Topic != "work.silence" || m.Kafka.Group != "silence-workers" {
		t.Errorf("kafka = %+v", m.Kafka)
	}
}

func TestParseManifestNamesTheBadMember(t *testing.T) {
	base := "name: whisper\nengineMode: chunk\nsummary: s\ninputs: [audio/wav]\noutputs: [transcript]\n"
	tests := []struct {
		name, manifest, field, says string
	}{
		{"empty", "  \n", "", "manifest is empty"},
		{"not YAML", "name: [unclosed\n", "", "not valid YAML"},
		{"not JSON", `{"name": "x",}`, "", "not valid JSON"},
		{"JSON with trailing data", `{"name": "x"} {}`, "", "data after the object"},
		{"a list", "- a\n- b\n", "", "must be an object"},
		{"non-string key", base + "1: x\nhttp: {url: http://h}\n", "", "key 1 must be a string"},
		{"unknown member", base + "engine_mode: chunk\nhttp: {url: http://h}\n", "engine_mode", "unknown member (known: description, engineMode, examples, http, inputs"},
		{"misspelt option member", base + "options: [{name: a, type: int, defualt: 3, doc: d}]\nhttp: {url: http://h}\n", "options[0].defualt", "unknown member"},
		{"number as name", "name: 42\n", "name", "want a string, got number 42"},
		{"inputs as a string", strings.Replace(base, "[audio/wav]", "audio/wav", 1) + "http: {url: http://h}\n", "inputs", "want a list of strings"},
		{"number in outputs", strings.Replace(base, "[transcript]", "[transcript, 3]", 1) + "http: {url: http://h}\n", "outputs[1]", "want a string, got number 3"},
		{"required as a string", base + "options: [{name: a, type: int, required: yes please, doc: d}]\nhttp: {url: http://h}\n", "options[0].required", "want true or false"},
		{"example options as a list", base + "examples: [{title: t, options: [a]}]\nhttp: {url: http://h}\n", "examples[0].options", "want an object"},
		{"legacy mode", strings.Replace(base, "chunk", "legacy", 1) + "http: {url: http://h}\n", "engineMode", "not real-time"},
		{"bad option type", base + "options: [{name: a, type: number, doc: d}]\nhttp: {url: http://h}\n", "options[0].type", `"number" is not one of`},
		{"no endpoint", base, "", "http (its base URL) or kafka"},
		{"both endpoints", base + "http: {url: http://h}\nkafka: {}\n", "kafka", "not both"},
		{"no URL", base + "http: {}\n", "http.url", "is required"},
		{"ftp URL", base + "http: {url: ftp://h/}\n", "http.url", "http:// or https://"},
		{"URL without host", base + "http: {url: 'http:///x'}\n", "http.url", "with a host"},
		{"credentials", base + "http: {url: 'http://u:p@h/'}\n", "http.url", "credentials"},
		{"query", base + "http: {url: 'http://h/?a=1'}\n", "http.url", "without query"},
		{"bad topic", base + "kafka: {topic: 'a topic'}\n", "kafka.topic", "not one of [a-zA-Z0-9._-]"},
		{"spaced group", base + "kafka: {group: ' g'}\n", "kafka.group", "surrounding spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.manifest))
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("ParseManifest = %v, want a *SpecError", err)
			}
			if se.Field != tt.field || !strings.Contains(se.Problem, tt.says) {
				t.Fatalf("error field %q problem %q, want field %q saying %q", se.Field, se.Problem, tt.field, tt.says)
			}
		})
	}
}

func TestParseManifestRefusesHugeInput(t *testing.T) {
	_, err := ParseManifest(make([]byte, MaxManifestBytes+1))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("error = %v", err)
	}
}

func TestManifestValidateLeavesTheManifestAlone(t *testing.T) {
	m := &Manifest{Spec: Spec{Name: "x", Mode: ModeBatch, Summary: "s", Inputs: []string{"video/*"}, Outputs: []string{"tag"}},
		Kafka: &KafkaEndpoint{}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Kafka.Topic != "" {
		t.Errorf("Validate filled in the topic: %+v", m.Kafka)
	}
	m.Kafka.Topic = "bad topic"
	if err := m.Validate(); err == nil {
		t.Error("a bad topic passed")
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(whisperYAML))
	f.Add([]byte(whisperJSON))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is %T, not *SpecError", err, err)
			}
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseManifest(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(m, back) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, back)
		}
	})
}
