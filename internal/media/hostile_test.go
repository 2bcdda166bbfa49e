package media

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// hostileFixture is a directory with media an attacker would like to read
// (a "secret" clip and a private text file) and crafted inputs pointing at
// them.
type hostileFixture struct {
	dir, secretTS, secretText, upload string
}

func newHostileFixture(t *testing.T) *hostileFixture {
	t.Helper()
	dir := t.TempDir()
	f := &hostileFixture{dir: dir, upload: filepath.Join(dir, "upload")}
	for _, d := range []string{"secret", "upload"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.secretTS = filepath.Join(dir, "secret", "clip.ts")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine", "-t", "2",
		"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts", f.secretTS)
	f.secretText = filepath.Join(dir, "secret", "passwd")
	if err := os.WriteFile(f.secretText, []byte("root:x:0:0:weir-secret-marker:/root:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
	if b, err := exec.Command("ffmpeg", full...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
}

// hlsOf packages the secret clip as HLS under secret/<name>/ with extra
// ffmpeg options and returns the playlist text with its URIs rewritten by
// fix.
func (f *hostileFixture) hlsOf(t *testing.T, name string, fix func(string) string, opts ...string) string {
	t.Helper()
	out := filepath.Join(f.dir, "secret", name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-i", f.secretTS, "-c", "copy", "-f", "hls", "-hls_time", "10", "-hls_playlist_type", "vod"}, opts...)
	ffmpeg(t, append(args, filepath.Join(out, "index.m3u8"))...)
	pl, err := os.ReadFile(filepath.Join(out, "index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	return fix(string(pl))
}

func (f *hostileFixture) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(f.upload, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hlsPlaylist(uris ...string) string {
	s := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-PLAYLIST-TYPE:VOD\n"
	for _, u := range uris {
		s += "#EXTINF:2.0,\n" + u + "\n"
	}
	return s + "#EXT-X-ENDLIST\n"
}

// Every way a file's bytes can make ffmpeg read another file must be
// refused, naming the container ffprobe detected: a title made of someone
// else's media, or of /etc/passwd, is the failure this guards against.
func TestProbeRefusesInputsThatReadOtherFiles(t *testing.T) {
	needFFprobe(t)
	f := newHostileFixture(t)
	rel, err := filepath.Rel(f.upload, f.secretTS)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(f.dir, "secret", "aes.key")
	os.WriteFile(key, []byte("0123456789abcdef"), 0o600)
	keyInfo := filepath.Join(f.dir, "secret", "keyinfo")
	os.WriteFile(keyInfo, []byte("file://"+key+"\n"+key+"\n"), 0o600)
	encrypted := f.hlsOf(t, "enc", func(pl string) string {
		return strings.ReplaceAll(pl, "\nindex", "\n../secret/enc/index")
	}, "-hls_key_info_file", keyInfo)
	if !strings.Contains(encrypted, "#EXT-X-KEY:METHOD=AES-128,URI=\"file://") {
		t.Fatalf("the encrypted playlist has no file:// key URI:\n%s", encrypted)
	}
	fragmented := f.hlsOf(t, "fmp4", func(pl string) string {
		pl = strings.ReplaceAll(pl, `URI="init.mp4"`, `URI="file://`+filepath.Join(f.dir, "secret", "fmp4", "init.mp4")+`"`)
		return strings.ReplaceAll(pl, "\nindex", "\n../secret/fmp4/index")
	}, "-bsf:a", "aac_adtstoasc", "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4")
	if !strings.Contains(fragmented, "#EXT-X-MAP:URI=\"file://") {
		t.Fatalf("the fMP4 playlist has no file:// map URI:\n%s", fragmented)
	}

	tests := []struct {
		name, file, content string
		container           string
	}{
		{"hls naming a file:// URI", "source.mp4", hlsPlaylist("file://" + f.secretTS), "hls"},
		{"hls naming /etc/passwd-like text", "source.mp4", hlsPlaylist("file://" + f.secretText), "hls"},
		{"hls with a relative path out of the work dir", "source.m3u8", hlsPlaylist(rel), "hls"},
		{"hls with an EXT-X-KEY file:// URI", "source.ts", encrypted, "hls"},
		{"hls with an EXT-X-MAP file:// URI", "source.mp4", fragmented, "hls"},
		{"hls naming a concat: URI", "source.mp4", hlsPlaylist("concat:" + f.secretTS + "|" + f.secretTS), "hls"},
		{"hls naming a subfile URI", "source.mp4", hlsPlaylist("subfile,,start,0,end,0,,:" + f.secretTS), "hls"},
		{"ffconcat listing another file", "source.mp4", "ffconcat version 1.0\nfile '" + rel + "'\n", "concat"},
		{"ffconcat with safe paths", "source.ffconcat", "ffconcat version 1.0\nfile clip.ts\n", "concat"},
	}
	os.WriteFile(filepath.Join(f.upload, "clip.ts"), mustRead(t, f.secretTS), 0o644)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := f.write(t, tt.file, tt.content)
			info, err := Probe(context.Background(), path)
			var uc *UnsupportedContainerError
			if !errors.As(err, &uc) || uc.Format != tt.container || !errors.Is(err, ErrNoMedia) {
				t.Fatalf("Probe = %+v, %v; want unsupported container %s (wrapping ErrNoMedia)", info, err, tt.container)
			}
			if !strings.Contains(err.Error(), "unsupported container "+tt.container) {
				t.Errorf("error %q does not name the container", err)
			}
			if strings.Contains(err.Error(), "weir-secret-marker") {
				t.Errorf("error %q carries the secret file's bytes", err)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A path is only ever a local file: names that ffmpeg would read as
// another protocol, or as an image sequence pattern, are refused.
func TestProbeReadsOnlyTheNamedFile(t *testing.T) {
	needFFprobe(t)
	f := newHostileFixture(t)
	for i := 1; i <= 3; i++ {
		ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", filepath.Join(f.upload, "frame"+string(rune('0'+i))+".jpg"))
	}
	secret := mustRead(t, f.secretTS)
	tests := []struct{ name, input string }{
		{"concat: protocol", "concat:" + f.secretTS + "|" + f.secretTS},
		{"subfile protocol", "subfile,,start,0,end,0,,:" + f.secretTS},
		{"data: URI", "data:video/mp2t;base64," + base64.StdEncoding.EncodeToString(secret)},
		{"file: URI of a playlist", "file:" + f.write(t, "x.m3u8", hlsPlaylist("file://"+f.secretTS))},
		{"image2 glob", filepath.Join(f.upload, "frame*.jpg")},
		{"image2 sequence pattern", filepath.Join(f.upload, "frame%d.jpg")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Probe(context.Background(), tt.input)
			if err == nil || !errors.Is(err, ErrNoMedia) {
				t.Fatalf("Probe(%.60s) = %+v, %v; want ErrNoMedia", tt.input, info, err)
			}
		})
	}
	// The real file named plainly still probes.
	if _, err := Probe(context.Background(), f.secretTS); err != nil {
		t.Fatalf("the plain clip: %v", err)
	}
}

func TestProbeURLFetchesOnlyHTTPMedia(t *testing.T) {
	needFFprobe(t)
	f := newHostileFixture(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/clip.ts", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, f.secretTS) })
	mux.HandleFunc("/live.m3u8", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(hlsPlaylist("file://" + f.secretTS)))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if info, err := ProbeURL(context.Background(), srv.URL+"/clip.ts"); err != nil || info.Demuxer() != "mpegts" {
		t.Fatalf("ProbeURL of a clip = %+v, %v; want mpegts", info, err)
	}
	var uc *UnsupportedContainerError
	if _, err := ProbeURL(context.Background(), srv.URL+"/live.m3u8"); !errors.As(err, &uc) || uc.Format != "hls" {
		t.Fatalf("ProbeURL of a playlist: %v, want unsupported container hls", err)
	}
	for _, u := range []string{"file://" + f.secretTS, "concat:" + f.secretTS, f.secretTS} {
		if _, err := ProbeURL(context.Background(), u); err == nil || !strings.Contains(err.Error(), "only http:// and https://") {
			t.Errorf("ProbeURL(%s) = %v, want a refusal", u, err)
		}
	}
}

func TestInputArgsPinTheDemuxerAndProtocols(t *testing.T) {
	got := strings.Join(InputArgs(ProtocolsFile, "mov"), " ")
	want := "-protocol_whitelist file -format_whitelist " + strings.Join(Demuxers, ",") + " -f mov"
	if got != want {
		t.Fatalf("InputArgs = %q, want %q", got, want)
	}
	for _, bad := range []string{"hls", "dash", "concat", "image2", "imf", "webm_dash_manifest", "tty"} {
		for _, d := range Demuxers {
			if d == bad {
				t.Errorf("%s is on the demuxer allow-list", bad)
			}
		}
	}
}

func needFFprobe(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "ffprobe")
}
