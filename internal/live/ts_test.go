package live

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/hls"
)

// makeMedia runs ffmpeg with args (inputs and codecs, no output) and
// returns what it wrote in format.
func makeMedia(t testing.TB, format string, args ...string) []byte {
	t.Helper()
	needTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "out."+format)
	full := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	full = append(full, "-f", format, out)
	if msg, err := exec.Command("ffmpeg", full...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", full, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeTS makes seconds of a 160x120 test pattern at 25 fps with a key frame
// every gop frames and a tone, as MPEG-TS, its timestamps starting at
// offset seconds. codec is libx264 or libx265.
func makeTS(t testing.TB, seconds, gop int, codec string, offset float64) []byte {
	t.Helper()
	d := itoa(seconds)
	args := []string{
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + d,
		"-c:v", codec, "-g", itoa(gop), "-keyint_min", itoa(gop), "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k", "-output_ts_offset", ftoa(offset),
	}
	switch codec {
	case "libx264":
		args = append(args, "-preset", "ultrafast", "-sc_threshold", "0")
	case "libx265":
		args = append(args, "-preset", "ultrafast", "-x265-params", "log-level=error:scenecut=0")
	}
	return makeMedia(t, "mpegts", args...)
}

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// demuxAll feeds data in pieces of size n and returns every piece, flushed.
func demuxAll(data []byte, n int) ([]tsPiece, *tsDemuxer) {
	d := newTSDemuxer()
	var out []tsPiece
	at := time.Now()
	for len(data) > 0 {
		k := min(n, len(data))
		out = d.feed(data[:k], at, out)
		data = data[k:]
	}
	return d.flush(out), d
}

func keyStarts(pieces []tsPiece) []time.Duration {
	var keys []time.Duration
	for _, p := range pieces {
		if p.Key {
			keys = append(keys, p.PTS)
		}
	}
	return keys
}

func TestDemuxFindsKeyFramesWhateverTheChunking(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"libx264", "libx265"} {
		ts := makeTS(t, 4, 25, codec, 0)
		want, d := demuxAll(ts, len(ts))
		if !d.hasVideo() {
			t.Fatalf("%s: no video stream found", codec)
		}
		if keys := keyStarts(want); len(keys) != 4 {
			t.Fatalf("%s: key frames at %v, want 4 one second apart", codec, keys)
		} else {
			for i := 1; i < len(keys); i++ {
				if keys[i]-keys[i-1] != time.Second {
					t.Errorf("%s: key frames at %v, want one second apart", codec, keys)
				}
			}
		}
		for _, n := range []int{1, 7, 187, 188, 189, 1316, 10240} {
			got, _ := demuxAll(ts, n)
			if len(got) != len(want) {
				t.Fatalf("%s in pieces of %d: %d packets, want %d", codec, n, len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if !bytes.Equal(g.Data, w.Data) || g.Key != w.Key || g.Start != w.Start || g.PTS != w.PTS || g.Kind != w.Kind {
					t.Fatalf("%s in pieces of %d: packet %d differs: %+v vs %+v", codec, n, i, g, w)
				}
			}
		}
	}
}

func TestDemuxResyncsAfterGarbage(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 3, 25, "libx264", 0)
	junk := make([]byte, 1000)
	rand.Read(junk)
	for i := range junk {
		if junk[i] == tsSyncByte {
			junk[i] = 0
		}
	}
	// Garbage before the stream, and a packet and a half cut out of the
	// middle of its second second.
	mid := len(ts) / 2 / tsPacketSize * tsPacketSize
	damaged := append(append(append([]byte{}, junk...), ts[:mid]...), ts[mid+tsPacketSize+94:]...)
	pieces, d := demuxAll(damaged, 4096)
	if d.resyncs == 0 {
		t.Error("no resync counted")
	}
	for _, p := range pieces {
		if len(p.Data) != tsPacketSize || p.Data[0] != tsSyncByte {
			t.Fatalf("a piece of %d bytes starting %#x", len(p.Data), p.Data[0])
		}
	}
	if keys := keyStarts(pieces); len(keys) != 3 {
		t.Fatalf("key frames at %v in the damaged stream, want 3", keys)
	}
}

func TestFirstPictureIsKey(t *testing.T) {
	tests := []struct {
		name         string
		codec        videoCodec
		buf          []byte
		key, decided bool
	}{
		{"h264 idr after sps pps", codecH264, []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88}, true, true},
		{"h264 idr after aud and sei", codecH264, []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x06, 5, 5, 0, 0, 1, 0x25}, true, true},
		{"h264 non-idr slice", codecH264, []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a}, false, true},
		{"h264 parameter sets only", codecH264, []byte{0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2}, false, false},
		{"h264 start code cut short", codecH264, []byte{0, 0, 1}, false, false},
		{"hevc idr_w_radl", codecHEVC, []byte{0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 1, 0, 0, 1, 0x26, 1}, true, true},
		{"hevc cra", codecHEVC, []byte{0, 0, 1, 0x2a, 1}, true, true},
		{"hevc trail_r", codecHEVC, []byte{0, 0, 1, 0x02, 1}, false, true},
		{"hevc vps only", codecHEVC, []byte{0, 0, 1, 0x40, 1}, false, false},
	}
	for _, tc := range tests {
		key, decided := firstPictureIsKey(tc.buf, tc.codec)
		if key != tc.key || decided != tc.decided {
			t.Errorf("%s: key %v decided %v, want %v %v", tc.name, key, decided, tc.key, tc.decided)
		}
	}
}

func TestPTSUnwrapsAcrossTheWrap(t *testing.T) {
	var u ptsUnwrapper
	steps := []int64{ptsWrap - 3000, ptsWrap - 1000, 500, 2500, 1000, ptsWrap - 500}
	want := []int64{ptsWrap - 3000, ptsWrap - 1000, ptsWrap + 500, ptsWrap + 2500, ptsWrap + 1000, ptsWrap - 500}
	for i, v := range steps {
		if got := u.unwrap(v); got != want[i] {
			t.Fatalf("step %d: unwrap(%d) = %d, want %d", i, v, got, want[i])
		}
	}
}

func TestSegmentsStartWithTablesAndKeyFrame(t *testing.T) {
	t.Parallel()
	ts := makeTS(t, 4, 25, "libx264", 0)
	pieces, d := demuxAll(ts, 1316)
	s := newSegmenter(time.Second)
	segs := s.flush(time.Now(), s.add(pieces, d.tables(), nil))
	if len(segs) != 4 {
		t.Fatalf("%d segments from 4 s, want 4", len(segs))
	}
	for i, seg := range segs {
		info, err := hls.InspectTS(seg.Data)
		if err != nil || !info.StartsWithKeyFrame || info.Width != 160 {
			t.Errorf("segment %d: key frame %v, %dx%d, err %v", i, info.StartsWithKeyFrame, info.Width, info.Height, err)
		}
		if !bytes.Equal(seg.Data[:2*tsPacketSize], d.tables()) {
			t.Errorf("segment %d does not start with the PAT and PMT", i)
		}
	}
}
