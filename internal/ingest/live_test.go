package ingest

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/testenv"
)

func TestAudioSourcesBecomeMPEGTS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, format, codec, probeCodec string
		want                            sourceFormat
	}{
		{"aac in adts", "adts", "aac", "aac", formatADTS},
		{"mp3 with an id3 tag", "mp3", "libmp3lame", "mp3", formatMP3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := makeMedia(t, tc.format, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3",
				"-c:a", tc.codec, "-b:a", "64k")
			if got := sniffFormat(src[:mpegts.PacketSize+1], "application/octet-stream"); got != tc.want {
				t.Fatalf("sniffed %v, want %v", got, tc.want)
			}
			conv, err := converter(tc.want)
			if err != nil || conv == nil {
				t.Fatalf("converter for %v: %v", tc.want, err)
			}
			var ts []byte
			rng := rand.New(rand.NewPCG(1, 2))
			for rest := src; len(rest) > 0; {
				n := min(1+rng.IntN(3000), len(rest))
				out, err := conv(rest[:n])
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, out...)
				rest = rest[n:]
			}
			f := filepath.Join(t.TempDir(), "out.ts")
			if err := os.WriteFile(f, ts, 0o644); err != nil {
				t.Fatal(err)
			}
			testenv.RequireTool(t, "ffprobe")
			out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "csv=p=0", f).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			fields := strings.Fields(string(out))
			d, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
			if fields[0] != tc.probeCodec || d < 2.9 || d > 3.2 {
				t.Errorf("converted stream: %v, want %s lasting about 3 s", fields, tc.probeCodec)
			}
		})
	}
}

func TestSniffFormat(t *testing.T) {
	ts := make([]byte, mpegts.PacketSize+1)
	ts[0], ts[mpegts.PacketSize] = mpegts.SyncByte, mpegts.SyncByte
	tests := []struct {
		name        string
		head        []byte
		contentType string
		want        sourceFormat
	}{
		{"mpeg-ts bytes", ts, "", formatTS},
		{"adts bytes", []byte{0xff, 0xf1, 0x50, 0x80}, "", formatADTS},
		{"mp3 frame", []byte{0xff, 0xfb, 0x90, 0x64}, "", formatMP3},
		{"id3 tag", []byte("ID3\x04\x00"), "", formatMP3},
		{"icecast aac by type", []byte("????"), "audio/aacp", formatADTS},
		{"mp3 by type with parameters", []byte("????"), "audio/mpeg; charset=x", formatMP3},
		{"ts by type", []byte("????"), "video/MP2T", formatTS},
		{"html", []byte("<html>"), "text/html", formatUnknown},
	}
	for _, tc := range tests {
		if got := sniffFormat(tc.head, tc.contentType); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

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
