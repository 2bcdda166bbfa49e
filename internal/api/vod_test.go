package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

var vodIDPattern = regexp.MustCompile(`^vod-[0-9a-f]{12}$`)

// part is one multipart form part.
type part struct {
	field, filename string
	data            []byte
}

// multipartForm encodes parts in order.
func multipartForm(t testing.TB, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.filename))
			h.Set("Content-Type", "video/mp4")
			w, err = mw.CreatePart(h)
		} else {
			w, err = mw.CreateFormField(p.field)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// multipartBody is a form with one file and, when title is set, a title.
func multipartBody(t testing.TB, filename string, data []byte, title string) (*bytes.Buffer, string) {
	parts := []part{{field: "file", filename: filename, data: data}}
	if title != "" {
		parts = append([]part{{field: "title", data: []byte(title)}}, parts...)
	}
	return multipartForm(t, parts...)
}

func (e *env) objectKeys() []string {
	e.t.Helper()
	infos, err := e.objects.List(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	keys := make([]string, len(infos))
	for i, in := range infos {
		keys[i] = in.Key
	}
	return keys
}

func (e *env) streamCount(kind metastore.Kind) int {
	e.t.Helper()
	rows, _, err := e.meta.ListStreams(context.Background(), metastore.StreamFilter{Kind: kind, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(rows)
}

func TestUploadMultipartStoresFileAndQueuesJob(t *testing.T) {
	cases := []struct {
		name      string
		parts     []part
		wantTitle string
		wantKey   string // after the stream id
	}{
		{"title before file", []part{{field: "title", data: []byte("The Farmer")}, {field: "file", filename: "farmer.mp4", data: []byte("media bytes")}}, "The Farmer", "/source/farmer.mp4"},
		{"title after file", []part{{field: "file", filename: "farmer.mp4", data: []byte("media bytes")}, {field: "title", data: []byte("Late Title")}}, "Late Title", "/source/farmer.mp4"},
		{"title from file name", []part{{field: "file", filename: "My Episode (1).mkv", data: []byte("media bytes")}}, "My Episode (1)", "/source/My_Episode__1_.mkv"},
		{"hostile file name is flattened", []part{{field: "file", filename: `..\..\windows/../../etc/passwd`, data: []byte("media bytes")}}, "passwd", "/source/passwd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			body, ct := multipartForm(t, tc.parts...)
			rec := e.do("POST", "/vod/upload", body, "Content-Type", ct)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			got := decode[UploadResponse](t, rec)
			if !vodIDPattern.MatchString(got.StreamID) {
				t.Fatalf("stream id %q does not look like vod-<12 hex>", got.StreamID)
			}
			if got.Status != "uploaded" || got.Title != tc.wantTitle || got.SizeBytes != int64(len("media bytes")) {
				t.Fatalf("response %+v", got)
			}
			wantKey := got.StreamID + tc.wantKey
			if got.SourceKey != wantKey {
				t.Fatalf("source key %q, want %q", got.SourceKey, wantKey)
			}
			if got.MetadataURL != "http://example.com/vod/"+got.StreamID+"/metadata" {
				t.Errorf("metadata url %q", got.MetadataURL)
			}

			rc, _, err := e.objects.Get(context.Background(), wantKey)
			if err != nil {
				t.Fatalf("stored object: %v", err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			if string(data) != "media bytes" {
				t.Fatalf("stored %q", data)
			}

			st, err := e.meta.GetStream(context.Background(), got.StreamID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Kind != metastore.KindVOD || st.Status != metastore.StatusUploaded || st.SourceKey != wantKey || st.Title != tc.wantTitle {
				t.Fatalf("stream row %+v", st)
			}

			msgs := e.pub.messages(protocol.TopicVODJobs)
			if len(msgs) != 1 || msgs[0].Key != got.StreamID {
				t.Fatalf("published %+v", msgs)
			}
			var job map[string]any
			json.Unmarshal(msgs[0].Value, &job)
			if job["stream_id"] != got.StreamID || job["source_key"] != wantKey {
				t.Fatalf("job %s", msgs[0].Value)
			}
			if _, has := job["source_url"]; has {
				t.Fatalf("upload job names a source_url: %s", msgs[0].Value)
			}
		})
	}
}

func TestUploadRejectsBadMultipart(t *testing.T) {
	cases := []struct {
		name     string
		body     func(t *testing.T) (io.Reader, string)
		status   int
		fragment string
	}{
		{"missing file part", func(t *testing.T) (io.Reader, string) {
			return multipartForm(t, part{field: "title", data: []byte("x")})
		}, 422, `field file: is required`},
		{"two files", func(t *testing.T) (io.Reader, string) {
			return multipartForm(t, part{field: "file", filename: "a.mp4", data: []byte("a")}, part{field: "file", filename: "b.mp4", data: []byte("b")})
		}, 422, "exactly one file"},
		{"unknown field", func(t *testing.T) (io.Reader, string) {
			return multipartForm(t, part{field: "file", filename: "a.mp4", data: []byte("a")}, part{field: "colour", data: []byte("red")})
		}, 422, "field colour: unknown form field"},
		{"empty file", func(t *testing.T) (io.Reader, string) {
			return multipartForm(t, part{field: "file", filename: "a.mp4"})
		}, 422, "field file: is empty"},
		{"title too long", func(t *testing.T) (io.Reader, string) {
			return multipartForm(t, part{field: "title", data: bytes.Repeat([]byte("é"), 201)}, part{field: "file", filename: "a.mp4", data: []byte("a")})
		}, 422, "field title: must be at most 200 characters"},
		{"title with control characters", func(t *testing.T) (io.Reader, string) {
			return multipartForm(t, part{field: "file", filename: "a.mp4", data: []byte("a")}, part{field: "title", data: []byte("a\x1bb")})
		}, 422, "field title: must not contain control characters"},
		{"no boundary", func(t *testing.T) (io.Reader, string) {
			return strings.NewReader("whatever"), "multipart/form-data"
		}, 400, "malformed multipart body"},
		{"truncated body", func(t *testing.T) (io.Reader, string) {
			b, ct := multipartForm(t, part{field: "file", filename: "a.mp4", data: []byte("abcdef")})
			return bytes.NewReader(b.Bytes()[:b.Len()-10]), ct
		}, 400, "malformed multipart body"},
		{"plain text body", func(t *testing.T) (io.Reader, string) {
			return strings.NewReader("hello"), "text/plain"
		}, 415, "multipart/form-data"},
		{"no content type", func(t *testing.T) (io.Reader, string) {
			return strings.NewReader("hello"), ""
		}, 415, "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			body, ct := tc.body(t)
			wantProblem(t, e.do("POST", "/vod/upload", body, "Content-Type", ct), tc.status, tc.fragment)
			if keys := e.objectKeys(); len(keys) != 0 {
				t.Errorf("objects left behind: %v", keys)
			}
			if n := e.streamCount(metastore.KindVOD); n != 0 {
				t.Errorf("%d streams created by a rejected upload", n)
			}
			if msgs := e.pub.messages(protocol.TopicVODJobs); len(msgs) != 0 {
				t.Errorf("jobs queued for a rejected upload: %v", msgs)
			}
		})
	}
}

func TestUploadSizeLimit(t *testing.T) {
	const limit = 64 << 10
	cases := []struct {
		name     string
		size     int
		chunked  bool // hide Content-Length so the limit is found while streaming
		wantCode int
	}{
		{"exactly at the limit", limit, true, 202},
		{"one byte over, streamed", limit + 1, true, 413},
		{"far over, streamed", 4 * limit, true, 413},
		{"far over, announced by Content-Length", 4 * limit, false, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "", func(c *Config) { c.MaxUploadBytes = limit })
			body, ct := multipartBody(t, "big.ts", bytes.Repeat([]byte{0x47}, tc.size), "")
			var r io.Reader = body
			if tc.chunked {
				r = io.MultiReader(body) // not a known-length type: ContentLength stays -1
			}
			req := httptest.NewRequest("POST", "/vod/upload", r)
			req.Header.Set("Content-Type", ct)
			if tc.chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(rec, req)
			if tc.wantCode != 413 {
				if rec.Code != tc.wantCode {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				return
			}
			wantProblem(t, rec, 413, fmt.Sprintf("limit of %d bytes", limit))
			if keys := e.objectKeys(); len(keys) != 0 {
				t.Fatalf("partial upload left behind: %v", keys)
			}
			if n := e.streamCount(metastore.KindVOD); n != 0 {
				t.Fatalf("%d streams created for an oversized upload", n)
			}
		})
	}
}

// signallingStore wraps the real file store and reports when a Put has read
// a given number of bytes, to prove uploads stream instead of buffering.
type signallingStore struct {
	objstore.Store
	after   int64
	reached chan struct{}
	fired   atomic.Bool
}

func (s *signallingStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) (objstore.Info, error) {
	return s.Store.Put(ctx, key, &countingReader{r: r, s: s}, size, ct)
}

type countingReader struct {
	r io.Reader
	n int64
	s *signallingStore
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.s.after && c.s.fired.CompareAndSwap(false, true) {
		close(c.s.reached)
	}
	return n, err
}

func TestUploadStreamsToStoreBeforeBodyEnds(t *testing.T) {
	const first = 1 << 20
	var sig *signallingStore
	e := newEnv(t, "", func(c *Config) {
		sig = &signallingStore{Store: c.Objects, after: first, reached: make(chan struct{})}
		c.Objects = sig
	})
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/vod/upload", mw.FormDataContentType(), pr)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	fw, err := mw.CreateFormFile("file", "live.ts")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(bytes.Repeat([]byte{1}, first)); err != nil {
		t.Fatal(err)
	}
	// The rest of the body has not been sent; a buffering server could not
	// have handed the first megabyte to the store yet.
	select {
	case <-sig.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the store saw no bytes while the body was still arriving: the upload is buffered")
	}
	fw.Write(bytes.Repeat([]byte{2}, first))
	mw.Close()
	pw.Close()
	res := <-done
	if res.err != nil || res.code != http.StatusAccepted {
		t.Fatalf("upload: %v %d %s", res.err, res.code, res.body)
	}
	var got UploadResponse
	json.Unmarshal([]byte(res.body), &got)
	if got.SizeBytes != 2*first {
		t.Fatalf("stored %d bytes, want %d", got.SizeBytes, 2*first)
	}
}

func TestUploadURL(t *testing.T) {
	e := newEnv(t, "")
	rec := e.doJSON("POST", "/vod/upload", map[string]string{"url": "https://cdn.example.com/shows/the-farmer.mp4"})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[UploadResponse](t, rec)
	if !vodIDPattern.MatchString(got.StreamID) || got.Status != "uploaded" || got.Title != "the-farmer" || got.SourceURL != "https://cdn.example.com/shows/the-farmer.mp4" {
		t.Fatalf("response %+v", got)
	}
	st, err := e.meta.GetStream(context.Background(), got.StreamID)
	if err != nil || st.SourceURL != "https://cdn.example.com/shows/the-farmer.mp4" || st.SourceKey != "" {
		t.Fatalf("stream %+v, %v", st, err)
	}
	msgs := e.pub.messages(protocol.TopicVODJobs)
	if len(msgs) != 1 || msgs[0].Key != got.StreamID {
		t.Fatalf("published %+v", msgs)
	}
	var job protocol.VODJob
	json.Unmarshal(msgs[0].Value, &job)
	if job.SourceURL != st.SourceURL || job.SourceKey != "" || job.StreamID != got.StreamID {
		t.Fatalf("job %s", msgs[0].Value)
	}

	// A password in the URL is kept for the pipeline but never shown.
	rec = e.doJSON("POST", "/vod/upload", map[string]string{"url": "https://user:hunter2@example.com/a.mp4", "title": "Secret"})
	if rec.Code != 202 || strings.Contains(rec.Body.String(), "hunter2") {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
}

func TestUploadURLRejectsBadJSON(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		status   int
		fragment string
	}{
		{"malformed", `{"url": `, 400, "malformed JSON"},
		{"not JSON at all", `url=https://x`, 400, "malformed JSON"},
		{"empty", ``, 400, "empty"},
		{"array", `[]`, 400, "JSON object"},
		{"wrong type", `{"url": 42}`, 422, "field url: expected string"},
		{"unknown field", `{"url": "https://x.com/a.mp4", "colour": "red"}`, 422, "field colour: unknown field"},
		{"missing url", `{"title": "x"}`, 422, "field url: is required"},
		{"ftp scheme", `{"url": "ftp://example.com/a.mp4"}`, 422, `field url: scheme must be http or https (got "ftp")`},
		{"file scheme", `{"url": "file:///etc/passwd"}`, 422, "scheme must be http or https"},
		{"relative", `{"url": "/a.mp4"}`, 422, "scheme must be http or https"},
		{"no host", `{"url": "http://"}`, 422, "field url: must include a host"},
		{"title too long", `{"url": "https://x.com/a.mp4", "title": "` + strings.Repeat("a", 201) + `"}`, 422, "field title: must be at most 200 characters"},
		{"trailing data", `{"url": "https://x.com/a.mp4"} {}`, 400, "after the first JSON value"},
		{"oversized", `{"url": "https://x.com/a.mp4", "title": "` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "")
			wantProblem(t, e.doJSON("POST", "/vod/upload", tc.body), tc.status, tc.fragment)
			if n := e.streamCount(metastore.KindVOD); n != 0 {
				t.Fatalf("%d streams created", n)
			}
		})
	}
}

func TestUploadFailsCleanlyWhenBusIsDown(t *testing.T) {
	e := newEnv(t, "")
	e.pub.setErr(errors.New("kafka: not enough replicas"))
	body, ct := multipartBody(t, "a.mp4", []byte("abc"), "")
	wantProblem(t, e.do("POST", "/vod/upload", body, "Content-Type", ct), 503, "could not be queued")
	rows, _, _ := e.meta.ListStreams(context.Background(), metastore.StreamFilter{Kind: metastore.KindVOD})
	if len(rows) != 1 || rows[0].Status != metastore.StatusFailed || rows[0].Error == "" {
		t.Fatalf("stream after a failed announcement: %+v", rows)
	}
}

// advance moves a stream through statuses the way the pipeline would.
func advance(t *testing.T, e *env, id string, to metastore.Status, mutate func(*metastore.Stream)) {
	t.Helper()
	if _, err := e.meta.TransitionStatus(context.Background(), id, to, mutate); err != nil {
		t.Fatalf("transition %s to %s: %v", id, to, err)
	}
}

func uploadOne(t *testing.T, e *env, title string) string {
	t.Helper()
	body, ct := multipartBody(t, "clip.mp4", []byte("media"), title)
	rec := e.do("POST", "/vod/upload", body, "Content-Type", ct)
	if rec.Code != 202 {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	return decode[UploadResponse](t, rec).StreamID
}

func TestVODMetadataFollowsPipeline(t *testing.T) {
	e := newEnv(t, "")
	id := uploadOne(t, e, "Episode 1")

	md := decode[VODMetadata](t, e.do("GET", "/vod/"+id+"/metadata", nil))
	if md.Status != "uploaded" || md.Title != "Episode 1" || md.UploadedAt == nil || md.ProcessingStartedAt != nil || md.CompletedAt != nil {
		t.Fatalf("fresh metadata %+v", md)
	}
	if md.VariantsGenerated == nil || len(md.VariantsGenerated) != 0 || md.ManifestURL != "" {
		t.Fatalf("fresh metadata variants %v manifest %q", md.VariantsGenerated, md.ManifestURL)
	}

	advance(t, e, id, metastore.StatusProcessing, func(s *metastore.Stream) { s.Progress = 10 })
	advance(t, e, id, metastore.StatusTranscoding, func(s *metastore.Stream) { s.Progress = 55 })
	md = decode[VODMetadata](t, e.do("GET", "/vod/"+id+"/metadata", nil))
	if md.Status != "transcoding" || md.Progress != 55 || md.ProcessingStartedAt == nil || md.TranscodingStartedAt == nil {
		t.Fatalf("transcoding metadata %+v", md)
	}

	advance(t, e, id, metastore.StatusReady, func(s *metastore.Stream) {
		s.Progress = 100
		s.VariantsGenerated = []string{"1080p", "720p", "480p", "360p"}
		s.ManifestPath = id + "/master.m3u8"
		s.ProcessingLatencyMS = 8090
		s.Details = json.RawMessage(`{"duration_ms": 12000}`)
	})
	md = decode[VODMetadata](t, e.do("GET", "/vod/"+id+"/metadata", nil))
	if md.Status != "ready" || md.CompletedAt == nil || md.ProcessingLatencyMS != 8090 ||
		strings.Join(md.VariantsGenerated, ",") != "1080p,720p,480p,360p" || md.ManifestPath != id+"/master.m3u8" {
		t.Fatalf("ready metadata %+v", md)
	}
	if md.ManifestURL != "http://example.com/hls/"+id+"/master.m3u8" {
		t.Errorf("manifest url %q", md.ManifestURL)
	}
	if md.Details["duration_ms"] != float64(12000) {
		t.Errorf("details %v", md.Details)
	}
	for _, st := range []string{"uploaded", "processing", "transcoding", "ready"} {
		if _, ok := md.StageTimes[st]; !ok {
			t.Errorf("stage_times lacks %s: %v", st, md.StageTimes)
		}
	}
	if md.CompletedAt.Before(*md.UploadedAt) {
		t.Errorf("completed %v before uploaded %v", md.CompletedAt, md.UploadedAt)
	}
}

func TestVODMetadataDerivesLatencyWhenPipelineOmitsIt(t *testing.T) {
	e := newEnv(t, "")
	id := uploadOne(t, e, "")
	advance(t, e, id, metastore.StatusReady, nil)
	md := decode[VODMetadata](t, e.do("GET", "/vod/"+id+"/metadata", nil))
	want := md.CompletedAt.Sub(*md.UploadedAt).Milliseconds()
	if md.ProcessingLatencyMS != want {
		t.Fatalf("latency %d, want completed-uploaded = %d", md.ProcessingLatencyMS, want)
	}
}

func TestVODManifest(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.BaseURL = "https://media.example.com/" })
	id := uploadOne(t, e, "")
	wantProblem(t, e.do("GET", "/vod/"+id+"/manifest", nil), 409, "not playable yet (status uploaded)")

	advance(t, e, id, metastore.StatusReady, func(s *metastore.Stream) { s.ManifestPath = id + "/hls/main.m3u8" })
	rec := e.do("GET", "/vod/"+id+"/manifest", nil)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[ManifestResponse](t, rec)
	if got.URL != "https://media.example.com/hls/"+id+"/hls/main.m3u8" || got.PresignedURL != "" {
		t.Fatalf("manifest %+v", got)
	}

	failed := uploadOne(t, e, "")
	advance(t, e, failed, metastore.StatusFailed, func(s *metastore.Stream) { s.Error = "ffmpeg: invalid data found" })
	wantProblem(t, e.do("GET", "/vod/"+failed+"/manifest", nil), 409, "failed", "invalid data found")
}

