package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

var (
	liveIDPattern     = regexp.MustCompile(`^live-[0-9a-f]{12}$`)
	publishKeyPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func startStream(t *testing.T, e *env, body any) StartStreamResponse {
	t.Helper()
	rec := e.doJSON("POST", "/streams/start", body)
	if rec.Code != 201 {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	return decode[StartStreamResponse](t, rec)
}

func TestStartStream(t *testing.T) {
	cases := []struct {
		name                string
		configure           func(*Config)
		body                any
		wantRTMP, wantSRT   string // with KEY for the publish key
		wantPlayback, title string
	}{
		{
			name:         "defaults derive from the request host",
			body:         map[string]string{"title": "Match day"},
			wantRTMP:     "rtmp://example.com:1935/live/KEY",
			wantSRT:      "srt://example.com:8890?streamid=publish:KEY",
			wantPlayback: "http://example.com/hls/ID/live.m3u8",
			title:        "Match day",
		},
		{
			name: "configured public bases",
			configure: func(c *Config) {
				c.BaseURL = "https://media.example.org"
				c.RTMPBase = "rtmp://ingest.example.org:1935/"
				c.SRTBase = "srt://ingest.example.org:9000"
			},
			body:         nil,
			wantRTMP:     "rtmp://ingest.example.org:1935/live/KEY",
			wantSRT:      "srt://ingest.example.org:9000?streamid=publish:KEY",
			wantPlayback: "https://media.example.org/hls/ID/live.m3u8",
		},
		{
			name:         "ingest hosts follow the base URL",
			configure:    func(c *Config) { c.BaseURL = "http://[::1]:8080" },
			wantRTMP:     "rtmp://[::1]:1935/live/KEY",
			wantSRT:      "srt://[::1]:8890?streamid=publish:KEY",
			wantPlayback: "http://[::1]:8080/hls/ID/live.m3u8",
		},
		{
			name:         "pull source",
			body:         map[string]string{"source_url": "https://origin.example.com/live/stream.ts"},
			wantRTMP:     "rtmp://example.com:1935/live/KEY",
			wantSRT:      "srt://example.com:8890?streamid=publish:KEY",
			wantPlayback: "http://example.com/hls/ID/live.m3u8",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var configure []func(*Config)
			if tc.configure != nil {
				configure = append(configure, tc.configure)
			}
			e := newEnv(t, "", configure...)
			got := startStream(t, e, tc.body)
			if !liveIDPattern.MatchString(got.StreamID) || !publishKeyPattern.MatchString(got.PublishKey) {
				t.Fatalf("id %q key %q", got.StreamID, got.PublishKey)
			}
			fill := func(s string) string {
				return strings.NewReplacer("KEY", got.PublishKey, "ID", got.StreamID).Replace(s)
			}
			if got.Publish.RTMP != fill(tc.wantRTMP) || got.Publish.SRT != fill(tc.wantSRT) || got.Playback != fill(tc.wantPlayback) {
				t.Fatalf("urls %+v", got)
			}
			if got.Status != "created" || got.Title != tc.title {
				t.Fatalf("response %+v", got)
			}

			st, err := e.meta.GetStreamByPublishKey(context.Background(), got.PublishKey)
			if err != nil || st.ID != got.StreamID || st.Kind != metastore.KindLive || st.Status != metastore.StatusCreated {
				t.Fatalf("stream by publish key: %+v %v", st, err)
			}

			msgs := e.pub.messages(protocol.TopicLiveControl)
			if len(msgs) != 1 || msgs[0].Key != got.StreamID {
				t.Fatalf("control messages %+v", msgs)
			}
			var ctl protocol.LiveControl
			json.Unmarshal(msgs[0].Value, &ctl)
			wantSource := ""
			if m, ok := tc.body.(map[string]string); ok {
				wantSource = m["source_url"]
			}
			if ctl.Action != "start" || ctl.StreamID != got.StreamID || ctl.SourceURL != wantSource || st.SourceURL != wantSource {
				t.Fatalf("control %s, stream source %q", msgs[0].Value, st.SourceURL)
			}
			if strings.Contains(string(msgs[0].Value), got.PublishKey) {
				t.Fatal("the publish key leaked onto the bus")
			}
			md := e.do("GET", "/streams/"+got.StreamID+"/metadata", nil).Body.String()
			if strings.Contains(md, got.PublishKey) {
				t.Fatal("the publish key leaked into open metadata")
			}
		})
	}
}

func TestStartStreamWithSRTPassphraseAndRTMPS(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.RTMPSBase = "rtmps://ingest.example.org:1936/" })
	const pass = "s3cret&more#than%10"
	got := startStream(t, e, map[string]string{"srt_passphrase": pass})
	if got.SRTPassphrase != pass {
		t.Fatalf("srt_passphrase in the answer: %q", got.SRTPassphrase)
	}
	wantSRT := "srt://example.com:8890?streamid=publish:" + got.PublishKey + "&passphrase=s3cret%26more%23than%2510"
	if got.Publish.SRT != wantSRT || got.Publish.RTMPS != "rtmps://ingest.example.org:1936/live/"+got.PublishKey {
		t.Fatalf("publish URLs %+v", got.Publish)
	}
	st, err := e.meta.GetStream(context.Background(), got.StreamID)
	if err != nil || st.SRTPassphrase != pass {
		t.Fatalf("stored passphrase %q, %v", st.SRTPassphrase, err)
	}
	// Shown once: never in metadata, lists or on the bus.
	md := e.do("GET", "/streams/"+got.StreamID+"/metadata", nil).Body.String()
	list := e.do("GET", "/streams", nil).Body.String()
	for where, body := range map[string]string{"metadata": md, "list": list, "bus": string(e.pub.messages(protocol.TopicLiveControl)[0].Value)} {
		if strings.Contains(body, pass) || strings.Contains(body, "s3cret") {
			t.Fatalf("the passphrase leaked into the %s: %s", where, body)
		}
	}
	if !strings.Contains(md, `"srt_encrypted":true`) {
		t.Fatalf("metadata does not say the stream is encrypted: %s", md)
	}
	// Without a passphrase or RTMPS, neither appears.
	plain := startStream(t, newEnv(t, ""), nil)
	if plain.SRTPassphrase != "" || plain.Publish.RTMPS != "" || strings.Contains(plain.Publish.SRT, "passphrase") {
		t.Fatalf("plain stream: %+v", plain)
	}
}

