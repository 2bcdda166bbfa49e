package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// cutTimes are where the cuts stream engine reports scene changes.
var cutTimes = []int64{0, 1960, 4040}

// cuts is a stream engine for the route tests: it reads the whole stream,
// then reports a scene change at each of times, an instant each.
type cuts struct{ times []int64 }

func (c cuts) Process(ctx context.Context, s *engine.Stream, _ engine.Options, emit *engine.Emitter) error {
	if _, err := io.Copy(io.Discard, s.Body); err != nil {
		return err
	}
	for i, ms := range c.times {
		doc := &protocol.Document{Series: []protocol.Series{{StartTimeMs: ms, StopTimeMs: ms,
			Tags: []protocol.Tag{{Key: "scene", Value: fmt.Sprint(i)}}}}}
		if err := emit.Emit(ms, ms, doc); err != nil {
			return err
		}
	}
	return nil
}

var cutsSpec = engine.Spec{Name: "cuts", Mode: engine.ModeStream, Summary: "Reports scene changes",
	Inputs: []string{"video/*"}, Outputs: []string{"scene"}}

// frameReader is a chunk engine reading pictures: it records each chunk
// and the picture's size, and answers a series covering the chunk.
type frameReader struct {
	delay  time.Duration
	mu     sync.Mutex
	chunks []protocol.MediaChunk
	sizes  []image.Point
}

func (f *frameReader) Process(ctx context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(f.delay):
	}
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, _ := io.ReadAll(r)
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a picture: %w", err)
	}
	f.mu.Lock()
	f.chunks = append(f.chunks, c.Meta)
	f.sizes = append(f.sizes, image.Pt(cfg.Width, cfg.Height))
	f.mu.Unlock()
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(),
		Object: &protocol.Object{Type: "object", Label: "frame"}}}}, nil
}

var frameReaderSpec = engine.Spec{Name: "frames", Mode: engine.ModeChunk, Summary: "Reads pictures",
	Inputs: []string{"image/*"}, Outputs: []string{"object"}}

// docReader is a chunk engine reading scene documents: it answers each
// with a tag holding how many series the document had, over the chunk.
type docReader struct{}

func (docReader) Process(_ context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var doc protocol.Document
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return nil, err
	}
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(),
		Tags: []protocol.Tag{{Key: "series", Value: fmt.Sprint(len(doc.Series))}, {Key: "first", Value: fmt.Sprint(doc.Series[0].StartTimeMs)}}}}}, nil
}

var docReaderSpec = engine.Spec{Name: "docs", Mode: engine.ModeChunk, Summary: "Reads scene documents",
	Inputs: []string{engine.DocumentMimeType("scene")}, Outputs: []string{"tag"}}

// routeDAG is the job of the route tests: cuts on the adapter's stream,
// frames on the frames at its cuts, docs on its documents.
func routeDAG(source string) string {
	return `{"tasks": [
	  {"engineId": "adapter", "payload": ` + source + `, "ioFolders": [{"referenceId": "src", "mode": "stream", "type": "output"}]},
	  {"engineId": "cuts", "ioFolders": [{"referenceId": "ci", "mode": "stream", "type": "input"}, {"referenceId": "co", "mode": "chunk", "type": "output"}]},
	  {"engineId": "frames", "ioFolders": [{"referenceId": "fi", "mode": "chunk", "type": "input"}]},
	  {"engineId": "docs", "ioFolders": [{"referenceId": "di", "mode": "chunk", "type": "input"}]},
	  {"engineId": "aggregator", "payload": {"window": "1s"}, "ioFolders": [{"referenceId": "ai", "mode": "chunk", "type": "input"}]}],
	 "routes": [{"parentIoFolderReferenceId": "src", "childIoFolderReferenceId": "ci"},
	  {"parentIoFolderReferenceId": "co", "childIoFolderReferenceId": "fi"},
	  {"parentIoFolderReferenceId": "co", "childIoFolderReferenceId": "di"}]}`
}

