package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// The benchmark's stream: a tone that stops for alertBenchGapMs every
// alertBenchCycleMs, for alertBenchSeconds.
const (
	alertBenchSeconds = 90
	alertBenchCycleMs = 5000
	alertBenchGapMs   = 2500
)

// BenchmarkAlertLatencyLive measures how long after a condition becomes
// true on a live stream its webhook request arrives. An ffmpeg publisher
// pushes a test pattern with a tone that goes silent for 2.5 s every 5 s
// over RTMP at real time into a whole weir; one job runs loudness (1 s
// pieces) and silence (reporting a silence every 500 ms while it lasts) on
// the stream; two rules, loudness below -50 LUFS
// (momentary) for 1.5 s and silence for 1.5 s, POST to a local receiver.
// Media time T is on the wall clock at t0 + T, t0 being when the ingest
// wrote the stream's first record (ffmpeg -re sends media at the pace of
// its timestamps); a rule's condition becomes true at the media time its
// alert's details give as condition_true_ms. The latency of an alert is
// the webhook request's arrival minus t0 + condition_true_ms. Reported:
// p50, p99 (the largest, with this many samples) and the count, per rule.
func BenchmarkAlertLatencyLive(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg")
	cfg := testConfig(b.TempDir())
	cfg.WebhookAllow = "127.0.0.1"
	srv, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	base := srv.HTTPURL()

	type arrival struct {
		rule   string
		trueMs int64
		at     time.Time
	}
	var mu sync.Mutex
	var arrivals []arrival
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		m, err := protocol.DecodeAlert(nil, body)
		if err == nil && m.Event == protocol.AlertRaised {
			var d struct {
				TrueMs int64 `json:"condition_true_ms"`
			}
			json.Unmarshal(m.Details, &d)
			mu.Lock()
			arrivals = append(arrivals, arrival{m.RuleName, d.TrueMs, at})
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	post := func(path, body string, out any) {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			b.Fatalf("POST %s: %s %s", path, resp.Status, raw)
		}
		if out != nil {
			json.Unmarshal(raw, out)
		}
	}
	var stream struct {
		ID      string `json:"stream_id"`
		Publish struct {
			RTMP string `json:"rtmp"`
		} `json:"publish"`
	}
	post("/streams/start", `{"title": "alert latency"}`, &stream)
	for _, r := range []string{
		`{"name": "loudness", "condition": {"type": "loudness", "measure": "momentary", "min_lufs": -50, "min_duration": "1500ms"}, "cooldown": "500ms"`,
		`{"name": "silence", "condition": {"type": "silence", "min_duration": "1500ms"}, "cooldown": "500ms"`,
	} {
		post("/rules", fmt.Sprintf(`%s, "scope": {"stream": %q}, "webhooks": [{"url": %q}]}`, r, stream.ID, hook.URL), nil)
	}
	var job struct {
		ID string `json:"id"`
	}
	post("/jobs", fmt.Sprintf(`{"source": {"live": %q}, "engines": [{"name": "loudness"}, {"name": "silence", "options": {"report_every": "500ms"}}]}`, stream.ID), &job)

	clip := b.TempDir() + "/gaps.mp4"
	gate := fmt.Sprintf("volume='if(lt(mod(t*1000,%d),%d),1,0)':eval=frame", alertBenchCycleMs, alertBenchCycleMs-alertBenchGapMs)
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-af", gate, "-t", fmt.Sprint(alertBenchSeconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
		"-c:a", "aac", clip).CombinedOutput(); err != nil {
		b.Fatalf("encode: %v\n%s", err, out)
	}
	b.ResetTimer()
	// Fed with stream copy from a file encoded beforehand, -re sends each
	// packet at its timestamp from the first one on (an encoder would
	// send a burst first, ahead of real time).
	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", clip, "-c", "copy", "-f", "flv", stream.Publish.RTMP)
	if out, err := pub.CombinedOutput(); err != nil {
		b.Fatalf("publish: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second)
	b.StopTimer()

	reached := mediaArrivals(b, srv.bus, protocol.StreamTopic(stream.ID))
	b.Logf("the silence engine found the gaps %v after the publisher put them", timelineOffset(b, base, job.ID))
	mu.Lock()
	defer mu.Unlock()
	for _, rule := range []string{"loudness", "silence"} {
		var lat []time.Duration
		for _, a := range arrivals {
			if a.rule == rule {
				lat = append(lat, a.at.Sub(reached(a.trueMs)))
			}
		}
		if len(lat) == 0 {
			b.Errorf("%s: no alert", rule)
			continue
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(int(p*float64(len(lat))), len(lat)-1)] }
		b.ReportMetric(q(0.5).Seconds(), rule+"-p50-s")
		b.ReportMetric(q(0.99).Seconds(), rule+"-p99-s")
		b.ReportMetric(float64(len(lat)), rule+"-alerts")
		b.Logf("%s: %d alerts, latency p50 %v, p99 %v, min %v (condition true at media time → webhook request)",
			rule, len(lat), q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), lat[0].Round(time.Millisecond))
	}
}

