package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// chunkInfo is a chunk engine that reports each chunk's duration and size
// as tags on one series covering the chunk.
type chunkInfo struct{}

func (chunkInfo) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return nil, fmt.Errorf("read chunk %d: %w", c.Meta.ChunkIndex, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("chunk %d is empty: %w", c.Meta.ChunkIndex, engine.ErrIgnored)
	}
	// Times are from the chunk's start: the host shifts them.
	return &protocol.Document{Series: []protocol.Series{{
		StartTimeMs: 0, StopTimeMs: c.DurationMs(),
		Tags: []protocol.Tag{
			{Key: "duration_ms", Value: strconv.FormatInt(c.DurationMs(), 10)},
			{Key: "bytes", Value: strconv.FormatInt(n, 10)},
		},
	}}}, nil
}

// A chunk engine answers one media_chunk with one document, timed from the
// chunk's start; the host moves it onto the recording's timeline.
func ExampleChunkEngine() {
	reg := engine.NewRegistry()
	err := reg.Register(engine.Spec{
		Name: "chunk-info", Mode: engine.ModeChunk,
		Summary: "Reports each chunk's duration and size",
		Inputs:  []string{"*/*"}, Outputs: []string{"tag"},
	}, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return chunkInfo{}, nil }))
	if err != nil {
		fmt.Println(err)
		return
	}

	// What a host does with each media_chunk of a task.
	r, _ := reg.Lookup("chunk-info")
	e, _ := r.Factory.(engine.ChunkFactory)()
	opts, _ := r.Spec.ParseOptions(nil)
	for _, meta := range []protocol.MediaChunk{
		{ChunkIndex: 2, StartOffsetMs: 4000, EndOffsetMs: 6000, MimeType: "text/plain", Content: "two seconds of subtitles"},
		{ChunkIndex: 3, StartOffsetMs: 6000, EndOffsetMs: 8000, MimeType: "text/plain"},
	} {
		c := &engine.Chunk{Meta: meta}
		doc, err := e.Process(context.Background(), c, opts)
		if errors.Is(err, engine.ErrIgnored) {
			fmt.Println("IGNORED:", err)
			continue
		}
		out, _ := json.Marshal(engine.Shift(doc, c.Meta.StartOffsetMs))
		fmt.Println("SUCCESS:", string(out))
	}
	// Output:
	// SUCCESS: {"series":[{"startTimeMs":4000,"stopTimeMs":6000,"tags":[{"key":"duration_ms","value":"2000"},{"key":"bytes","value":"24"}]}]}
	// IGNORED: chunk 3 is empty: chunk ignored
}

// peakMeter is a stream engine that reads 16-bit little-endian mono PCM
// and emits, for every second of audio, the loudest sample as a tag. The
// byte rate of raw audio is what tells it the media time.
type peakMeter struct{}