func TestStartStreamPublishKeysDiffer(t *testing.T) {
	e := newEnv(t, "")
	a, b := startStream(t, e, nil), startStream(t, e, nil)
	if a.PublishKey == b.PublishKey || a.StreamID == b.StreamID {
		t.Fatalf("two streams share an id or key: %+v %+v", a, b)
	}
}

func TestStartStreamRejectsBadInput(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		status   int
		fragment string
	}{
		{"malformed JSON", `{"title": `, 400, "request body: unexpected end of JSON input"},
		{"not an object", `[1]`, 422, "request body: expected object"},
		{"wrong type", `{"title": 5}`, 422, "field title: expected string"},
		{"unknown field", `{"titel": "x"}`, 422, "field titel: unknown field"},
		{"title too long", `{"title": "` + strings.Repeat("x", 201) + `"}`, 422, "field title: must be at most 200 characters"},
		{"bad source scheme", `{"source_url": "ftp://x.example.com/live"}`, 422, "field source_url: scheme must be"},
		{"rtmp source", `{"source_url": "rtmp://x.example.com/live"}`, 422, `field source_url: scheme must be http or https (got "rtmp")`},
		{"source without host", `{"source_url": "https:///live"}`, 422, "field source_url: must include a host"},
		{"short srt passphrase", `{"srt_passphrase": "short"}`, 422, "field srt_passphrase: has 5 characters, want 10 to 79"},
		{"long srt passphrase", `{"srt_passphrase": "` + strings.Repeat("p", 80) + `"}`, 422, "field srt_passphrase"},
		{"srt passphrase with a space", `{"srt_passphrase": "two words here"}`, 422, "field srt_passphrase: use printable ASCII characters without spaces"},
		{"srt passphrase for a pulled stream", `{"srt_passphrase": "long-enough-secret", "source_url": "https://origin.example.com/a.ts"}`, 422, "field srt_passphrase: is for streams pushed over SRT"},
		{"oversized body", `{"title": "` + strings.Repeat("x", 2<<20) + `"}`, 413, "limit=1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			wantProblem(t, e.doJSON("POST", "/streams/start", tc.body), tc.status, tc.fragment)
			if n := e.streamCount(metastore.KindLive); n != 0 {
				t.Fatalf("%d streams created", n)
			}
		})
	}
}

