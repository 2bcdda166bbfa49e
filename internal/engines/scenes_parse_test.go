package engines

import (
	"bufio"
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"strings"
	"testing"
)

// tinyJPEG encodes a w×h picture with Go's encoder.
func tinyJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadJPEGSplitsAStreamOfPictures(t *testing.T) {
	a, b := tinyJPEG(t, 16, 8), tinyJPEG(t, 33, 17)
	r := bufio.NewReader(bytes.NewReader(append(append([]byte{}, a...), b...)))
	for i, want := range [][]byte{a, b} {
		got, err := readJPEG(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("picture %d: %d bytes, %v; want %d bytes", i, len(got), err, len(want))
		}
	}
	if _, err := readJPEG(r); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last picture: %v, want io.EOF", err)
	}
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"not a JPEG":   {[]byte("GIF89a"), errNotJPEG},
		"cut short":    {a[:len(a)/2], io.ErrUnexpectedEOF},
		"one byte":     {a[:1], io.ErrUnexpectedEOF},
		"bad length":   {[]byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x01}, errNotJPEG},
		"second SOI":   {[]byte{0xff, 0xd8, 0xff, 0xd8}, errNotJPEG},
		"junk segment": {[]byte{0xff, 0xd8, 0x12}, errNotJPEG},
	} {
		if _, err := readJPEG(bufio.NewReader(bytes.NewReader(tc.in))); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzReadJPEG: any bytes end in pictures, io.EOF or an error; never a
// panic, and every picture returned starts with SOI and ends with EOI.
func FuzzReadJPEG(f *testing.F) {
	f.Add(tinyJPEG(f, 8, 8))
	f.Add(append(tinyJPEG(f, 9, 3), tinyJPEG(f, 4, 4)...))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xda, 0x00, 0x02, 0x12, 0xff, 0x00, 0xff, 0xd3, 0xff, 0xff, 0xd9})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 64 {
			pic, err := readJPEG(r)
			if err != nil {
				return
			}
			if len(pic) < 4 || pic[0] != 0xff || pic[1] != 0xd8 || pic[len(pic)-2] != 0xff || pic[len(pic)-1] != 0xd9 {
				t.Fatalf("picture % x is not SOI...EOI", pic)
			}
		}
	})
}

func TestSceneLogReadsCutsAndTicks(t *testing.T) {
	lines := []string{
		"[showinfo@tick @ 0x55] config in time_base: 1/1000000, frame_rate: 30/1",
		"[metadata@cut @ 0x56] frame:0    pts:0       pts_time:0",
		"[metadata@cut @ 0x56] lavfi.scene_score=0.000000",
		"[showinfo@tick @ 0x55] n:   0 pts:      0 pts_time:0       pos:      564 fmt:yuv420p",
		"[showinfo@tick @ 0x55] color_range:unknown color_space:unknown",
		"[metadata@cut @ 0x56] frame:1    pts:216000  pts_time:2.4",
		"[metadata@cut @ 0x56] lavfi.scene_score=0.736041",
		"[showinfo@tick @ 0x55] n:   1 pts:  90000 pts_time:3.0333 pos: 9",
		"frame=  2 fps=0.0 q=5.0 size=  9kB time=00:00:03.03",
	}
	var p sceneLog
	var got []sceneEvent
	for _, l := range lines {
		ev, ok, err := p.line(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if ok {
			got = append(got, ev)
		}
	}
	want := []sceneEvent{{cut: true}, {}, {cut: true, ms: 2400, score: 0.736041}, {ms: 3033}}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		"[metadata@cut @ 0x56] lavfi.scene_score=0.5",
		"[metadata@cut @ 0x56] frame:1 pts:1 pts_time:nan",
		"[showinfo@tick @ 0x55] n:   1 pts:  90000 pts_time:x",
	} {
		var p sceneLog
		if _, _, err := p.line(bad); err == nil || !strings.Contains(err.Error(), "ffmpeg log") {
			t.Errorf("%q: %v, want an error", bad, err)
		}
	}
	var q sceneLog
	q.line("[metadata@cut @ 0x56] frame:1 pts:1 pts_time:1")
	if _, _, err := q.line("[metadata@cut @ 0x56] lavfi.scene_score=7"); err == nil {
		t.Error("a score over 1 was taken")
	}
}

// FuzzSceneLog: any log lines give events with times >= 0 and scores in
// [0, 1], or errors; never a panic.
func FuzzSceneLog(f *testing.F) {
	f.Add("[metadata@cut @ 0x56] frame:1    pts:216000  pts_time:2.4\n[metadata@cut @ 0x56] lavfi.scene_score=0.736041")
	f.Add("[showinfo@tick @ 0x55] n:   1 pts:  90000 pts_time:3.0333 pos: 9")
	f.Add("[metadata@cut @ 0x56] pts_time:-1e308\n[metadata@cut]lavfi.scene_score=1")
	f.Fuzz(func(t *testing.T, log string) {
		var p sceneLog
		for _, l := range strings.Split(log, "\n") {
			ev, ok, err := p.line(l)
			if err != nil || !ok {
				continue
			}
			if ev.ms < 0 || ev.score < 0 || ev.score > 1 {
				t.Fatalf("%q gave %+v", l, ev)
			}
		}
	})
}
