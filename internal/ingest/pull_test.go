package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/protocol"
)

func TestPullPublishesAWholeSource(t *testing.T) {
	_, client := startBroker(t)
	ts := readFile(t, testMedia(t, "av.ts"))
	mp4Path := testMedia(t, "moov-at-end.mp4")
	mp4 := readFile(t, mp4Path)
	files := http.NewServeMux()
	files.HandleFunc("/av.ts", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "av.ts", time.Time{}, strings.NewReader(string(ts)))
	})
	files.HandleFunc("/moov-at-end.mp4", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "moov-at-end.mp4", time.Time{}, strings.NewReader(string(mp4)))
	})
	// Longer than Pull's read buffers and sent in odd-sized pieces, so
	// reads end anywhere in a chunk and buffers are switched mid-chunk.
	long := bytes.Repeat(ts, int(3*readBufSize)/len(ts)+1)
	files.HandleFunc("/long.ts", func(w http.ResponseWriter, r *http.Request) {
		for p := long; len(p) > 0; {
			n := min(7919, len(p))
			w.Write(p[:n])
			w.(http.Flusher).Flush()
			p = p[n:]
		}
	})
	srv := httptest.NewServer(files)
	t.Cleanup(srv.Close)

	cases := []struct {
		name       string
		opts       PullOptions
		want       []byte
		mime, ffmt string
		duration   bool // durationMS is known (about 3 s)
	}{
		{"a local file, probed by path", PullOptions{Source: testMedia(t, "av.ts")}, ts, "video/mp2t", "mpegts", true},
		{"a file:// URL", PullOptions{Source: "file://" + testMedia(t, "av.ts")}, ts, "video/mp2t", "mpegts", true},
		{"a progressive HTTP download, probed from its first bytes", PullOptions{Source: srv.URL + "/av.ts"}, ts, "video/mp2t", "mpegts", false},
		{"a download whose start is not enough is probed by URL", PullOptions{Source: srv.URL + "/moov-at-end.mp4", ProbeLimit: 16 << 10}, mp4, "video/mp4", "mp4", true},
		{"a small chunk size", PullOptions{Source: mp4Path, Stream: StreamOptions{ChunkSize: 1000}}, mp4, "video/mp4", "mp4", true},
		{"a long download in odd-sized pieces", PullOptions{Source: srv.URL + "/long.ts"}, long, "video/mp2t", "mpegts", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Topic = fmt.Sprintf("stream_whole_%d", i)
			tc.opts.Logger = quietLogger()
			var started []Result
			tc.opts.OnStart = func(r Result) { started = append(started, r) }
			res, err := Pull(testCtx(t), tc.opts, client)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if len(started) != 1 || started[0].Topic != tc.opts.Topic || started[0].MimeType != tc.mime || !started[0].Published {
				t.Errorf("OnStart calls %+v, want one for topic %s, %s", started, tc.opts.Topic, tc.mime)
			}
			recs, _ := readTopic(t, client, tc.opts.Topic)
			d := decodeStream(t, recs)
			if _, ok := d.msgs[0].(*protocol.StreamInit); !ok {
				t.Fatalf("first record %T, want stream_init", d.msgs[0])
			}
			if d.init.MimeType != tc.mime || d.init.FFmpegFormat != tc.ffmt {
				t.Errorf("stream_init says %s (%s), want %s (%s)", d.init.MimeType, d.init.FFmpegFormat, tc.mime, tc.ffmt)
			}
			if known := d.init.DurationMS > 2500 && d.init.DurationMS < 3500; known != tc.duration || (!tc.duration && d.init.DurationMS != 0) {
				t.Errorf("stream_init durationMS %d; want about 3000: %v, else 0", d.init.DurationMS, tc.duration)
			}
			size := tc.opts.Stream.ChunkSize
			if size == 0 {
				size = protocol.DefaultChunkSize
			}
			if d.init.ChunkSize != int64(size) {
				t.Errorf("chunkSize %d, want %d", d.init.ChunkSize, size)
			}
			if got := d.bytes(); !equalBytes(got, tc.want) {
				t.Errorf("raw_stream bytes: %d bytes, md5 %s; want the source's %d bytes, md5 %s", len(got), md5hex(got), len(tc.want), md5hex(tc.want))
			}
			if d.eof == nil || d.eof.ForcedEOF || d.eof.MD5Checksum != md5hex(tc.want) {
				t.Errorf("stream_eof %+v, want not forced with the source's md5", d.eof)
			}
			checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
			if !res.Published || res.End != EndSource || res.Stats.Bytes != int64(len(tc.want)) || res.Stats.MD5 != md5hex(tc.want) ||
				res.MimeType != tc.mime || res.Topic != tc.opts.Topic {
				t.Errorf("Result = %+v", res)
			}
		})
	}
}

