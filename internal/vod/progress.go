package vod

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// readProgress reads ffmpeg's -progress output (blocks of key=value lines,
// each ending with progress=continue or progress=end) and calls fn at the
// end of every block with the output time reached so far. Blocks without
// a usable out_time_us (ffmpeg writes N/A before the first frame) report
// the last known time. It returns when r ends.
func readProgress(r io.Reader, fn func(outTime time.Duration, end bool)) {
	sc := bufio.NewScanner(r)
	var last time.Duration
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch key {
		case "out_time_us":
			if us, err := strconv.ParseInt(val, 10, 64); err == nil && us >= 0 {
				last = time.Duration(us) * time.Microsecond
			}
		case "progress":
			fn(last, val == "end")
		}
	}
	// Drain what is left so ffmpeg never blocks writing to a full pipe.
	_, _ = io.Copy(io.Discard, r)
}