// timelineOffset is how far the job's timeline is ahead of the
// publisher's media time (the MPEG-TS muxer's start offset, say): the
// median of where the silence engine found each gap's start minus where
// the publisher put it.
func timelineOffset(b *testing.B, base, jobID string) time.Duration {
	resp, err := http.Get(base + "/jobs/" + jobID + "/results?engine=silence&limit=1000")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []struct {
			StartMs int64 `json:"start_ms"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Items) == 0 {
		b.Fatalf("silence results: %v (%d)", err, len(page.Items))
	}
	var offs []int64
	on := int64(alertBenchCycleMs - alertBenchGapMs)
	for _, r := range page.Items {
		k := (r.StartMs - on + alertBenchCycleMs/2) / alertBenchCycleMs
		if off := r.StartMs - (k*alertBenchCycleMs + on); off > -400 && off < 400 {
			offs = append(offs, off) // a silence's first piece, not one going on
		}
	}
	if len(offs) == 0 {
		b.Fatal("no silence starts near the gaps")
	}
	slices.Sort(offs)
	return time.Duration(offs[len(offs)/2]) * time.Millisecond
}

// mediaArrivals reads the stream topic's MPEG-TS and returns when the
// media at a time of the job's timeline (the stream's first timestamp is
// 0) reached weir: the record time of the first packet with a timestamp
// at or past it.
func mediaArrivals(b *testing.B, c *bus.Client, topic string) func(ms int64) time.Time {
	type point struct {
		pts time.Duration
		at  time.Time
	}
	var points []point
	d := mpegts.NewDemuxer()
	var pkts []mpegts.Packet
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := c.Consume(ctx, bus.ConsumeOptions{Topics: []string{topic}, FromBeginning: true, UntilEOF: true, MaxRecordBytes: 8 << 20,
		Handler: func(_ context.Context, rec *bus.Record) error {
			msg, err := protocol.Decode(rec.Key, rec.Value)
			raw, ok := msg.(*protocol.RawStream)
			if err != nil || !ok {
				return nil
			}
			pkts = d.Feed(raw.Data, rec.Timestamp, pkts[:0])
			for _, p := range pkts {
				if p.HasPTS {
					points = append(points, point{p.PTS, p.ReceivedAt})
				}
			}
			return nil
		}})
	if err != nil || len(points) == 0 {
		b.Fatalf("reading %s: %v (%d timestamps)", topic, err, len(points))
	}
	first := points[0].pts
	for _, p := range points {
		first = min(first, p.pts)
	}
	return func(ms int64) time.Time {
		want := first + time.Duration(ms)*time.Millisecond
		for _, p := range points {
			if p.pts >= want {
				return p.at
			}
		}
		return points[len(points)-1].at
	}
}