// routeRig is a rig with the route tests' engines, hosted: cuts at
// times, frames taking delay per frame.
func routeRig(t *testing.T, times []int64, delay time.Duration) (*rig, *frameReader) {
	r := newRig(t, &clockEngine{})
	fr := &frameReader{delay: delay}
	for spec, f := range map[*engine.Spec]engine.Factory{
		&cutsSpec:        engine.StreamFactory(func() (engine.StreamEngine, error) { return cuts{times: times}, nil }),
		&frameReaderSpec: engine.ChunkFactory(func() (engine.ChunkEngine, error) { return fr, nil }),
		&docReaderSpec:   engine.ChunkFactory(func() (engine.ChunkEngine, error) { return docReader{}, nil }),
	} {
		if err := r.engines.Register(*spec, f); err != nil {
			t.Fatal(err)
		}
	}
	r.hostEngine(r.engines, "frames")
	r.hostEngine(r.engines, "docs")
	return r, fr
}

// TestRunnerRoutesFramesAndDocumentsWithTheirParentsTimes: on a title and
// on a stream topic (spooled), each scene change the parent reports
// becomes a frame cut from the source at that time, and each parent
// output a document chunk; the children's results carry the parent's
// times, their bounds never pass the parent's, and every window of the
// aggregator is complete.
func TestRunnerRoutesFramesAndDocumentsWithTheirParentsTimes(t *testing.T) {
	for _, source := range []string{"vod", "topic"} {
		t.Run(source, func(t *testing.T) {
			r, fr := routeRig(t, cutTimes, 0)
			clip := makeClip(t, 6)
			offset := int64(0)
			src := `{"vod": "vod-1"}`
			if source == "topic" {
				offset = 60000
				writeStream(t, r.bus, "stream_cam1", clip, 6000)
				src = `{"topic": "stream_cam1"}`
			} else {
				r.vod("vod-1", clip)
			}
			r.runner(0)
			id := r.create(routeDAG(src))
			r.wait(id, metastore.JobComplete)

			byEngine := map[string][]metastore.Result{}
			for _, res := range r.results(id) {
				byEngine[res.Engine] = append(byEngine[res.Engine], res)
			}
			for _, name := range []string{"cuts", "frames", "docs"} {
				var starts []int64
				for _, res := range byEngine[name] {
					if res.EndMs != res.StartMs {
						t.Errorf("%s result [%d, %d] is not an instant", name, res.StartMs, res.EndMs)
					}
					starts = append(starts, res.StartMs-offset)
				}
				slices.Sort(starts)
				if !slices.Equal(starts, cutTimes) {
					t.Errorf("%s results at %v, want the cuts' %v (+%d)", name, starts, cutTimes, offset)
				}
			}
			for _, res := range byEngine["docs"] {
				if !strings.Contains(string(res.Content), `{"key":"first","value":"`+fmt.Sprint(res.StartMs)+`"}`) {
					t.Errorf("docs at %d read %s: not the parent's document", res.StartMs, res.Content)
				}
			}
			fr.mu.Lock()
			for i, m := range fr.chunks {
				if m.MimeType != "image/jpeg" || fr.sizes[i] != image.Pt(160, 120) || m.StartOffsetMs != m.EndOffsetMs {
					t.Errorf("frame chunk %+v of %v", m, fr.sizes[i])
				}
			}
			fr.mu.Unlock()
			for _, name := range []string{"frames", "docs"} {
				cs, _ := r.meta.ListJobChunks(context.Background(), id, name)
				if len(cs) != len(cutTimes) {
					t.Errorf("%s: %d routed chunks, want %d", name, len(cs), len(cutTimes))
				}
				for _, c := range cs {
					if c.State != metastore.ChunkDone || c.Kind != routedKind {
						t.Errorf("%s chunk %+v", name, c)
					}
				}
			}
			checkChildBounds(t, r.b, id)
			windows, _, err := r.meta.ListWindows(context.Background(), metastore.WindowQuery{JobID: id, Limit: 100})
			if err != nil || len(windows) == 0 {
				t.Fatalf("windows %v, %v", windows, err)
			}
			for _, w := range windows {
				if w.Status != metastore.WindowComplete {
					t.Errorf("window [%d, %d) is %s, missing %v", w.StartMs, w.EndMs, w.Status, w.Missing)
				}
			}
			if n := len(windows[len(windows)-1].Results); windows[len(windows)-1].StartMs != offset+4000 || n != 3 {
				t.Errorf("the last window starts at %d with %d results, want %d with cuts', frames' and docs' at 4040", windows[len(windows)-1].StartMs, n, offset+4000)
			}
		})
	}
}