func TestVODManifestIgnoresForeignManifestPath(t *testing.T) {
	e := newEnv(t, "")
	id := uploadOne(t, e, "")
	advance(t, e, id, metastore.StatusReady, func(s *metastore.Stream) { s.ManifestPath = "other-stream/../../master.m3u8" })
	got := decode[ManifestResponse](t, e.do("GET", "/vod/"+id+"/manifest", nil))
	if got.URL != "http://example.com/hls/"+id+"/master.m3u8" {
		t.Fatalf("url %q", got.URL)
	}
}

// presigningStore is the real file store plus presigned URLs, standing in
// for S3's PresignGet.
type presigningStore struct{ objstore.Store }

func (presigningStore) PresignGet(_ context.Context, key string, ttl time.Duration) (string, error) {
	return fmt.Sprintf("https://bucket.s3.example.com/%s?X-Amz-Expires=%d", key, int(ttl.Seconds())), nil
}

func TestVODManifestPresigned(t *testing.T) {
	e := newEnv(t, "", func(c *Config) {
		c.Objects = presigningStore{c.Objects}
		c.Presign = true
		c.PresignTTL = 10 * time.Minute
	})
	id := uploadOne(t, e, "")
	advance(t, e, id, metastore.StatusReady, nil)
	got := decode[ManifestResponse](t, e.do("GET", "/vod/"+id+"/manifest", nil))
	if got.PresignedURL != "https://bucket.s3.example.com/"+id+"/master.m3u8?X-Amz-Expires=600" || got.ExpiresAt == nil {
		t.Fatalf("manifest %+v", got)
	}
	if got.URL != "http://example.com/hls/"+id+"/master.m3u8" {
		t.Fatalf("url %q", got.URL)
	}
}

