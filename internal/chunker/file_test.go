package chunker

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media"
)

// TestRunFileReadsAnMP4WithItsIndexAtTheEnd: the file ffmpeg writes by
// default, read through RunFile, gives every kind of chunk.
func TestRunFileReadsAnMP4WithItsIndexAtTheEnd(t *testing.T) {
	data, err := os.ReadFile(fixtures.mp4)
	if err != nil {
		t.Fatal(err)
	}
	if m, d := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat")); m < d {
		t.Fatalf("fixture has moov at %d, mdat at %d: want the index at the end", m, d)
	}
	chunks, err := collectFile(t, fixtures.mp4, Options{Kinds: []Kind{KindVideo, KindAudio, KindFrame}, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A key frame every second: cuts at exactly 2, 4 and 6 s.
	video := ofKind(chunks, KindVideo)
	checkVideoChunks(t, fixtures.mp4, video, 4, 2000)
	for i, c := range video {
		if c.StartMs != int64(i)*2000 || c.EndMs != int64(i+1)*2000 {
			t.Errorf("video chunk %d: %d-%d ms, want %d-%d", i, c.StartMs, c.EndMs, i*2000, (i+1)*2000)
		}
	}

	frames := ofKind(chunks, KindFrame)
	if len(frames) != 8 {
		t.Fatalf("got %d frames from 8 s at 1 fps", len(frames))
	}
	for i, c := range frames {
		if c.StartMs != int64(i)*1000 || c.EndMs-c.StartMs != frameMs || c.Width != 320 || c.Height != 240 {
			t.Errorf("frame %d: %+v, want %d ms, one frame long, 320x240", i, c, i*1000)
		}
	}

	// Audio is cut at the packet after each 2 s; the last packet's few ms
	// may make a fifth chunk.
	audio := ofKind(chunks, KindAudio)
	if len(audio) < 4 || len(audio) > 5 {
		t.Fatalf("got %d audio chunks from 8 s in 2 s chunks: %+v", len(audio), audio)
	}
	var sum float64
	for i, c := range audio {
		if i > 0 && c.StartMs != audio[i-1].EndMs || i == 0 && c.StartMs != 0 {
			t.Errorf("audio chunk %d starts at %d ms, not where the previous ended", i, c.StartMs)
		}
		sum += atof(t, ffprobe(t, c.Path, "-show_entries", "format=duration").Format.Duration)
	}
	if end := audio[len(audio)-1].EndMs; math.Abs(sum-8) > 0.05 || end < 7950 || end > 8050 {
		t.Errorf("audio chunks hold %.3f s and end at %d ms, want 8 s", sum, end)
	}
}

// TestRunRefusesAnMP4WithItsIndexAtTheEnd: the same file as a stream is
// refused with an error saying what to do, and no chunk is emitted.
func TestRunRefusesAnMP4WithItsIndexAtTheEnd(t *testing.T) {
	pid := watchFFmpeg(t)
	chunks, err := collect(t, fixtures.mp4, Options{Kinds: []Kind{KindVideo, KindAudio, KindFrame}, Duration: 2 * time.Second})
	if !errors.Is(err, ErrIndexAtEnd) || !strings.Contains(err.Error(), "RunFile") {
		t.Fatalf("Run = %v, want ErrIndexAtEnd", err)
	}
	if len(chunks) != 0 {
		t.Errorf("%d chunks emitted: %+v", len(chunks), chunks)
	}
	if pid.Load() != 0 {
		t.Error("ffmpeg was started on an input already refused")
	}
}

func TestFaststartMP4ThroughAPipe(t *testing.T) {
	chunks, err := collect(t, fixtures.mp4Faststart, Options{Kinds: []Kind{KindVideo}, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	checkVideoChunks(t, fixtures.mp4Faststart, chunks, 4, 2000)
}

// fakeFFmpeg is an ffmpeg that reports the given segments (name, start,
// end, content) on the first segment list and exits 0.
func fakeFFmpeg(t *testing.T, segments ...[4]string) string {
	script := "#!/bin/sh\nfor a; do last=$a; done\ndir=${last%/*}\n"
	for _, s := range segments {
		script += "printf '" + s[3] + "' > \"$dir/" + s[0] + "\"\necho '" + s[0] + "," + s[1] + "," + s[2] + "' >&3\n"
	}
	script += "cat >/dev/null\nexit 0\n"
	path := filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEmptyChunksAreNeverEmitted: whatever else ffmpeg made is emitted,
// its empty chunks are not, and an input that gave nothing else fails.
func TestEmptyChunksAreNeverEmitted(t *testing.T) {
	empty := [4]string{"000000.ts", "0.000000", "0.000000", ""}
	noTime := [4]string{"000001.ts", "1.000000", "1.000000", "x"}
	good := [4]string{"000002.ts", "1.000000", "2.000000", "x"}
	for name, tc := range map[string]struct {
		segments [][4]string
		want     string // in the error; "" for none
		emitted  int
	}{
		"only empty": {[][4]string{empty, noTime}, "empty chunk", 0},
		"nothing":    {nil, "cut no chunk", 0},
		"one good":   {[][4]string{empty, good, noTime}, "", 1},
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			opts := Options{Kinds: []Kind{KindVideo}, FFmpeg: fakeFFmpeg(t, tc.segments...), FFprobe: "ffprobe",
				Log: slog.New(slog.NewTextHandler(&logs, nil))}
			chunks, err := collect(t, fixtures.videoOnly, opts)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Run = %v, want an error naming %q", err, tc.want)
			}
			if len(chunks) != tc.emitted {
				t.Fatalf("%d chunks emitted, want %d: %+v", len(chunks), tc.emitted, chunks)
			}
			if tc.emitted > 0 && (chunks[0].Index != 0 || chunks[0].StartMs != 1000 || chunks[0].EndMs != 2000) {
				t.Errorf("chunk %+v, want index 0 at 1000-2000 ms", chunks[0])
			}
			if len(tc.segments) > 0 && !strings.Contains(logs.String(), "empty chunk") {
				t.Errorf("no warning about the empty chunk: %q", logs.String())
			}
		})
	}
}

// TestRunFileReadsOnlyALocalFile: a path is a local file and nothing
// else, however it is spelled.
func TestRunFileReadsOnlyALocalFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	data, err := os.ReadFile(fixtures.videoOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	playlist := filepath.Join(dir, "list.m3u8")
	os.WriteFile(playlist, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"), 0o600)
	opts := Options{Kinds: []Kind{KindVideo}, Duration: time.Second}
	for path, want := range map[string]error{
		"concat:a|b":           fs.ErrNotExist,
		"subfile,,start,0,,:a": fs.ErrNotExist,
		"missing.mp4":          fs.ErrNotExist,
		dir:                    nil, // a directory
		playlist:               media.ErrNoMedia,
	} {
		chunks, err := collectFile(t, path, opts)
		if err == nil || want != nil && !errors.Is(err, want) || !strings.Contains(err.Error(), path) && want != media.ErrNoMedia {
			t.Errorf("RunFile(%q) = %v, want an error naming the path (%v)", path, err, want)
		}
		if len(chunks) != 0 {
			t.Errorf("RunFile(%q) emitted %d chunks", path, len(chunks))
		}
	}

	// A local file whose name spells a protocol is that file.
	if err := os.WriteFile("concat:a|b", data, 0o600); err != nil {
		t.Fatal(err)
	}
	chunks, err := collectFile(t, "concat:a|b", opts)
	if err != nil || len(chunks) != 2 {
		t.Fatalf("RunFile on a file named concat:a|b = %v, %d chunks; want the 2 of that file", err, len(chunks))
	}
}

func TestRunFileEmitErrorStopsFFmpeg(t *testing.T) {
	pid := watchFFmpeg(t)
	dir := t.TempDir()
	boom := errors.New("object store is full")
	err := RunFile(context.Background(), fixtures.mp4, Options{Kinds: []Kind{KindVideo, KindFrame}, Duration: time.Second, TempDir: dir},
		func(context.Context, Chunk) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("RunFile = %v, want the emit error", err)
	}
	assertGone(t, pid.Load(), dir)
}

// TestMP4IndexAtEnd: every prefix of a file with its index at the end is
// recognised once it holds the media box's header, and nothing else is.
func TestMP4IndexAtEnd(t *testing.T) {
	atEnd, err := os.ReadFile(fixtures.mp4)
	if err != nil {
		t.Fatal(err)
	}
	mdat := bytes.Index(atEnd, []byte("mdat"))
	for n := range mdat + 16 {
		if got, want := mp4IndexAtEnd(atEnd[:n]), n >= mdat+4; got != want {
			t.Fatalf("first %d bytes (mdat type at %d): %t, want %t", n, mdat, got, want)
		}
	}
	for _, path := range []string{fixtures.mp4Faststart, fixtures.av} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 7, 8, 100, 4096, len(data)} {
			if mp4IndexAtEnd(data[:n]) {
				t.Errorf("%s: first %d bytes taken for an MP4 with its index at the end", filepath.Base(path), n)
			}
		}
	}
	// A 64-bit media box size, and a first box no MP4 starts with.
	large := []byte("\x00\x00\x00\x10ftypisom\x00\x00\x00\x00" + "\x00\x00\x00\x01free\x00\x00\x00\x00\x00\x00\x00\x10" + "\x00\x00\x00\x08mdat")
	if !mp4IndexAtEnd(large) || mp4IndexAtEnd([]byte("\x00\x00\x00\x08junk\x00\x00\x00\x08mdat")) {
		t.Error("box walk")
	}
}

// FuzzMP4IndexAtEnd: the box walk survives any bytes.
func FuzzMP4IndexAtEnd(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x10ftypisom\x00\x00\x00\x00\x00\x00\x00\x08free\x00\x00\x00\x08mdat"))
	f.Add([]byte("\x00\x00\x00\x01ftyp\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("\x00\x00\x00\x00moov"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if mp4IndexAtEnd(data) && !bytes.Contains(data, []byte("mdat")) {
			t.Error("index at the end of a file without a media box")
		}
	})
}