func TestEndStream(t *testing.T) {
	e := newEnv(t, "")

	t.Run("never published ends at once", func(t *testing.T) {
		s := startStream(t, e, nil)
		rec := e.do("POST", "/streams/"+s.StreamID+"/end", nil)
		if rec.Code != 202 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if got := decode[StreamStatus](t, rec); got.Status != "vod" {
			t.Fatalf("status %+v", got)
		}
		msgs := e.pub.messages(protocol.TopicLiveControl)
		last := msgs[len(msgs)-1]
		var ctl protocol.LiveControl
		json.Unmarshal(last.Value, &ctl)
		if last.Key != s.StreamID || ctl.Action != "end" || ctl.StreamID != s.StreamID {
			t.Fatalf("end message %s", last.Value)
		}
		wantProblem(t, e.do("POST", "/streams/"+s.StreamID+"/end", nil), 409, "already ended (status vod)")
	})

	t.Run("live stream is left for the pipeline to finish", func(t *testing.T) {
		s := startStream(t, e, nil)
		advance(t, e, s.StreamID, metastore.StatusLive, nil)
		for range 2 { // repeating the request is harmless
			rec := e.do("POST", "/streams/"+s.StreamID+"/end", nil)
			if got := decode[StreamStatus](t, rec); rec.Code != 202 || got.Status != "live" {
				t.Fatalf("status %d %+v", rec.Code, got)
			}
		}
		advance(t, e, s.StreamID, metastore.StatusVOD, nil)
		wantProblem(t, e.do("POST", "/streams/"+s.StreamID+"/end", nil), 409, "already ended")
	})

	t.Run("bus down", func(t *testing.T) {
		s := startStream(t, e, nil)
		e.pub.setErr(errors.New("broker gone"))
		defer e.pub.setErr(nil)
		wantProblem(t, e.do("POST", "/streams/"+s.StreamID+"/end", nil), 503, "could not be announced")
		st, _ := e.meta.GetStream(context.Background(), s.StreamID)
		if st.Status != metastore.StatusCreated {
			t.Fatalf("status %s after a failed end", st.Status)
		}
	})
}

func TestStartStreamFailsCleanlyWhenBusIsDown(t *testing.T) {
	e := newEnv(t, "")
	e.pub.setErr(errors.New("broker gone"))
	wantProblem(t, e.doJSON("POST", "/streams/start", nil), 503, "could not be announced")
	rows, _, _ := e.meta.ListStreams(context.Background(), metastore.StreamFilter{Kind: metastore.KindLive})
	if len(rows) != 1 || rows[0].Status != metastore.StatusFailed {
		t.Fatalf("rows %+v", rows)
	}
	wantProblem(t, e.do("GET", "/streams/"+rows[0].ID+"/live", nil), 409, "failed")
}

func TestLiveURLAndMetadata(t *testing.T) {
	e := newEnv(t, "")
	s := startStream(t, e, map[string]string{"title": "Cup final"})

	live := decode[LiveURLResponse](t, e.do("GET", "/streams/"+s.StreamID+"/live", nil))
	if live.URL != "http://example.com/hls/"+s.StreamID+"/live.m3u8" || live.Status != "created" {
		t.Fatalf("live %+v", live)
	}

	for i := range 42 {
		if err := e.meta.UpsertSegment(context.Background(), metastore.Segment{
			StreamID: s.StreamID, ChunkIndex: int64(i), Sequence: int64(i),
			Key: fmt.Sprintf("%s/seg_%05d.ts", s.StreamID, i), DurationUS: 2e6,
		}); err != nil {
			t.Fatal(err)
		}
	}
	advance(t, e, s.StreamID, metastore.StatusLive, func(st *metastore.Stream) {
		st.Gaps = 1
		st.ChecksumFailures = 2
		st.Details = json.RawMessage(`{"dvr_window_segments": 10, "latency_ms": 850}`)
	})
	md := decode[LiveMetadata](t, e.do("GET", "/streams/"+s.StreamID+"/metadata", nil))
	if md.Status != "live" || md.Title != "Cup final" || md.SegmentCount != 42 || md.Gaps != 1 || md.ChecksumFailures != 2 {
		t.Fatalf("metadata %+v", md)
	}
	if md.StartedAt == nil || md.EndedAt != nil || md.Details["latency_ms"] != float64(850) || md.Details["dvr_window_segments"] != float64(10) {
		t.Fatalf("metadata %+v", md)
	}
	if md.Playback != live.URL {
		t.Fatalf("playback %q", md.Playback)
	}
}

func TestListStreams(t *testing.T) {
	e := newEnv(t, "")
	a := startStream(t, e, nil)
	startStream(t, e, nil)
	advance(t, e, a.StreamID, metastore.StatusLive, nil)
	uploadOne(t, e, "")

	all := decode[StreamList](t, e.do("GET", "/streams", nil))
	if len(all.Items) != 2 {
		t.Fatalf("listing %+v", all)
	}
	live := decode[StreamList](t, e.do("GET", "/streams?status=live", nil))
	if len(live.Items) != 1 || live.Items[0].StreamID != a.StreamID {
		t.Fatalf("live listing %+v", live)
	}
	wantProblem(t, e.do("GET", "/streams?status=ready", nil), 422, "query parameter status", "created, live, vod, failed")
}