// checkChildBounds reads the job's results topic in order: every bound
// of a child (frames, docs) is at most its parent's (cuts) latest before
// it, and every child ends done.
func checkChildBounds(t *testing.T, b bus.Bus, jobID string) {
	t.Helper()
	parent := int64(-1)
	done := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := b.Consume(ctx, bus.ConsumeOptions{Topics: []string{protocol.ResultsTopic(jobID)}, FromBeginning: true, UntilEOF: true,
		Handler: func(_ context.Context, rec *bus.Record) error {
			m, err := protocol.Decode(rec.Key, rec.Value)
			if err != nil {
				return nil
			}
			tb, ok := m.(*protocol.TimestampBound)
			if !ok {
				return nil
			}
			switch tb.EngineID {
			case "cuts":
				parent = max(parent, tb.TimestampBoundMs)
			case "frames", "docs":
				if tb.TimestampBoundMs > parent && parent >= 0 {
					t.Errorf("%s's bound %d passed its parent's %d", tb.EngineID, tb.TimestampBoundMs, parent)
				}
				done[tb.EngineID] = done[tb.EngineID] || tb.Done
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !done["frames"] || !done["docs"] || parent < 0 {
		t.Fatalf("done %v, parent's bound %d", done, parent)
	}
}

// TestARunnerTakingOverADAGJobDoesNotRedoRoutedChunks: a runner stopped
// while the child works through its routed frames leaves the job to
// another, whose router reads the results again and makes the same
// chunks: those the child finished are not sent again, the rest are, and
// the job completes with one result per cut.
func TestARunnerTakingOverADAGJobDoesNotRedoRoutedChunks(t *testing.T) {
	var times []int64
	for ms := int64(0); ms < 6000; ms += 500 {
		times = append(times, ms)
	}
	r, fr := routeRig(t, times, 300*time.Millisecond)
	r.vod("vod-1", makeClip(t, 6))
	stop := r.runner(0)
	id := r.create(strings.Replace(routeDAG(`{"vod": "vod-1"}`), `{"engineId": "frames",`, `{"engineId": "frames", "policy": {"max_in_flight": 1},`, 1))
	doneBefore := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(doneBefore) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 3 frames done in 60 s")
		}
		cs, _ := r.meta.ListJobChunks(context.Background(), id, "frames")
		for _, c := range cs {
			if c.State == metastore.ChunkDone {
				doneBefore[c.ChunkUUID] = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if job, _ := r.meta.GetJob(context.Background(), id); jobOver(job.Status) {
		t.Fatalf("the job is %s when its runner stopped; make the child slower", job.Status)
	}
	r.runner(0)
	r.wait(id, metastore.JobComplete)
	calls := map[string]int{}
	fr.mu.Lock()
	for _, m := range fr.chunks {
		calls[m.ChunkUUID]++
	}
	fr.mu.Unlock()
	for u := range doneBefore {
		if calls[u] != 1 {
			t.Errorf("frame %s, done before the takeover, was read %d times", u, calls[u])
		}
	}
	cs, _ := r.meta.ListJobChunks(context.Background(), id, "frames")
	var starts []int64
	for _, c := range cs {
		if c.State != metastore.ChunkDone {
			t.Errorf("frame chunk %+v", c)
		}
		starts = append(starts, c.StartMs)
	}
	slices.Sort(starts)
	if !slices.Equal(starts, times) || len(calls) != len(times) {
		t.Fatalf("frames at %v (%d read), want %v", starts, len(calls), times)
	}
	var frames int
	for _, res := range r.results(id) {
		if res.Engine == "frames" {
			frames++
		}
	}
	if frames != len(times) {
		t.Fatalf("%d frames results, want %d", frames, len(times))
	}
	t.Logf("%d frames done before the takeover, %d reads in all", len(doneBefore), len(fr.chunks))
}