func equalBytes(a, b []byte) bool { return len(a) == len(b) && isPrefix(a, b) }

func TestPullRecordsALiveStationForTheRecordDuration(t *testing.T) {
	_, client := startBroker(t)
	radio := readFile(t, testMedia(t, "radio.aac"))
	station := httptest.NewServer(loopingStation(radio, "audio/aac", 4096, 20*time.Millisecond))
	t.Cleanup(station.Close)

	payload, err := protocol.ParseTaskPayload([]byte(`{
		"jobId": "job-live", "taskId": "task-live", "recordingId": "400002379",
		"streamOutKafkaTopic": "stream_00000012",
		"taskPayload": {"url": "` + station.URL + `/WWWQFMAAC", "isLiveStream": true, "recordDuration": "1s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Pull(testCtx(t), PullOptions{Payload: payload, Logger: quietLogger()}, client)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if res.Topic != "stream_00000012" || !res.Live || res.End != EndRecorded {
		t.Errorf("Result = %+v, want the payload's topic, live, ended by the record duration", res)
	}
	recs, _ := readTopic(t, client, "stream_00000012")
	d := decodeStream(t, recs)
	if d.init.MimeType != "audio/aac" || d.init.FFmpegFormat != "aac" || d.init.DurationMS != 1000 {
		t.Errorf("stream_init %+v, want audio/aac (aac) lasting 1000 ms", d.init)
	}
	if d.init.JobID != "job-live" || d.init.TaskID != "task-live" || d.init.TDOID != "400002379" {
		t.Errorf("stream_init ids %q %q %q, want the payload's", d.init.JobID, d.init.TaskID, d.init.TDOID)
	}
	got := d.bytes()
	if len(got) < 16<<10 || !equalBytes(got, cycle(radio, len(got))) {
		t.Errorf("recorded %d bytes that are not the station's stream from its start", len(got))
	}
	if d.eof.ForcedEOF || d.eof.ContentLength != int64(len(got)) {
		t.Errorf("stream_eof %+v: a recording that lasted as asked ends with forcedEOF false", d.eof)
	}
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
	for _, hb := range d.heartbeats {
		if hb.JobID != "job-live" || hb.EngineID != PullEngineID {
			t.Errorf("heartbeat %+v, want jobId job-live, engineId %s", hb, PullEngineID)
		}
	}
}

// TestPullSendsASlowLiveSourceWithoutWaitingForWholeChunks: a live
// source slower than chunkSize per MaxDelay still reaches the topic every
// MaxDelay, in shorter raw_stream records.
func TestPullSendsASlowLiveSourceWithoutWaitingForWholeChunks(t *testing.T) {
	_, client := startBroker(t)
	radio := readFile(t, testMedia(t, "radio.aac"))
	station := httptest.NewServer(loopingStation(radio, "audio/aac", 2048, 20*time.Millisecond))
	t.Cleanup(station.Close)
	const chunk = 1 << 20 // far more than the recording holds
	res, err := Pull(testCtx(t), PullOptions{Source: station.URL, RecordDuration: 1500 * time.Millisecond, MaxDelay: 200 * time.Millisecond,
		Topic: "stream_slow", Stream: StreamOptions{ChunkSize: chunk}, Logger: quietLogger()}, client)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := readTopic(t, client, "stream_slow")
	d := decodeStream(t, recs)
	if len(d.raw) < 3 || !equalBytes(d.bytes(), cycle(radio, len(d.bytes()))) {
		t.Errorf("%d raw_stream records holding %d bytes; want several, holding the station's stream", len(d.raw), res.Stats.Bytes)
	}
}

func TestPullStoppedByCancellationEndsWithForcedEOF(t *testing.T) {
	_, client := startBroker(t)
	radio := readFile(t, testMedia(t, "radio.aac"))
	station := httptest.NewServer(loopingStation(radio, "audio/aac", 4096, 20*time.Millisecond))
	t.Cleanup(station.Close)

	ctx, cancel := context.WithCancel(testCtx(t))
	watch := &rawWatcher{Bus: client, first: make(chan struct{})}
	go func() {
		select {
		case <-watch.first:
		case <-ctx.Done():
		}
		cancel()
	}()
	res, err := Pull(ctx, PullOptions{Source: station.URL, Live: true, Topic: "stream_stopped", Logger: quietLogger()}, watch)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Pull = %v, want context.Canceled", err)
	}
	if res.End != EndStopped || !res.Published {
		t.Errorf("Result = %+v", res)
	}
	recs, _ := readTopic(t, client, "stream_stopped")
	d := decodeStream(t, recs)
	if d.eof == nil || !d.eof.ForcedEOF || d.eof.ContentLength != int64(len(d.bytes())) {
		t.Errorf("stream_eof %+v, want forced, counting the %d bytes sent", d.eof, len(d.bytes()))
	}
	checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatDone)
}

// TestPullRefusesBadSourcesBeforePublishing: each of these fails with a
// clear error and leaves the topic untouched.
func TestPullRefusesBadSourcesBeforePublishing(t *testing.T) {
	_, client := startBroker(t)
	notes := readFile(t, testMedia(t, "notes.txt"))
	mux := http.NewServeMux()
	mux.HandleFunc("/notes.txt", func(w http.ResponseWriter, r *http.Request) { w.Write(notes) })
	mux.HandleFunc("/headers-then-nothing", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp2t")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/no-headers", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()

	cases := []struct {
		name string
		opts PullOptions
		is   error  // errors.Is target, if any
		want string // in the error text
	}{
		{"a text file", PullOptions{Source: testMedia(t, "notes.txt")}, media.ErrNoMedia, "no video or audio stream found"},
		{"a text file over HTTP", PullOptions{Source: srv.URL + "/notes.txt"}, media.ErrNoMedia, "no video or audio stream found"},
		{"a missing file", PullOptions{Source: "/nonexistent/clip.ts"}, nil, "no such file or directory"},
		{"a directory", PullOptions{Source: t.TempDir()}, nil, "is a directory"},
		{"HTTP 404", PullOptions{Source: srv.URL + "/missing.ts"}, nil, "HTTP 404 Not Found"},
		{"an unreachable host", PullOptions{Source: "http://" + closedPort + "/live"}, nil, "connection refused"},
		{"a server that sends headers and then nothing", PullOptions{Source: srv.URL + "/headers-then-nothing", ReadTimeout: 300 * time.Millisecond}, ErrStalled, "no data for 300ms"},
		{"a server that never answers", PullOptions{Source: srv.URL + "/no-headers", ReadTimeout: 300 * time.Millisecond}, ErrStalled, "no data for 300ms"},
		{"an unsupported scheme", PullOptions{Source: "rtsp://camera/stream"}, nil, `unsupported scheme "rtsp"`},
		{"no source at all", PullOptions{}, nil, "no source"},
		{"a bad topic", PullOptions{Source: testMedia(t, "notes.txt"), Topic: "no spaces allowed"}, nil, "topic name"},
		{"a bad record duration in the payload", PullOptions{Source: "x.ts", Payload: &protocol.TaskPayload{Payload: protocol.Payload{RecordDuration: "forever"}}},
			nil, `field "taskPayload.recordDuration"`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Topic == "" {
				tc.opts.Topic = fmt.Sprintf("stream_refused_%d", i)
			}
			tc.opts.Logger = quietLogger()
			tc.opts.OnStart = func(Result) { t.Error("OnStart called for a stream that must not start") }
			res, err := Pull(testCtx(t), tc.opts, client)
			if err == nil {
				t.Fatal("Pull succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if res.Published {
				t.Error("Result says the stream was published")
			}
			if protocol.ValidateTopic(tc.opts.Topic) != nil {
				return
			}
			if recs, exists := readTopic(t, client, tc.opts.Topic); exists && len(recs) > 0 {
				t.Errorf("%d records published", len(recs))
			}
		})
	}
	var se *HTTPStatusError
	_, err = Pull(testCtx(t), PullOptions{Source: srv.URL + "/gone", Topic: "stream_404", Logger: quietLogger()}, client)
	if !errors.As(err, &se) || se.StatusCode != 404 {
		t.Errorf("error %v is not an HTTPStatusError with code 404", err)
	}
}

// TestPullSourceBreakingMidwayEndsTheStreamAsFailed: once published, a
// stream whose source breaks ends with forcedEOF true and a FAILED
// heartbeat, and Pull returns the error.
func TestPullSourceBreakingMidwayEndsTheStreamAsFailed(t *testing.T) {
	_, client := startBroker(t)
	ts := readFile(t, testMedia(t, "av.ts"))
	const sent = 100 << 10
	received := &countingTransport{n: 64 << 10, read: make(chan struct{})}

	mux := http.NewServeMux()
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Write(ts[:sent])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: %d\r\n\r\n", len(ts))
		rw.Write(ts[:sent])
		rw.Flush()
		select {
		case <-received.read:
		case <-time.After(30 * time.Second):
		}
		conn.(*net.TCPConn).SetLinger(0) // close with a TCP reset
		conn.Close()
	})
	mux.HandleFunc("/truncated", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(ts)))
		w.Write(ts[:sent])
		// returning early: the server closes a body shorter than announced
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	cases := []struct {
		path   string
		opts   PullOptions
		is     error
		errMsg string // in the error and in the FAILED heartbeat
	}{
		{"/stall", PullOptions{ReadTimeout: 500 * time.Millisecond}, ErrStalled, "no data for 500ms"},
		{"/reset", PullOptions{HTTPClient: &http.Client{Transport: received}}, nil, "read " + srv.URL + "/reset"},
		{"/truncated", PullOptions{}, nil, "unexpected EOF"},
	}
	for i, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			tc.opts.Source = srv.URL + tc.path
			tc.opts.Topic = fmt.Sprintf("stream_broken_%d", i)
			tc.opts.Logger = quietLogger()
			res, err := Pull(testCtx(t), tc.opts, client)
			if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
				t.Fatalf("Pull = %v, want an error saying %q", err, tc.errMsg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !res.Published || res.End != EndFailed {
				t.Errorf("Result = %+v, want published and failed", res)
			}
			recs, _ := readTopic(t, client, tc.opts.Topic)
			d := decodeStream(t, recs)
			got := d.bytes()
			if len(got) == 0 || len(got) > sent || !isPrefix(got, ts) {
				t.Errorf("stream holds %d bytes, want the start of the source, at most the %d sent", len(got), sent)
			}
			if d.eof == nil || !d.eof.ForcedEOF || d.eof.ContentLength != int64(len(got)) || d.eof.MD5Checksum != md5hex(got) {
				t.Errorf("stream_eof %+v, want forced, describing the %d bytes published", d.eof, len(got))
			}
			checkHeartbeats(t, d, protocol.HeartbeatEveryMessages, protocol.HeartbeatFailed)
			if last := d.heartbeats[len(d.heartbeats)-1]; !strings.Contains(last.ErrorMsg, tc.errMsg) {
				t.Errorf("FAILED heartbeat errorMsg %q does not say %q", last.ErrorMsg, tc.errMsg)
			}
		})
	}
}