// The publish key is shown once, in the start response; the metadata
// store keeps only its SHA-256, so a copy of the database (a backup, a
// stolen disk) does not let anyone publish, and the key still opens the
// stream because the lookup hashes what the publisher presents.
func TestPublishKeyIsStoredOnlyAsItsHash(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	got := startStream(t, e, map[string]string{"title": "hashed"})
	var disk []byte
	for _, name := range []string{"weir.db", "weir.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		disk = append(disk, b...)
	}
	if bytes.Contains(disk, []byte(got.PublishKey)) {
		t.Fatal("the plain publish key is in the metadata database")
	}
	if !bytes.Contains(disk, []byte(metastore.HashPublishKey(got.PublishKey))) {
		t.Fatal("the publish key's SHA-256 is not in the metadata database")
	}
	st, err := e.meta.GetStream(context.Background(), got.StreamID)
	if err != nil || st.PublishKey != "" || st.PublishKeyHash != metastore.HashPublishKey(got.PublishKey) {
		t.Fatalf("stream read back: key %q hash %q, %v; want no key and its hash", st.PublishKey, st.PublishKeyHash, err)
	}
	if byKey, err := e.meta.GetStreamByPublishKey(context.Background(), got.PublishKey); err != nil || byKey.ID != got.StreamID {
		t.Fatalf("the key no longer opens its stream: %+v, %v", byKey, err)
	}
}

func TestStartStreamLadder(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "", func(c *Config) { c.LiveLadder = []string{"480p=1400k", "360p=800k"} })
	stored := func(id string) []string {
		t.Helper()
		st, err := e.meta.GetStream(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.VariantsGenerated
	}
	// No ladder in the request: the server's default.
	def := startStream(t, e, map[string]any{"title": "default"})
	if got := stored(def.StreamID); len(got) != 2 || got[0] != "480p=1400k" || got[1] != "360p=800k" {
		t.Fatalf("default ladder stored as %q", got)
	}
	if def.Master != "http://example.com/hls/"+def.StreamID+"/master.m3u8" || len(def.Ladder) != 2 {
		t.Fatalf("answer: master %q, ladder %q", def.Master, def.Ladder)
	}
	// A ladder of its own, normalised.
	own := startStream(t, e, map[string]any{"ladder": []string{"720p=3000000", "240p=400k"}})
	if got := stored(own.StreamID); len(got) != 2 || got[0] != "720p=3M" || got[1] != "240p=400k" {
		t.Fatalf("own ladder stored as %q", got)
	}
	md := decode[LiveMetadata](t, e.do("GET", "/streams/"+own.StreamID+"/metadata", nil))
	if len(md.Ladder) != 2 || md.Ladder[0] != "720p=3M" {
		t.Fatalf("metadata ladder %q", md.Ladder)
	}
	// [] turns the default off.
	off := startStream(t, e, map[string]any{"ladder": []string{}})
	if got := stored(off.StreamID); len(got) != 0 || off.Master != "" {
		t.Fatalf("ladder [] stored %q, master %q", got, off.Master)
	}
	// Bad ladders are refused with the field named.
	for _, bad := range [][]string{{"480p"}, {"360p=800k", "480p=1400k"}, {"481p=1M"}, {"480p=1400k,360p=800k"}} {
		rec := e.doJSON("POST", "/streams/start", map[string]any{"ladder": bad})
		if rec.Code != 422 || !strings.Contains(rec.Body.String(), "body.ladder") {
			t.Errorf("ladder %q: %d %s", bad, rec.Code, rec.Body)
		}
	}
}

func TestStartStreamLowLatency(t *testing.T) {
	ctx := context.Background()
	for _, serverDefault := range []bool{false, true} {
		e := newEnv(t, "", func(c *Config) { c.LiveLLHLS = serverDefault })
		lowLatency := func(id string) bool {
			t.Helper()
			st, err := e.meta.GetStream(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				LL bool `json:"ll_hls"`
			}
			if len(st.Details) > 0 {
				if err := json.Unmarshal(st.Details, &d); err != nil {
					t.Fatal(err)
				}
			}
			return d.LL
		}
		def := startStream(t, e, map[string]any{"title": "default"})
		on := startStream(t, e, map[string]any{"ll_hls": true})
		off := startStream(t, e, map[string]any{"ll_hls": false})
		for _, c := range []struct {
			name string
			got  StartStreamResponse
			want bool
		}{{"default", def, serverDefault}, {"true", on, true}, {"false", off, false}} {
			if c.got.LLHLS != c.want || lowLatency(c.got.StreamID) != c.want {
				t.Errorf("server default %v, ll_hls %s: answer %v, stored %v, want %v", serverDefault, c.name, c.got.LLHLS, lowLatency(c.got.StreamID), c.want)
			}
		}
		if rec := e.doJSON("POST", "/streams/start", map[string]any{"ll_hls": "yes"}); rec.Code != 422 {
			t.Errorf("ll_hls \"yes\": %d %s", rec.Code, rec.Body)
		}
	}
}