func (peakMeter) Process(ctx context.Context, s *engine.Stream, opts engine.Options, emit *engine.Emitter) error {
	rate := opts.Int("sample_rate")
	second := make([]byte, 2*rate)
	for startMs := int64(0); ; startMs += 1000 {
		n, err := io.ReadFull(s.Body, second)
		if samples := n / 2; samples > 0 {
			peak := 0
			for i := range samples {
				v := int(int16(binary.LittleEndian.Uint16(second[2*i:])))
				peak = max(peak, v, -v)
			}
			endMs := startMs + int64(samples)*1000/rate
			doc := &protocol.Document{Series: []protocol.Series{{StartTimeMs: startMs, StopTimeMs: endMs,
				Tags: []protocol.Tag{{Key: "peak", Value: strconv.Itoa(peak)}}}}}
			if err := emit.Emit(startMs, endMs, doc); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// A stream engine reads the raw bytes as they arrive and emits time-coded
// output as it goes; the Emitter puts it on the recording's timeline.
func ExampleStreamEngine() {
	spec := engine.Spec{
		Name: "peak-meter", Mode: engine.ModeStream,
		Summary: "Peak sample level of every second of raw 16-bit audio",
		Inputs:  []string{"audio/L16"}, Outputs: []string{"tag"},
		Options: []engine.Option{{Name: "sample_rate", Type: engine.TypeInt, Default: 8000, Min: 1, Max: 192000,
			Doc: "Samples per second of the audio"}},
	}
	opts, err := spec.ParseOptions(map[string]any{"sample_rate": 8000})
	if err != nil {
		fmt.Println(err)
		return
	}

	// 2.5 s of a square wave that gets louder every second.
	var pcm bytes.Buffer
	for i := range 20000 {
		level := int16(1000 * (i/8000 + 1))
		if i%2 == 1 {
			level = -level
		}
		binary.Write(&pcm, binary.LittleEndian, level)
	}
	stream := &engine.Stream{
		Init: protocol.StreamInit{MimeType: "audio/L16", FFmpegFormat: "s16le", RelativeStartOffsetMS: 60000},
		Body: &pcm,
	}

	// The host's side: where pieces go, shifted by the stream's offset.
	emit := engine.NewEmitter(func(p engine.Piece) error {
		fmt.Printf("%d-%d ms: peak %s\n", p.StartMs, p.EndMs, p.Doc.Series[0].Tags[0].Value)
		return nil
	}, engine.WithOffset(stream.Init.RelativeStartOffsetMS))
	if err := (peakMeter{}).Process(context.Background(), stream, opts, emit); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 60000-61000 ms: peak 1000
	// 61000-62000 ms: peak 2000
	// 62000-62500 ms: peak 3000
}

// fileSize is a batch engine that reports the size of the whole input.
type fileSize struct{}

func (fileSize) Process(ctx context.Context, f *engine.File, opts engine.Options, emit *engine.Emitter) error {
	fi, err := os.Stat(f.Path)
	if err != nil {
		return err
	}
	doc := &protocol.Document{Tags: []protocol.Tag{{Key: "size_bytes", Value: strconv.FormatInt(fi.Size(), 10)}}}
	return emit.Emit(0, f.DurationMs, doc)
}

// A batch engine gets the whole input as a file and emits its output
// before it returns.
func ExampleBatchEngine() {
	dir, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "talk.mp4")
	os.WriteFile(path, make([]byte, 12345), 0o600)

	emit := engine.NewEmitter(func(p engine.Piece) error {
		fmt.Printf("%d-%d ms: %s=%s\n", p.StartMs, p.EndMs, p.Doc.Tags[0].Key, p.Doc.Tags[0].Value)
		return nil
	})
	err := (fileSize{}).Process(context.Background(),
		&engine.File{Path: path, MimeType: "video/mp4", DurationMs: 30000}, engine.Options{}, emit)
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// 0-30000 ms: size_bytes=12345
}

// Option values from a task payload are checked against the spec; every
// problem names its option.
func ExampleSpec_ParseOptions() {
	spec := engine.Spec{
		Name: "silence", Mode: engine.ModeStream, Summary: "Finds silent stretches",
		Inputs: []string{"audio/*"}, Outputs: []string{"tag"},
		Options: []engine.Option{
			{Name: "threshold_db", Type: engine.TypeFloat, Default: -50, Max: 0, Doc: "Level below which audio is silent, in dBFS"},
			{Name: "min_duration", Type: engine.TypeDuration, Default: "2s", Min: "100ms", Doc: "Shortest silence reported"},
		},
	}
	opts, err := spec.ParseOptions(map[string]any{"min_duration": "500ms"})
	fmt.Println(opts.Float("threshold_db"), opts.Duration("min_duration"), err)

	_, err = spec.ParseOptions(map[string]any{"threshold_db": 3, "min_duration": 2, "language": "de"})
	fmt.Println(err)
	// Output:
	// -50 500ms <nil>
	// option "language": engine silence has no such option (it takes threshold_db, min_duration)
	// option "min_duration": want a duration such as "250ms" or "1m30s", got number 2
	// option "threshold_db": must be at most 0, got 3
}

// An engine that needs a program which is not installed says so, with the
// command that installs it.
func ExampleSpec_Available() {
	spec := engine.Spec{
		Name: "ocr", Mode: engine.ModeChunk, Summary: "Reads text in frames",
		Inputs: []string{"image/*"}, Outputs: []string{"text"},
		Requires: []engine.Requirement{{Command: "weir-example-missing-ocr", DebianPackage: "weir-example-ocr", Why: "to read text"}},
	}
	err := spec.Available()
	var unavailable *engine.UnavailableError
	if errors.As(err, &unavailable) {
		fmt.Println(unavailable.Install())
	}
	fmt.Println(err)
	// Output:
	// apt-get install -y weir-example-ocr
	// engine "ocr" is unavailable: weir-example-missing-ocr is not on PATH (to read text); install with: apt-get install -y weir-example-ocr
}

// memStore is an artifact store in memory, as a host might give one.
type memStore map[string][]byte

func (m memStore) Put(_ context.Context, name, contentType string, data []byte) (string, error) {
	if err := engine.ValidArtifactName(name); err != nil {
		return "", err
	}
	m[name] = data
	return "https://weir.example/jobs/job-1/artifacts/snapshot/" + name, nil
}

// An engine stores files it makes (a thumbnail) with the host and puts
// their URLs in its results. A host that keeps no files gives a store that
// refuses with ErrNoArtifacts.
func ExampleEmitter_Artifacts() {
	emit := engine.NewEmitter(func(p engine.Piece) error {
		fmt.Printf("%d-%d ms: %s\n", p.StartMs, p.EndMs, p.Doc.Series[0].Tags[0].Value)
		return nil
	}, engine.WithArtifacts(memStore{}))
	url, err := emit.Artifacts().Put(context.Background(), "frame-000000.jpg", "image/jpeg", []byte{0xff, 0xd8, 0xff})
	if err != nil {
		fmt.Println(err)
		return
	}
	emit.Emit(0, 0, &protocol.Document{Series: []protocol.Series{{Tags: []protocol.Tag{{Key: "thumbnail", Value: url}}}}})

	_, err = engine.NewEmitter(nil).Artifacts().Put(context.Background(), "frame-000000.jpg", "image/jpeg", nil)
	fmt.Println(err)
	// Output:
	// 0-0 ms: https://weir.example/jobs/job-1/artifacts/snapshot/frame-000000.jpg
	// store artifact "frame-000000.jpg": the host stores no artifacts
}
