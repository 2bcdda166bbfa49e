package hls

import (
	"math"
	"time"
)

// SegmentSize is one segment's size and duration, the input of the bit-rate
// measurements behind BANDWIDTH and AVERAGE-BANDWIDTH.
type SegmentSize struct {
	Bytes    int64
	Duration time.Duration
}

// PeakBitrate is the peak segment bit rate of a rendition in bits per
// second, as the HLS specification (RFC 8216bis, section 4.4.6.2) defines
// it for BANDWIDTH: the largest bit rate of any contiguous run of segments
// whose total duration lies between 0.5 and 1.5 times the target duration,
// a run's bit rate being its total size over its total duration. When no
// run qualifies (a title shorter than half a target duration), it is the
// bit rate of the whole. Segments without a positive duration are ignored.
// The result is rounded up, so a player that trusts it never underruns.
func PeakBitrate(segs []SegmentSize, target time.Duration) int64 {
	lo, hi := target/2, target+target/2
	var peak float64
	found := false
	for i := range segs {
		var bytes int64
		var dur time.Duration
		for j := i; j < len(segs); j++ {
			if segs[j].Duration <= 0 {
				continue
			}
			bytes += segs[j].Bytes
			dur += segs[j].Duration
			if dur > hi {
				break
			}
			if dur >= lo {
				found = true
				peak = math.Max(peak, bitrate(bytes, dur))
			}
		}
	}
	if !found {
		return AverageBitrate(segs)
	}
	return int64(math.Ceil(peak))
}

// AverageBitrate is the mean bit rate of a rendition in bits per second
// (AVERAGE-BANDWIDTH): the total size of its segments over their total
// duration, rounded up. It is 0 when the total duration is not positive.
func AverageBitrate(segs []SegmentSize) int64 {
	var bytes int64
	var dur time.Duration
	for _, s := range segs {
		if s.Duration > 0 {
			bytes += s.Bytes
			dur += s.Duration
		}
	}
	if dur <= 0 {
		return 0
	}
	return int64(math.Ceil(bitrate(bytes, dur)))
}

func bitrate(bytes int64, dur time.Duration) float64 {
	return float64(bytes) * 8 / dur.Seconds()
}