func TestUnknownIDsAreNotFound(t *testing.T) {
	e := newEnv(t, "")
	live := decode[StartStreamResponse](t, e.doJSON("POST", "/streams/start", map[string]string{})).StreamID
	vod := uploadOne(t, e, "")
	cases := []struct {
		method, path, fragment string
	}{
		{"GET", "/vod/vod-000000000000/metadata", "vod vod-000000000000 not found"},
		{"GET", "/vod/vod-xyz/manifest", "vod vod-xyz not found"},
		{"GET", "/vod/" + live + "/metadata", "vod " + live + " not found"},
		{"GET", "/streams/" + vod + "/metadata", "live stream " + vod + " not found"},
		{"GET", "/streams/" + vod + "/live", "live stream " + vod + " not found"},
		{"POST", "/streams/" + vod + "/end", "live stream " + vod + " not found"},
		{"GET", "/streams/live-000000000000/live", "live stream live-000000000000 not found"},
		{"POST", "/streams/live-000000000000/end", "live stream live-000000000000 not found"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			wantProblem(t, e.do(tc.method, tc.path, nil), 404, tc.fragment)
		})
	}
}

func TestListVODs(t *testing.T) {
	e := newEnv(t, "")
	var ids []string
	for i := range 5 {
		ids = append(ids, uploadOne(t, e, fmt.Sprintf("title %d", i)))
	}
	advance(t, e, ids[1], metastore.StatusReady, nil)
	advance(t, e, ids[3], metastore.StatusReady, nil)
	e.doJSON("POST", "/streams/start", map[string]string{"title": "a live one"})

	all := decode[StreamList](t, e.do("GET", "/vod", nil))
	if len(all.Items) != 5 || all.NextCursor != "" {
		t.Fatalf("listing %+v", all)
	}
	for _, it := range all.Items {
		if it.Kind != "vod" {
			t.Fatalf("vod listing holds %+v", it)
		}
	}

	ready := decode[StreamList](t, e.do("GET", "/vod?status=ready", nil))
	if len(ready.Items) != 2 {
		t.Fatalf("ready listing %+v", ready)
	}

	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		page := decode[StreamList](t, e.do("GET", "/vod?limit=2&cursor="+cursor, nil))
		if len(page.Items) > 2 {
			t.Fatalf("page of %d with limit 2", len(page.Items))
		}
		for _, it := range page.Items {
			if seen[it.StreamID] {
				t.Fatalf("%s listed twice", it.StreamID)
			}
			seen[it.StreamID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("paging saw %d of 5", len(seen))
	}

	wantProblem(t, e.do("GET", "/vod?status=live", nil), 422, "query parameter status", "uploaded, processing, transcoding, ready, failed")
	wantProblem(t, e.do("GET", "/vod?limit=0", nil), 422, "query parameter limit")
	wantProblem(t, e.do("GET", "/vod?limit=abc", nil), 422, "query parameter limit")
	wantProblem(t, e.do("GET", "/vod?cursor=not-a-cursor", nil), 422, "query parameter cursor")
}

// TestUploadOverLimitOverTheWire checks a real client streaming an oversized
// file gets the 413 problem rather than a reset connection.
func TestUploadOverLimitOverTheWire(t *testing.T) {
	const limit = 256 << 10
	e := newEnv(t, "", func(c *Config) { c.MaxUploadBytes = limit })
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	body, ct := multipartBody(t, "big.ts", bytes.Repeat([]byte{0x47}, 4<<20), "")
	req, _ := http.NewRequest("POST", ts.URL+"/vod/upload", io.MultiReader(body)) // unknown length: chunked
	req.Header.Set("Content-Type", ct)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("client saw %v instead of a 413", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), "limit of 262144 bytes (256.0 KiB)") {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	if keys := e.objectKeys(); len(keys) != 0 {
		t.Fatalf("partial upload left behind: %v", keys)
	}
}

func TestVODCancel(t *testing.T) {
	e := newEnv(t, "")
	rec := e.doJSON("POST", "/vod/upload", map[string]string{"url": "https://cdn.example.com/a.mp4"})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("upload: status %d: %s", rec.Code, rec.Body)
	}
	id := decode[UploadResponse](t, rec).StreamID

	rec = e.do("POST", "/vod/"+id+"/cancel", nil)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("cancel: status %d: %s", rec.Code, rec.Body)
	}
	if got := decode[StreamStatus](t, rec); got.Status != "failed" {
		t.Fatalf("cancel answered %+v, want status failed", got)
	}
	st, err := e.meta.GetStream(context.Background(), id)
	if err != nil || st.Status != "failed" || st.Error != CancelledError {
		t.Fatalf("stream after cancel: %+v, %v", st, err)
	}
	wantProblem(t, e.do("POST", "/vod/"+id+"/cancel", nil), http.StatusConflict, "already failed")
	wantProblem(t, e.do("POST", "/vod/vod-000000000000/cancel", nil), http.StatusNotFound, "vod-000000000000")
}

