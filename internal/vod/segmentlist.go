package vod

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// listedSegment is a finished segment as ffmpeg's own playlist lists it.
type listedSegment struct {
	Name     string
	Duration time.Duration
}

// parseSegmentList reads the playlist ffmpeg's HLS muxer keeps in a
// rendition's work directory. ffmpeg adds a segment to it only once the
// segment file is complete (and, with the temp_file flag, renames the
// playlist into place atomically), so everything listed is safe to upload.
// It returns the segments in order and whether ffmpeg has ended the list.
// Names must be plain file names: anything with a path separator or a
// parent reference is rejected, so a bad list cannot make weir read
// outside the work directory.
func parseSegmentList(data []byte) (segs []listedSegment, ended bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var pending *time.Duration
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "":
		case strings.HasPrefix(s, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(s, "#EXTINF:"), ",")
			sec, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || sec < 0 || sec > 86400 {
				return nil, false, fmt.Errorf("line %d: bad EXTINF duration %q", line, v)
			}
			d := time.Duration(roundToMicros(sec * float64(time.Second)))
			pending = &d
		case s == "#EXT-X-ENDLIST":
			ended = true
		case strings.HasPrefix(s, "#"):
		default:
			if pending == nil {
				return nil, false, fmt.Errorf("line %d: segment %q without EXTINF", line, s)
			}
			if strings.ContainsAny(s, `/\`) || s == "." || s == ".." || strings.ContainsRune(s, 0) {
				return nil, false, fmt.Errorf("line %d: segment name %q is not a plain file name", line, s)
			}
			segs = append(segs, listedSegment{Name: s, Duration: *pending})
			pending = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, false, err
	}
	return segs, ended, nil
}

// roundToMicros rounds a float number of nanoseconds to the nearest microsecond,
// the precision of segment rows, so 4.000000 s is exactly 4 s.
func roundToMicros(ns float64) int64 {
	us := int64(ns/1000 + 0.5)
	return us * 1000
}
