package vod

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// An upload whose bytes are a playlist or a list of files must fail with
// the container named, and nothing another file holds — another title's
// source, a private key, /etc/passwd — may reach the title's outputs, its
// error or its details. Before the demuxer allow-list, an HLS playlist
// naming another title's source became a "ready" title made of it.
func TestHostileUploadsNeverReadOtherFiles(t *testing.T) {
	e := newEnv(t)
	objects := filepath.Join(e.dir, "objects")
	other := filepath.Join(objects, "other", "source")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	secretTS := makeClip(t, other, "clip.ts", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts")
	marker := "weir-secret-marker"
	passwd := filepath.Join(e.dir, "passwd")
	os.WriteFile(passwd, []byte("root:x:0:0:"+marker+":/root:/bin/sh\n"), 0o600)
	key := filepath.Join(e.dir, "aes.key")
	os.WriteFile(key, []byte("0123456789abcdef"), 0o600)
	keyInfo := filepath.Join(e.dir, "keyinfo")
	os.WriteFile(keyInfo, []byte("file://"+key+"\n"+key+"\n"), 0o600)

	// The work copy sits at work/<id>/attempt-1/source.<ext>: three levels
	// below the data dir that also holds objects/.
	const up = "../../../objects/other/"
	hlsOf := func(name string, opts ...string) string {
		dir := filepath.Join(objects, "other", name)
		os.MkdirAll(dir, 0o755)
		makeClip(t, dir, "index.m3u8", append([]string{"-i", secretTS, "-c", "copy", "-bsf:a", "aac_adtstoasc",
			"-f", "hls", "-hls_time", "10", "-hls_playlist_type", "vod"}, opts...)...)
		pl, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(pl), "\nindex", "\n"+up+name+"/index")
	}
	encrypted := hlsOf("enc", "-hls_key_info_file", keyInfo)
	fragmented := strings.ReplaceAll(hlsOf("fmp4", "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"),
		`URI="init.mp4"`, `URI="file://`+filepath.Join(objects, "other", "fmp4", "init.mp4")+`"`)
	playlist := func(uris ...string) string {
		s := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-PLAYLIST-TYPE:VOD\n"
		for _, u := range uris {
			s += "#EXTINF:2.0,\n" + u + "\n"
		}
		return s + "#EXT-X-ENDLIST\n"
	}
	jpeg := makeClip(t, t.TempDir(), "frame.jpg", "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1")
	jpegBytes, _ := os.ReadFile(jpeg)

	hls := regexp.MustCompile(`^unsupported container hls: `)
	tests := []struct {
		name, file, content string
		want                *regexp.Regexp
	}{
		{"hls file URI", "film.mp4", playlist("file://" + secretTS), hls},
		{"hls relative path", "film.m3u8", playlist(up + "source/clip.ts"), hls},
		{"hls passwd", "film.ts", playlist("file://" + passwd), hls},
		{"hls key URI", "film.mp4", encrypted, hls},
		{"hls map URI", "film.mp4", fragmented, hls},
		{"hls concat URI", "film.mp4", playlist("concat:" + secretTS + "|" + secretTS), hls},
		{"hls subfile URI", "film.mp4", playlist("subfile,,start,0,end,0,,:" + secretTS), hls},
		{"ffconcat", "film.mp4", "ffconcat version 1.0\nfile '" + up + "source/clip.ts'\n", regexp.MustCompile(`^unsupported container concat: `)},
		{"image2 glob", "frame*.jpg", string(jpegBytes), regexp.MustCompile(`^the file is not audio or video`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(file, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			id, job := e.upload(t, file)
			if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			st := e.stream(t, id)
			if st.Status != metastore.StatusFailed || !tt.want.MatchString(st.Error) {
				t.Fatalf("status %s error %q, want failed matching %s", st.Status, st.Error, tt.want)
			}
			assertNoOutput(t, e, id)
			record, _ := json.Marshal(st)
			for _, secret := range [][]byte{[]byte(marker), []byte("0123456789abcdef")} {
				if bytes.Contains(record, secret) {
					t.Errorf("the stream record carries a secret file's bytes: %s", record)
				}
			}
		})
	}
}
