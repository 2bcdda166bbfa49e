package chunker

import (
	"context"
	"os"
	"testing"
	"time"
)

// benchChunker runs the chunker over the 6 s 1080p clip b.N times and
// reports its speed as a multiple of real time.
func benchChunker(b *testing.B, opts Options) {
	path, err := bench1080p()
	if err != nil {
		b.Fatal(err)
	}
	media := 6 * time.Second
	opts.TempDir = b.TempDir()
	chunks := 0
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		err = Run(context.Background(), f, opts, func(context.Context, Chunk) error { chunks++; return nil })
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	perRun := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(media.Seconds()/perRun.Seconds(), "x-realtime")
	b.ReportMetric(float64(chunks)/float64(b.N), "chunks/op")
}

// BenchmarkVideoChunks1080p: key-frame cut MPEG-TS chunks of 1080p H.264,
// copied without decoding.
func BenchmarkVideoChunks1080p(b *testing.B) {
	benchChunker(b, Options{Kinds: []Kind{KindVideo}, Duration: 2 * time.Second})
}

// BenchmarkFrames1fps1080p: one JPEG a second from 1080p H.264, which
// decodes every frame.
func BenchmarkFrames1fps1080p(b *testing.B) {
	benchChunker(b, Options{Kinds: []Kind{KindFrame}, FrameRate: 1})
}

// BenchmarkFrames1fps1080pScaled: the same, scaled to 640 wide as image
// engines usually want.
func BenchmarkFrames1fps1080pScaled(b *testing.B) {
	benchChunker(b, Options{Kinds: []Kind{KindFrame}, FrameRate: 1, MaxFrameWidth: 640})
}
