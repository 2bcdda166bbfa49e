package engines

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// makeMedia runs ffmpeg to write out from lavfi sources.
func makeMedia(t *testing.T, name string, args ...string) string {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
	out := filepath.Join(t.TempDir(), name)
	args = append([]string{"-hide_banner", "-loglevel", "error", "-y"}, append(args, out)...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// runProbe runs the registered probe engine on a chunk, as a host would.
func runProbe(t *testing.T, c *engine.Chunk, raw map[string]any) (*protocol.Document, error) {
	t.Helper()
	reg, ok := engine.Default().Lookup("probe")
	if !ok {
		t.Fatal("probe is not registered")
	}
	e, err := reg.Factory.(engine.ChunkFactory)()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := reg.Spec.ParseOptions(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e.Process(context.Background(), c, opts)
}

func tagMap(t *testing.T, doc *protocol.Document) map[string]string {
	t.Helper()
	if doc == nil || len(doc.Series) != 1 {
		t.Fatalf("want one series, got %+v", doc)
	}
	m := map[string]string{}
	for _, tag := range doc.Series[0].Tags {
		m[tag.Key] = tag.Value
	}
	return m
}

func TestProbeTagsAVideoChunksFormatDurationAndCodecs(t *testing.T) {
	path := makeMedia(t, "chunk.ts",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "2", "-ac", "2", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "mpegts")
	c := &engine.Chunk{Path: path, Meta: protocol.MediaChunk{ChunkIndex: 5, MimeType: "video/mp2t", StartOffsetMs: 10000, EndOffsetMs: 12000}}
	doc, err := runProbe(t, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := doc.Series[0]; s.StartTimeMs != 0 || s.StopTimeMs != 2000 {
		t.Errorf("series [%d, %d], want the chunk's [0, 2000]", s.StartTimeMs, s.StopTimeMs)
	}
	tags := tagMap(t, doc)
	dur := tags["duration_ms"]
	delete(tags, "duration_ms")
	want := map[string]string{"format": "mpegts", "video_codec": "h264", "width": "320", "height": "240",
		"frame_rate": "25", "audio_codec": "aac", "sample_rate": "48000", "channels": "2"}
	if !reflect.DeepEqual(tags, want) {
		t.Errorf("tags = %v, want %v", tags, want)
	}
	// ffprobe's duration of an MPEG-TS includes the last frame and the AAC
	// priming, so it is close to 2 s, not exactly.
	if len(dur) < 4 || !strings.HasPrefix(dur, "20") && !strings.HasPrefix(dur, "19") {
		t.Errorf("duration_ms = %q, want about 2000", dur)
	}
}

func TestProbeReportsOnlyWhatIncludeAsks(t *testing.T) {
	path := makeMedia(t, "tone.wav", "-f", "lavfi", "-i", "sine=sample_rate=16000", "-t", "1", "-ac", "1")
	doc, err := runProbe(t, &engine.Chunk{Path: path, Meta: protocol.MediaChunk{MimeType: "audio/wav", EndOffsetMs: 1000}},
		map[string]any{"include": []any{"audio", "video"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"audio_codec": "pcm_s16le", "sample_rate": "16000", "channels": "1"}
	if got := tagMap(t, doc); !reflect.DeepEqual(got, want) {
		t.Errorf("tags = %v, want %v", got, want)
	}
}

func TestProbeReadsInlineContent(t *testing.T) {
	path := makeMedia(t, "tone.wav", "-f", "lavfi", "-i", "sine=sample_rate=8000", "-t", "1.5", "-ac", "1")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := runProbe(t, &engine.Chunk{Meta: protocol.MediaChunk{MimeType: "audio/wav", EndOffsetMs: 1500, Content: string(data)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tagMap(t, doc); got["format"] != "wav" || got["sample_rate"] != "8000" || doc.Series[0].StopTimeMs != 1500 {
		t.Errorf("tags %v, series %+v", got, doc.Series[0])
	}
}

func TestProbeUsesTheMediaDurationWhenTheChunkHasNone(t *testing.T) {
	path := makeMedia(t, "tone.wav", "-f", "lavfi", "-i", "sine=sample_rate=8000", "-t", "1.5", "-ac", "1")
	doc, err := runProbe(t, &engine.Chunk{Path: path, Meta: protocol.MediaChunk{MimeType: "audio/wav"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := doc.Series[0]; s.StopTimeMs != 1500 || tagMap(t, doc)["duration_ms"] != "1500" {
		t.Errorf("series %+v", s)
	}
}

func TestProbeFailsAChunkThatIsNotMedia(t *testing.T) {
	testenv.RequireTool(t, "ffprobe")
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("these are not the frames you are looking for\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runProbe(t, &engine.Chunk{Path: path, Meta: protocol.MediaChunk{ChunkIndex: 7, MimeType: "video/mp2t", EndOffsetMs: 1000}}, nil)
	if !errors.Is(err, media.ErrNoMedia) || !strings.HasPrefix(err.Error(), "chunk 7: ") || errors.Is(err, engine.ErrIgnored) {
		t.Fatalf("error = %v, want chunk 7's ErrNoMedia (an ERROR, not IGNORED)", err)
	}
}

func TestProbeIsUnavailableWithoutFFprobeAndSaysHowToInstallIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	reg, _ := engine.Default().Lookup("probe")
	e := builtinEntry(reg)
	if e.Status != StatusUnavailable || e.Install != "apt-get install -y ffmpeg" ||
		!strings.Contains(e.Reason, "ffprobe is not on PATH (to read the chunk's duration and codecs)") {
		t.Fatalf("entry = %+v", e)
	}
}

func TestProbeSpecAcceptsAudioAndVideoOnly(t *testing.T) {
	reg, _ := engine.Default().Lookup("probe")
	for mime, want := range map[string]bool{"video/mp2t": true, "audio/aac": true, "text/plain": false, "image/png": false} {
		if got := reg.Spec.Accepts(mime); got != want {
			t.Errorf("Accepts(%s) = %v", mime, got)
		}
	}
}
