package engines

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file reads the parts of ffmpeg's log the filter engines (loudness,
// silence, black) share: which filter wrote a line, how far ffmpeg has
// got in the media, and times in seconds.

// progressArgs make ffmpeg report how far it got in the media: an
// "out_time_us=" line on stderr twice a second of wall time and once at
// the end. The filter engines advance their bound with it while their
// filters have nothing to say.
var progressArgs = []string{"-progress", "pipe:2", "-stats_period", "0.5"}

// outTimeMs reads a progress report's "out_time_us=N" line: the media
// time ffmpeg has written, in ms. ok is false for other lines and for
// "N/A" or negative values.
func outTimeMs(line string) (ms int64, ok bool) {
	v, found := strings.CutPrefix(line, "out_time_us=")
	if !found {
		return 0, false
	}
	us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || us < 0 {
		return 0, false
	}
	return (us + 500) / 1000, true
}

// filterLine splits a filter's log line, "[name @ 0x55d0c8] message",
// into the filter's name and the message.
func filterLine(line string) (name, msg string, ok bool) {
	rest, found := strings.CutPrefix(line, "[")
	if !found {
		return "", "", false
	}
	head, msg, found := strings.Cut(rest, "] ")
	if !found {
		return "", "", false
	}
	name, _, found = strings.Cut(head, " @ ")
	if !found {
		return "", "", false
	}
	return name, msg, true
}

// secondsMs turns a time in seconds as ffmpeg logs it ("3.50002") into
// ms, rounded, never below 0.
func secondsMs(s string) (int64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
		return 0, false
	}
	return max(0, int64(math.Round(f*1000))), true
}

// secondsArg writes a duration in seconds for a filter argument.
func secondsArg(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// noStreamError names the problem when ffmpeg failed because the input
// has no stream of the kind ("audio", "video") the engine maps.
func noStreamError(err error, kind string) error {
	if err != nil && strings.Contains(err.Error(), "matches no streams") {
		return fmt.Errorf("the input has no %s stream: %w", kind, err)
	}
	return err
}
