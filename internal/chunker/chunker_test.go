package chunker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/media"
)

const frameMs = 40 // one frame at 25 fps

func TestVideoChunksCutOnKeyFrames(t *testing.T) {
	chunks, err := collect(t, fixtures.av, Options{Kinds: []Kind{KindVideo}, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The source has a key frame every 1.2 s: cuts at the first key frame at
	// or after 2, 4 and 6 s are 2.4, 4.8 and 6.0 s.
	checkVideoChunks(t, fixtures.av, chunks, 4, 2000)
}

// checkVideoChunks checks that chunks are the n video chunks of the 8 s
// 320x240 source cut every everyMs: consecutive, each starting on the
// source's first key frame at or after a multiple of everyMs, playable
// alone with the audio, the last ending where the source's video does.
func checkVideoChunks(t *testing.T, source string, chunks []Chunk, n int, everyMs float64) {
	t.Helper()
	start := startTime(t, source)
	src := packets(t, source, "v")
	var keys []float64 // key frame times from the input's first timestamp, ms
	for _, p := range src {
		if p.Key {
			keys = append(keys, (p.PTS-start)*1000)
		}
	}
	last := src[len(src)-1]
	endMs := (last.PTS + last.Duration - start) * 1000
	if len(chunks) != n {
		t.Fatalf("got %d video chunks, want %d: %+v", len(chunks), n, chunks)
	}
	for i, c := range chunks {
		if c.Index != int64(i) || c.MimeType != "video/mp2t" || c.Width != 320 || c.Height != 240 {
			t.Errorf("chunk %d: %+v", i, c)
		}
		if i == 0 {
			if c.StartMs != 0 {
				t.Errorf("first chunk starts at %d ms, want 0", c.StartMs)
			}
		} else {
			if c.StartMs != chunks[i-1].EndMs {
				t.Errorf("chunk %d starts at %d ms, previous ended at %d", i, c.StartMs, chunks[i-1].EndMs)
			}
			want := firstAtOrAfter(keys, float64(i)*everyMs)
			if math.Abs(float64(c.StartMs)-want) > frameMs {
				t.Errorf("chunk %d starts at %d ms, want the key frame at %.1f ms", i, c.StartMs, want)
			}
		}
		decodesAlone(t, c.Path)
		ps := packets(t, c.Path, "v")
		if len(ps) == 0 || !ps[0].Key {
			t.Errorf("chunk %d does not start with a key frame", i)
		}
		if got, want := len(ps), int(math.Round(float64(c.EndMs-c.StartMs)/frameMs)); i > 0 && abs(got-want) > 1 {
			t.Errorf("chunk %d holds %d frames, its times span %d", i, got, want)
		}
		if len(packets(t, c.Path, "a")) == 0 {
			t.Errorf("chunk %d has no audio", i)
		}
	}
	if got := chunks[len(chunks)-1].EndMs; math.Abs(float64(got)-endMs) > frameMs {
		t.Errorf("last chunk ends at %d ms, the video ends at %.1f ms", got, endMs)
	}
}

func firstAtOrAfter(keys []float64, ms float64) float64 {
	for _, k := range keys {
		if k >= ms-1 {
			return k
		}
	}
	return math.Inf(1)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestAudioChunksCoverTheInput(t *testing.T) {
	chunks, err := collect(t, fixtures.av, Options{Kinds: []Kind{KindAudio}, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	src := packets(t, fixtures.av, "a")
	srcDur := src[len(src)-1].PTS + src[len(src)-1].Duration - src[0].PTS
	if len(chunks) != 3 {
		t.Fatalf("got %d audio chunks, want 3", len(chunks))
	}
	var sum float64
	for i, c := range chunks {
		if c.MimeType != "audio/wav" || c.Index != int64(i) {
			t.Errorf("chunk %d: %+v", i, c)
		}
		if i == 0 && c.StartMs != 0 || i > 0 && c.StartMs != chunks[i-1].EndMs {
			t.Errorf("chunk %d starts at %d ms, not where the previous ended", i, c.StartMs)
		}
		po := ffprobe(t, c.Path, "-show_entries", "format=format_name,duration:stream=codec_name,sample_rate,channels")
		if po.Format.FormatName != "wav" || len(po.Streams) != 1 || po.Streams[0].CodecName != "pcm_s16le" ||
			po.Streams[0].SampleRate != "16000" || po.Streams[0].Channels != 1 {
			t.Errorf("chunk %d is not 16 kHz mono s16le WAV: %+v %+v", i, po.Format, po.Streams)
		}
		d := atof(t, po.Format.Duration)
		sum += d
		if got := float64(c.EndMs - c.StartMs); math.Abs(got-d*1000) > 25 {
			t.Errorf("chunk %d: times span %.0f ms, the file holds %.1f ms", i, got, d*1000)
		}
	}
	if math.Abs(sum-srcDur) > 0.05 {
		t.Errorf("audio chunks hold %.3f s, the input's audio lasts %.3f s", sum, srcDur)
	}
}

func TestAudioSourceFormat(t *testing.T) {
	chunks, err := collect(t, fixtures.av, Options{Kinds: []Kind{KindAudio}, AudioFormat: AudioSource, Duration: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 2 {
		t.Fatalf("got %d chunks", len(chunks))
	}
	for _, c := range chunks {
		po := ffprobe(t, c.Path, "-show_entries", "format=format_name:stream=codec_name")
		if c.MimeType != "audio/aac" || po.Format.FormatName != "aac" || po.Streams[0].CodecName != "aac" {
			t.Errorf("chunk %d: %s, %+v %+v", c.Index, c.MimeType, po.Format, po.Streams)
		}
	}
}

func TestFramesAtFrameRate(t *testing.T) {
	chunks, err := collect(t, fixtures.av, Options{Kinds: []Kind{KindFrame}, FrameRate: 1, MaxFrameWidth: 160})
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 8 {
		t.Fatalf("got %d frames from 8 s at 1 fps: %+v", len(chunks), chunks)
	}
	first := (packets(t, fixtures.av, "v")[0].PTS - startTime(t, fixtures.av)) * 1000
	for i, c := range chunks {
		want := float64(i * 1000)
		if i == 0 {
			want = first
		}
		// The first source frame at or after each second: at most one frame later.
		if d := float64(c.StartMs) - want; d < -1 || d > frameMs {
			t.Errorf("frame %d at %d ms, want within a frame after %.1f ms", i, c.StartMs, want)
		}
		if c.EndMs-c.StartMs < frameMs-1 || c.EndMs-c.StartMs > frameMs+1 {
			t.Errorf("frame %d lasts %d ms, want one frame", i, c.EndMs-c.StartMs)
		}
		po := ffprobe(t, c.Path, "-show_entries", "stream=codec_name,width,height")
		if c.Width != 160 || c.Height != 120 || c.MimeType != "image/jpeg" ||
			po.Streams[0].CodecName != "mjpeg" || po.Streams[0].Width != 160 || po.Streams[0].Height != 120 {
			t.Errorf("frame %d: %+v, ffprobe %+v", i, c, po.Streams)
		}
	}
}

func TestFramesOnSceneChange(t *testing.T) {
	chunks, err := collect(t, fixtures.scene, Options{Kinds: []Kind{KindFrame}, FrameRate: -1, SceneThreshold: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	start := startTime(t, fixtures.scene)
	first := (packets(t, fixtures.scene, "v")[0].PTS - start) * 1000
	if len(chunks) != 2 {
		t.Fatalf("got %d frames, want the 2 colour switches: %+v", len(chunks), chunks)
	}
	for i, want := range []float64{1520, 3520} {
		c := chunks[i]
		if math.Abs(float64(c.StartMs)-(first+want)) > 1 {
			t.Errorf("scene frame %d at %d ms, want %.0f", i, c.StartMs, first+want)
		}
		if c.SceneScore <= 0.3 || c.SceneScore > 1 {
			t.Errorf("scene frame %d: score %g", i, c.SceneScore)
		}
		if c.Width != 160 || c.Height != 120 {
			t.Errorf("scene frame %d: %dx%d", i, c.Width, c.Height)
		}
	}

	// With a rate as well, both kinds of frame come, in time order.
	chunks, err = collect(t, fixtures.scene, Options{Kinds: []Kind{KindFrame}, FrameRate: 1, SceneThreshold: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, c := range chunks {
		got = append(got, c.StartMs-int64(math.Round(first)))
	}
	want := []int64{0, 1000, 1520, 2000, 3000, 3520, 4000, 5000}
	if len(got) != len(want) {
		t.Fatalf("frames at %v ms, want %v", got, want)
	}
	for i := range want {
		if abs(int(got[i]-want[i])) > 1 {
			t.Fatalf("frames at %v ms, want %v", got, want)
		}
	}
}

func TestAllKindsShareOneTimeline(t *testing.T) {
	all, err := collect(t, fixtures.av, Options{Kinds: []Kind{KindVideo, KindAudio, KindFrame}, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{KindVideo, KindAudio, KindFrame} {
		alone, err := collect(t, fixtures.av, Options{Kinds: []Kind{k}, Duration: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		mixed := ofKind(all, k)
		if len(mixed) != len(alone) || len(alone) == 0 {
			t.Fatalf("%s: %d chunks alone, %d with other kinds", k, len(alone), len(mixed))
		}
		for i := range alone {
			if alone[i].StartMs != mixed[i].StartMs || alone[i].EndMs != mixed[i].EndMs {
				t.Errorf("%s chunk %d: %d-%d ms alone, %d-%d ms with other kinds", k, i,
					alone[i].StartMs, alone[i].EndMs, mixed[i].StartMs, mixed[i].EndMs)
			}
		}
	}
}

// trickle writes a file to w at about real time over dur, then closes w.
func trickle(t *testing.T, path string, w *io.PipeWriter, dur time.Duration, done *atomic.Bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		w.CloseWithError(err)
		return
	}
	const steps = 80
	step := (len(data) + steps - 1) / steps
	for off := 0; off < len(data); off += step {
		if _, err := w.Write(data[off:min(off+step, len(data))]); err != nil {
			return
		}
		time.Sleep(dur / steps)
	}
	done.Store(true)
	w.Close()
}

func TestLiveInputYieldsChunksBeforeItEnds(t *testing.T) {
	pr, pw := io.Pipe()
	var inputDone atomic.Bool
	go trickle(t, fixtures.av, pw, 8*time.Second, &inputDone)
	var first, beforeEnd atomic.Bool
	n := 0
	err := Run(context.Background(), pr, Options{Kinds: []Kind{KindVideo}, Duration: time.Second},
		func(_ context.Context, c Chunk) error {
			if !first.Swap(true) {
				beforeEnd.Store(!inputDone.Load())
			}
			n++
			return nil
		})
	pr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !beforeEnd.Load() {
		t.Error("the first chunk came only after the live input had ended")
	}
	if n < 6 {
		t.Errorf("got %d chunks from 8 s in 1 s chunks (key frames every 1.2 s)", n)
	}
}

// endless is the fixture followed by a pipe that never ends: only a kill
// stops an ffmpeg reading it.
func endless(t *testing.T) io.Reader {
	data, err := os.ReadFile(fixtures.av)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.Write(data) }()
	t.Cleanup(func() { pr.Close() })
	return pr
}

func watchFFmpeg(t *testing.T) *atomic.Int64 {
	var pid atomic.Int64
	testStarted = func(p int) { pid.Store(int64(p)) }
	t.Cleanup(func() { testStarted = nil })
	return &pid
}

func assertGone(t *testing.T, pid int64, dir string) {
	t.Helper()
	if pid == 0 {
		t.Fatal("ffmpeg never started")
	}
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ffmpeg %d is still there after Run returned (kill -0: %v)", pid, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Run left %d entries in its temp dir", len(left))
	}
}

func TestCancelKillsFFmpeg(t *testing.T) {
	pid := watchFFmpeg(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := Run(ctx, endless(t), Options{Kinds: []Kind{KindVideo, KindFrame}, Duration: time.Second, TempDir: dir},
		func(context.Context, Chunk) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	assertGone(t, pid.Load(), dir)
}

func TestCancelWhileWaitingForInput(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, pr, Options{Kinds: []Kind{KindVideo}}, func(context.Context, Chunk) error { return nil })
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended while the input was silent")
	}
}

func TestEmitErrorStopsRun(t *testing.T) {
	pid := watchFFmpeg(t)
	dir := t.TempDir()
	boom := errors.New("object store is full")
	calls := 0
	err := Run(context.Background(), endless(t), Options{Kinds: []Kind{KindAudio}, Duration: time.Second, TempDir: dir},
		func(context.Context, Chunk) error { calls++; return boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "audio chunk 0") {
		t.Fatalf("Run = %v, want the emit error", err)
	}
	if calls != 1 {
		t.Errorf("emit called %d times after failing", calls)
	}
	assertGone(t, pid.Load(), dir)
}

func TestCorruptInput(t *testing.T) {
	noise := make([]byte, 512<<10)
	rng := rand.NewChaCha8([32]byte{7})
	rng.Read(noise)
	playlist := []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"noise":    {noise, "Invalid data"},
		"empty":    {nil, "probe input"},
		"playlist": {playlist, "probe input"},
	} {
		t.Run(name, func(t *testing.T) {
			emitted := 0
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := Run(ctx, bytes.NewReader(tc.in), Options{Kinds: []Kind{KindVideo, KindAudio}},
				func(context.Context, Chunk) error { emitted++; return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, media.ErrNoMedia) {
				t.Fatalf("Run = %v, want an error naming %q", err, tc.want)
			}
			if emitted != 0 {
				t.Errorf("%d chunks emitted from %s", emitted, name)
			}
		})
	}
}

func TestTruncatedInputStillChunks(t *testing.T) {
	data, err := os.ReadFile(fixtures.av)
	if err != nil {
		t.Fatal(err)
	}
	half := data[:len(data)/2+7] // cut mid-packet
	path := filepath.Join(t.TempDir(), "half.ts")
	if err := os.WriteFile(path, half, 0o600); err != nil {
		t.Fatal(err)
	}
	chunks, err := collect(t, path, Options{Kinds: []Kind{KindVideo, KindAudio}, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(ofKind(chunks, KindVideo)) < 2 || len(ofKind(chunks, KindAudio)) < 2 {
		t.Errorf("got %d chunks from half the input", len(chunks))
	}
}

func TestFFmpegErrorCarriesItsStderr(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "ffmpeg")
	script := "#!/bin/sh\necho 'warming up' >&2\necho 'Conversion failed: simulated disk full' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fixtures.videoOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Run(context.Background(), f, Options{Kinds: []Kind{KindVideo}, FFmpeg: fake, FFprobe: "ffprobe"},
		func(context.Context, Chunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "simulated disk full") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("Run = %v, want ffmpeg's stderr tail", err)
	}
}

func TestInputWithoutAudio(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	chunks, err := collect(t, fixtures.videoOnly, Options{Kinds: []Kind{KindVideo, KindAudio}, Duration: time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(ofKind(chunks, KindVideo)) != 2 || len(ofKind(chunks, KindAudio)) != 0 {
		t.Errorf("got %d video and %d audio chunks from 2 s of video alone",
			len(ofKind(chunks, KindVideo)), len(ofKind(chunks, KindAudio)))
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "kind=audio") {
		t.Errorf("no warning about the missing audio: %q", logs.String())
	}
	_, err = collect(t, fixtures.videoOnly, Options{Kinds: []Kind{KindAudio}, Log: log})
	if !errors.Is(err, ErrNoStreams) {
		t.Errorf("audio chunks of a silent input: %v, want ErrNoStreams", err)
	}
}

func TestAudioOnlyInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tone.aac")
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100:duration=3",
		"-c:a", "aac", "-f", "adts", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	chunks, err := collect(t, path, Options{Kinds: []Kind{KindVideo, KindAudio, KindFrame}, Duration: time.Second,
		AudioFormat: AudioSource, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	video, audio := ofKind(chunks, KindVideo), ofKind(chunks, KindAudio)
	// 3 s of AAC is 3.0 s plus the encoder's padding: a few ms in a 4th chunk.
	if len(video) < 3 || len(video) != len(audio) || len(ofKind(chunks, KindFrame)) != 0 {
		t.Fatalf("got %d video, %d audio, %d frame chunks from 3 s of AAC", len(video), len(audio), len(ofKind(chunks, KindFrame)))
	}
	if end := audio[len(audio)-1].EndMs; end < 3000 || end > 3100 {
		t.Errorf("audio ends at %d ms, want about 3000", end)
	}
	for i := range video {
		// MPEG-TS of the audio alone, cut where the audio chunks are.
		po := ffprobe(t, video[i].Path, "-show_entries", "stream=codec_type,codec_name")
		if len(po.Streams) != 1 || po.Streams[0].CodecName != "aac" || video[i].Width != 0 {
			t.Errorf("video chunk %d of an audio input: %+v %+v", i, video[i], po.Streams)
		}
		if video[i].StartMs != audio[i].StartMs || video[i].EndMs != audio[i].EndMs {
			t.Errorf("chunk %d: video %d-%d ms, audio %d-%d ms", i, video[i].StartMs, video[i].EndMs, audio[i].StartMs, audio[i].EndMs)
		}
		decodesAlone(t, video[i].Path)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{},
		{Kinds: []Kind{"subtitle"}},
		{Kinds: []Kind{KindVideo, KindVideo}},
		{Kinds: []Kind{KindVideo}, Duration: time.Millisecond},
		{Kinds: []Kind{KindFrame}, FrameRate: -1},
		{Kinds: []Kind{KindFrame}, SceneThreshold: 1.5},
		{Kinds: []Kind{KindAudio}, AudioFormat: "flac"},
		{Kinds: []Kind{KindFrame}, MaxFrameWidth: -1},
		{Kinds: []Kind{KindVideo}, InputFormat: "hls"},
	} {
		err := Run(context.Background(), bytes.NewReader(nil), o, func(context.Context, Chunk) error { return nil })
		if err == nil {
			t.Errorf("Run(%+v) = nil, want an error", o)
		}
	}
}

func TestArgsUseTheAllowLists(t *testing.T) {
	o, err := Options{Kinds: []Kind{KindVideo, KindAudio, KindFrame}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	info := &probeInfo{Format: "mpegts", StartTime: 1.4, Video: &probeStreamInfo{CodecName: "h264"}, Audio: &probeStreamInfo{CodecName: "aac"}}
	p, err := newPlan(o, info, ffInput{media.ProtocolsPipe, "pipe:0"})
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(p.args("/tmp/x"), " ")
	for _, want := range []string{
		"-protocol_whitelist pipe -format_whitelist " + strings.Join(media.Demuxers, ",") + " -f mpegts -i pipe:0",
		"-segment_list pipe:3 ", "-segment_list pipe:4 ", "file=pipe\\:6", "-segment_list pipe:5 ",
		"-output_ts_offset -1.400000",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("ffmpeg args lack %q:\n%s", want, args)
		}
	}
	p.in = ffInput{media.ProtocolsFile, "file:/media/in.mp4"}
	args = strings.Join(p.args("/tmp/x"), " ")
	if want := "-protocol_whitelist file -format_whitelist " + strings.Join(media.Demuxers, ",") + " -f mpegts -i file:/media/in.mp4 "; !strings.Contains(args, want) {
		t.Errorf("ffmpeg args for a file lack %q:\n%s", want, args)
	}
	if strings.Contains(args, "-analyzeduration") {
		t.Errorf("args bound the probe window without ProbeWindow:\n%s", args)
	}
	p.opts.ProbeWindow = 1500 * time.Millisecond
	if args = strings.Join(p.args("/tmp/x"), " "); !strings.Contains(args, " -f mpegts -analyzeduration 1500000 -i ") {
		t.Errorf("ffmpeg args lack the probe window before -i:\n%s", args)
	}
	cmd, _, _ := probeCommand(context.Background(), p.opts, ffInput{media.ProtocolsPipe, "pipe:0"})
	if probe := strings.Join(cmd.Args, " "); !strings.Contains(probe, "-analyzeduration 1500000") {
		t.Errorf("ffprobe args lack the probe window:\n%s", probe)
	}
}