// unreachableMeta is a metadata store whose server has gone away: reads fail
// the way the PostgreSQL store reports a lost connection.
type unreachableMeta struct{ metastore.Store }

var errMetaGone = fmt.Errorf("stream: %w: %w", metastore.ErrUnavailable, io.ErrUnexpectedEOF)

func (unreachableMeta) GetStream(context.Context, string) (metastore.Stream, error) {
	return metastore.Stream{}, errMetaGone
}

func (unreachableMeta) ListStreams(context.Context, metastore.StreamFilter) ([]metastore.Stream, string, error) {
	return nil, "", errMetaGone
}

func TestUnreachableMetadataStoreIs503(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.Meta = unreachableMeta{c.Meta} })
	for _, target := range []string{
		"/vod/vod-0123456789ab/metadata",
		"/streams/live-0123456789ab/metadata",
		"/vod",
		"/streams",
	} {
		t.Run(target, func(t *testing.T) {
			rec := e.do("GET", target, nil)
			if rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
				t.Fatalf("status %d type %q body %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			if !strings.Contains(rec.Body.String(), "retry later") || strings.Contains(rec.Body.String(), "EOF") {
				t.Fatalf("problem should say to retry and keep driver details in the log: %s", rec.Body)
			}
		})
	}
}

// The uploaded original is stored under the title's prefix but is not
// published through /hls/.
func TestHLSDoesNotServeTheUploadedOriginal(t *testing.T) {
	e := newEnv(t, "")
	if _, err := e.objects.Put(context.Background(), "vod-0123456789ab/source/clip.mp4", strings.NewReader("original bytes"), -1, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.objects.Put(context.Background(), "vod-0123456789ab/360p/init.mp4", strings.NewReader("init"), -1, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	rec := e.do("GET", "/hls/vod-0123456789ab/source/clip.mp4", nil)
	wantProblem(t, rec, http.StatusNotFound, "uploaded original")
	if strings.Contains(rec.Body.String(), "original bytes") {
		t.Fatal("the original's bytes were served")
	}
	if rec := e.do("GET", "/hls/vod-0123456789ab/360p/init.mp4", nil); rec.Code != http.StatusOK {
		t.Fatalf("a rendition object: status %d", rec.Code)
	}
}

// TestListVODsShowsDurationRenditionsAndFailure checks each list item
// carries what the console's list shows: the probed duration and the
// renditions of a ready title, and the reason a failed one failed.
func TestListVODsShowsDurationRenditionsAndFailure(t *testing.T) {
	e := newEnv(t, "")
	ready, failed, fresh := uploadOne(t, e, "ready one"), uploadOne(t, e, "failed one"), uploadOne(t, e, "fresh one")
	advance(t, e, ready, metastore.StatusReady, func(s *metastore.Stream) {
		s.VariantsGenerated = []string{"720p", "360p"}
		s.Details = json.RawMessage(`{"probe":{"duration_s":12.48,"video":{"codec":"h264"}},"outputs":{}}`)
	})
	advance(t, e, failed, metastore.StatusFailed, func(s *metastore.Stream) {
		s.Error = "probe: no audio or video stream in the file"
		s.Details = json.RawMessage(`{"probe":"not an object"}`)
	})
	items := map[string]StreamSummary{}
	for _, it := range decode[StreamList](t, e.do("GET", "/vod", nil)).Items {
		items[it.StreamID] = it
	}
	if it := items[ready]; it.DurationS != 12.48 || !slices.Equal(it.Variants, []string{"720p", "360p"}) || it.Error != "" {
		t.Errorf("ready item %+v, want duration 12.48, variants [720p 360p] and no error", it)
	}
	if it := items[failed]; it.Error != "probe: no audio or video stream in the file" || it.DurationS != 0 || it.Variants != nil {
		t.Errorf("failed item %+v, want its error and no duration or variants", it)
	}
	if it := items[fresh]; it.DurationS != 0 || it.Error != "" || it.Variants != nil {
		t.Errorf("fresh item %+v, want nothing beyond status", it)
	}
	// The raw JSON omits what is unknown rather than sending zeros.
	raw := e.do("GET", "/vod?status=uploaded", nil).Body.String()
	if strings.Contains(raw, "duration_s") || strings.Contains(raw, `"error"`) {
		t.Errorf("an uploaded title's item has empty fields: %s", raw)
	}
}
