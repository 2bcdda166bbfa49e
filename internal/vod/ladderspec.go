package vod

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseLadder reads a ladder from a compact spec: comma-separated rungs of
// NAME=BITRATE, highest first, such as "1080p=5000k,720p=3000k,480p=1400k".
// NAME is the picture height followed by "p"; BITRATE is the video bit rate
// in bits per second with an optional k or M suffix. The rest follows the
// usual authoring rules: -maxrate 7 % above the bit rate, a 1.5 s VBV
// buffer, the High profile and 128 kb/s audio from 720p up, Main and
// 96 kb/s below. An empty spec is DefaultLadder.
func ParseLadder(spec string) ([]Rung, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return DefaultLadder(), nil
	}
	var ladder []Rung
	for _, item := range strings.Split(spec, ",") {
		name, rate, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("ladder rung %q: want NAME=BITRATE, e.g. 720p=3000k", item)
		}
		height, err := strconv.Atoi(strings.TrimSuffix(name, "p"))
		if err != nil || !strings.HasSuffix(name, "p") || height < 16 || height > 4320 || height%2 != 0 {
			return nil, fmt.Errorf("ladder rung %q: name must be an even height from 16 to 4320 followed by p, e.g. 720p", item)
		}
		bps, err := parseBitrate(rate)
		if err != nil {
			return nil, fmt.Errorf("ladder rung %q: %w", item, err)
		}
		r := Rung{Name: name, Height: height, VideoBitrate: bps, MaxBitrate: bps * 107 / 100, BufSize: bps * 3 / 2, Profile: "main", AudioBitrate: 96_000}
		if height >= 720 {
			r.Profile, r.AudioBitrate = "high", 128_000
		}
		if n := len(ladder); n > 0 && ladder[n-1].Height <= height {
			return nil, fmt.Errorf("ladder rung %q: rungs must go from the highest to the lowest", item)
		}
		ladder = append(ladder, r)
	}
	return ladder, nil
}

// parseBitrate reads "800000", "800k" or "5M" as bits per second.
func parseBitrate(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1_000, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 1_000_000_000/mult {
		return 0, fmt.Errorf("bit rate %q: want a positive number of bits per second, optionally with k or M", s)
	}
	return n * mult, nil
}
