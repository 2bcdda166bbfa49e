package mpegts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// makeMedia runs ffmpeg with args (inputs and codecs, no output) and
// returns what it wrote in format.
func makeMedia(t testing.TB, format string, args ...string) []byte {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
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
	d := strconv.Itoa(seconds)
	args := []string{
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=" + d,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=" + d,
		"-c:v", codec, "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "32k", "-output_ts_offset", strconv.FormatFloat(offset, 'f', -1, 64),
	}
	switch codec {
	case "libx264":
		args = append(args, "-preset", "ultrafast", "-sc_threshold", "0")
	case "libx265":
		args = append(args, "-preset", "ultrafast", "-x265-params", "log-level=error:scenecut=0")
	}
	return makeMedia(t, "mpegts", args...)
}

// makeMP3TS makes seconds of a tone as MP3 in MPEG-TS, without video.
func makeMP3TS(t testing.TB, seconds int) []byte {
	t.Helper()
	return makeMedia(t, "mpegts", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration="+strconv.Itoa(seconds),
		"-c:a", "libmp3lame", "-b:a", "64k")
}

// demuxAll feeds data in pieces of size n and returns every packet,
// flushed, every PES and every error.
func demuxAll(data []byte, n int) (pkts []Packet, pes []*PES, errs []error, d *Demuxer) {
	d = NewDemuxer(OnPES(func(p *PES) { pes = append(pes, p) }), OnError(func(err error) { errs = append(errs, err) }))
	at := time.Unix(1, 0)
	for len(data) > 0 {
		k := min(n, len(data))
		pkts = d.Feed(data[:k], at, pkts)
		data = data[k:]
	}
	return d.Flush(pkts), pes, errs, d
}

// probed is ffprobe's view of a file: its streams and packets.
type probed struct {
	Streams []struct {
		Index     int    `json:"index"`
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		ID        string `json:"id"` // the PID, "0x100"
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTS         *int64 `json:"pts"`
		Flags       string `json:"flags"`
	} `json:"packets"`
}

// probe runs ffprobe -show_packets -show_streams on data.
func probe(t testing.TB, data []byte) probed {
	t.Helper()
	testenv.RequireTool(t, "ffprobe")
	f := filepath.Join(t.TempDir(), "probe.ts")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_packets",
		"-show_entries", "packet=stream_index,pts,flags:stream=index,codec_name,codec_type,id", "-of", "json", f).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// pid returns the PID of ffprobe's stream i.
func (p probed) pid(t testing.TB, i int) uint16 {
	t.Helper()
	v, err := strconv.ParseUint(p.Streams[i].ID, 0, 16)
	if err != nil {
		t.Fatalf("stream id %q: %v", p.Streams[i].ID, err)
	}
	return uint16(v)
}

// toTicks converts a duration from the demuxer back to 90 kHz ticks.
func toTicks(d time.Duration) int64 {
	return (int64(d)*9 + 50000) / 100000
}
