package mpegts

import (
	"testing"
	"time"
)

// BenchmarkDemux measures the demuxer on 10240-byte records (the protocol's
// default chunk size), with and without PES reassembly.
func BenchmarkDemux(b *testing.B) {
	ts := makeTS(b, 4, 25, "libx264", 0)
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"packets", nil},
		{"packets+pes", []Option{OnPES(func(*PES) {})}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(ts)))
			var out []Packet
			for b.Loop() {
				d := NewDemuxer(tc.opts...)
				for rest := ts; len(rest) > 0; {
					n := min(10240, len(rest))
					out = d.Feed(rest[:n], time.Time{}, out[:0])
					rest = rest[n:]
				}
				d.Flush(out[:0])
			}
		})
	}
}
