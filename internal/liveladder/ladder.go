// Package liveladder is the live transcoder (the liveladder role): for
// every live stream with an ABR ladder it reads the stream's MPEG-TS from
// its stream topic, runs one ffmpeg that encodes every rung at once with
// the source's key frames, and writes each rung's MPEG-TS to the rung's
// rendition topic (protocol.RenditionTopic). The live packager packages
// those topics as the stream's renditions. docs/live.md describes it.
package liveladder

import (
	"fmt"
	"strings"

	"github.com/weir-media/weir/internal/vod"
)

// MaxRungs is the most rungs a live ladder may have.
const MaxRungs = 6

// Parse reads a live ladder: rungs as the VOD ladder writes them
// (vod.ParseLadder), "480p=1400k", highest first. No items is no ladder
// (nil, nil), not the VOD default.
func Parse(items []string) ([]vod.Rung, error) {
	var parts []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			parts = append(parts, it)
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	if len(parts) > MaxRungs {
		return nil, fmt.Errorf("a live ladder has at most %d rungs, not %d", MaxRungs, len(parts))
	}
	for _, p := range parts {
		if strings.Contains(p, ",") {
			return nil, fmt.Errorf("ladder rung %q: one rung per item", p)
		}
	}
	return vod.ParseLadder(strings.Join(parts, ","))
}

// ParseSpec reads a comma-separated ladder, as --live-ladder takes it; ""
// is no ladder.
func ParseSpec(spec string) ([]vod.Rung, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	return Parse(strings.Split(spec, ","))
}

// Specs writes rungs back as items Parse reads ("480p=1400k"): what a
// stream's row keeps in variants_generated.
func Specs(rungs []vod.Rung) []string {
	out := make([]string, 0, len(rungs))
	for _, r := range rungs {
		rate := fmt.Sprint(r.VideoBitrate)
		switch {
		case r.VideoBitrate%1_000_000 == 0:
			rate = fmt.Sprintf("%dM", r.VideoBitrate/1_000_000)
		case r.VideoBitrate%1_000 == 0:
			rate = fmt.Sprintf("%dk", r.VideoBitrate/1_000)
		}
		out = append(out, r.Name+"="+rate)
	}
	return out
}
