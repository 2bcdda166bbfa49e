package alerts

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/netguard"
)

func TestParseRuleReadsEveryConditionAndFillsDefaults(t *testing.T) {
	for _, tc := range []struct {
		body string
		want Condition
	}{
		{`{"name": "n", "condition": {"type": "keyword", "phrase": "Cup of Coffee"}}`, Condition{Type: CondKeyword, Phrase: "Cup of Coffee"}},
		{`{"name": "n", "condition": {"type": "ocr", "pattern": "(?i)breaking", "engine": "ocr"}}`, Condition{Type: CondOCR, Pattern: "(?i)breaking", Engine: "ocr"}},
		{`{"name": "n", "condition": {"type": "fingerprint", "reference": "jingle"}}`, Condition{Type: CondFingerprint, Reference: "jingle"}},
		{`{"name": "n", "condition": {"type": "detection", "label": "person", "min_count": 3}}`, Condition{Type: CondDetection, Label: "person", MinCount: 3}},
		{`{"name": "n", "condition": {"type": "detection", "label": "face"}}`, Condition{Type: CondDetection, Label: "face", MinCount: 1}},
		{`{"name": "n", "condition": {"type": "silence"}}`, Condition{Type: CondSilence, MinDuration: Duration(DefaultMinDuration)}},
		{`{"name": "n", "condition": {"type": "black", "min_duration": "2.5"}}`, Condition{Type: CondBlack, MinDuration: Duration(2500 * time.Millisecond)}},
		{`{"name": "n", "condition": {"type": "no_segments", "min_duration": "30s"}, "scope": {"stream": "live-1"}}`, Condition{Type: CondNoSegments, MinDuration: Duration(30 * time.Second)}},
	} {
		nr, err := ParseRule([]byte(tc.body), ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		got := nr.Condition
		got.re, got.phrase = nil, nil
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.body, got, tc.want)
		}
		if nr.Cooldown.D() != DefaultCooldown || !strings.HasPrefix(nr.Secret, "whsec_") || nr.SecretGiven {
			t.Errorf("%s: defaults %+v", tc.body, nr)
		}
	}
	nr, err := ParseRule([]byte(`{"name": " loud ", "condition": {"type": "loudness", "max_lufs": -10, "min_lufs": -40.5},
		"scope": {"title": "vod-1"}, "cooldown": "0s", "retry_for": "1h", "secret": "0123456789abcdef0123",
		"webhooks": [{"url": "https://hooks.example.com/weir?x=1"}]}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nr.Name != "loud" || nr.Scope != (Scope{ScopeTitle, "vod-1"}) || nr.Cooldown != 0 || nr.RetryFor.D() != time.Hour ||
		nr.Secret != "0123456789abcdef0123" || !nr.SecretGiven || len(nr.Webhooks) != 1 || *nr.Condition.MinLUFS != -40.5 ||
		*nr.Condition.MaxLUFS != -10 || nr.Condition.Measure != "short_term" {
		t.Fatalf("parsed %+v", nr)
	}
	// The stored spec reads back as the same rule.
	back, err := ParseSpec("rule-1", nr.Name, nr.Spec(), nr.Secret, time.Unix(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Spec(), nr.Spec()) || back.Scope != nr.Scope || back.ID != "rule-1" {
		t.Fatalf("spec round trip:\n%s\n%s", back.Spec(), nr.Spec())
	}
	var spec map[string]any
	json.Unmarshal(nr.Spec(), &spec)
	if spec["scope"].(map[string]any)["title"] != "vod-1" || spec["cooldown"] != "0s" || spec["secret"] != nil {
		t.Fatalf("spec %s", nr.Spec())
	}
}

func TestParseRuleNamesEveryMemberAtFault(t *testing.T) {
	loopback := func(ip netip.Addr) error { return netguard.Outbound{}.Check(ip) }
	for _, tc := range []struct {
		body   string
		fields []string // every field named, in order
		want   string
	}{
		{``, []string{""}, "the rule is empty"},
		{`[1]`, []string{""}, "must be a JSON object, got array"},
		{`{"name": "a"} {}`, []string{""}, "more than one value"},
		{`{"name": "a"`, []string{""}, "malformed JSON"},
		{`{}`, []string{"name", "condition"}, "is required"},
		{`{"name": 7, "condition": {"type": "keyword"}}`, []string{"name", "condition.phrase"}, "must be a string, got a number"},
		{`{"name": "a", "condition": {"type": "smoke"}}`, []string{"condition.type"}, "must be one of keyword, ocr"},
		{`{"name": "a", "condition": {"type": "keyword", "phrase": "?!"}}`, []string{"condition.phrase"}, "has no word"},
		{`{"name": "a", "condition": {"type": "ocr", "pattern": "(unclosed"}}`, []string{"condition.pattern"}, "is not an RE2 regular expression"},
		{`{"name": "a", "condition": {"type": "ocr", "pattern": "` + strings.Repeat("a", 513) + `"}}`, []string{"condition.pattern"}, "more than 512"},
		{`{"name": "a", "condition": {"type": "ocr", "pattern": "(a)\\1"}}`, []string{"condition.pattern"}, "invalid escape sequence"},
		{`{"name": "a", "condition": {"type": "detection", "label": "face", "min_count": 1.5}}`, []string{"condition.min_count"}, "whole number"},
		{`{"name": "a", "condition": {"type": "detection", "label": "face", "min_count": 0}}`, []string{"condition.min_count"}, "must be from 1"},
		{`{"name": "a", "condition": {"type": "fingerprint", "reference": "j", "min_score": 2}}`, []string{"condition.min_score"}, "must be from 0 to 1"},
		{`{"name": "a", "condition": {"type": "loudness"}}`, []string{"condition.min_lufs"}, "give min_lufs, max_lufs or both"},
		{`{"name": "a", "condition": {"type": "loudness", "min_lufs": -10, "max_lufs": -20}}`, []string{"condition.max_lufs"}, "must be above min_lufs"},
		{`{"name": "a", "condition": {"type": "loudness", "min_lufs": -10, "measure": "integrated"}}`, []string{"condition.measure"}, "must be one of short_term, momentary"},
		{`{"name": "a", "condition": {"type": "silence", "min_duration": "forever"}}`, []string{"condition.min_duration"}, "want Go syntax"},
		{`{"name": "a", "condition": {"type": "silence", "min_duration": 5}}`, []string{"condition.min_duration"}, `must be a duration string like "30s"`},
		{`{"name": "a", "condition": {"type": "silence", "min_duration": "2h"}}`, []string{"condition.min_duration"}, "must be from 0s to 1h0m0s"},
		{`{"name": "a", "condition": {"type": "silence", "phrase": "x"}}`, []string{"condition.phrase"}, "is not a member"},
		{`{"name": "a", "condition": {"type": "no_segments"}, "scope": {"stream": "live-1"}}`, []string{"condition.min_duration"}, "is required"},
		{`{"name": "a", "condition": {"type": "no_segments", "min_duration": "5s"}}`, []string{"scope"}, "watches one live stream"},
		{`{"name": "a", "condition": {"type": "silence"}, "scope": {"stream": "a", "job": "b"}}`, []string{"scope"}, "not stream and job"},
		{`{"name": "a", "condition": {"type": "silence"}, "scope": {"stream": "a/b"}}`, []string{"scope.stream"}, "ids use [A-Za-z0-9._-]"},
		{`{"name": "a", "condition": {"type": "silence"}, "scope": {"all": false}}`, []string{"scope.all"}, "must be true"},
		{`{"name": "a", "condition": {"type": "silence"}, "scope": {"tenant": "x"}}`, []string{"scope.tenant"}, "is not a member"},
		{`{"name": "a", "condition": {"type": "silence"}, "cooldown": "-1s"}`, []string{"cooldown"}, "must be positive"},
		{`{"name": "a", "condition": {"type": "silence"}, "webhooks": {"url": "x"}}`, []string{"webhooks"}, "must be an array"},
		{`{"name": "a", "condition": {"type": "silence"}, "webhooks": [{"url": "ftp://x/"}, {"url": "http://u:p@x/"}, {"url": "http://127.0.0.1:9/"}, {}, {"url": "https://x/#f"}, "x"]}`,
			[]string{"webhooks"}, "has 6 entries, at most 5"},
		{`{"name": "a", "condition": {"type": "silence"}, "webhooks": [{"url": "ftp://x/"}, {"url": "http://u:p@x/"}, {"url": "http://127.0.0.1:9/"}, {}, "x"]}`,
			[]string{"webhooks[0].url", "webhooks[1].url", "webhooks[2].url", "webhooks[3].url", "webhooks[4]"}, `must be an http or https URL, got scheme "ftp"`},
		{`{"name": "a", "condition": {"type": "silence"}, "secret": "short"}`, []string{"secret"}, "use at least 16"},
		{`{"name": "a", "condition": {"type": "silence"}, "owner": "me"}`, []string{"owner"}, "is not a member this object has"},
		{`{"name": "a\u0007", "condition": {"type": "silence"}}`, []string{"name"}, "control character"},
	} {
		_, err := ParseRule([]byte(tc.body), ParseOptions{Webhooks: loopback})
		var re *RuleError
		if !errors.As(err, &re) {
			t.Errorf("%.80s: error %v, want a *RuleError", tc.body, err)
			continue
		}
		var fields []string
		for _, p := range re.Problems {
			fields = append(fields, p.Field)
		}
		if !reflect.DeepEqual(fields, tc.fields) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.80s:\n error %v\n fields %q, want %q and %q", tc.body, err, fields, tc.fields, tc.want)
		}
	}
}

// FuzzParseRule checks that no input crashes or wedges the parser, that
// an accepted rule has a type, a name and a secret, and that its stored
// spec reads back as the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		`{"name": "n", "condition": {"type": "keyword", "phrase": "cup of coffee"}, "scope": {"stream": "live-1"}, "cooldown": "30s", "webhooks": [{"url": "https://h.example/x"}]}`,
		`{"name": "n", "condition": {"type": "ocr", "pattern": "(?i)^break(ing)?\\s+news$"}}`,
		`{"name": "n", "condition": {"type": "loudness", "min_lufs": -60, "max_lufs": -5, "measure": "momentary", "min_duration": "2s"}}`,
		`{"name": "n", "condition": {"type": "no_segments", "min_duration": "10s"}, "scope": {"stream": "live-x"}}`,
		`{"name": "n", "condition": {"type": "detection", "label": "person", "min_count": 1e3}}`,
		`{"name": "n", "condition": null, "scope": {"all": true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nr, err := ParseRule(data, ParseOptions{})
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) || len(re.Problems) == 0 {
				t.Fatalf("error %v is not a *RuleError with problems", err)
			}
			return
		}
		if nr.Name == "" || nr.Secret == "" || nr.Condition.Type == "" || nr.Scope.Kind == "" {
			t.Fatalf("accepted an incomplete rule: %+v", nr)
		}
		back, err := ParseSpec("rule-x", nr.Name, nr.Spec(), nr.Secret, time.Time{})
		if err != nil {
			t.Fatalf("spec %s does not read back: %v", nr.Spec(), err)
		}
		if string(back.Spec()) != string(nr.Spec()) {
			t.Fatalf("spec round trip:\n%s\n%s", back.Spec(), nr.Spec())
		}
	})
}
