package hls

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxPlaylistLines bounds how many lines ParseMediaPlaylist and
// ParseMasterPlaylist read: a real playlist of a day-long title at 2 s
// segments has about 130 000.
const MaxPlaylistLines = 1 << 20

// ParseMediaPlaylist reads a media playlist as weir's packagers write it
// (see MediaPlaylist.Encode) so another rendition can mirror its segments:
// EXT-X-VERSION, TARGETDURATION, MEDIA-SEQUENCE, DISCONTINUITY-SEQUENCE,
// PLAYLIST-TYPE, INDEPENDENT-SEGMENTS, I-FRAMES-ONLY, MAP, ENDLIST and, per
// segment, EXTINF, BYTERANGE, DISCONTINUITY, PROGRAM-DATE-TIME and MAP, and
// the low-latency tags (PART-INF, SERVER-CONTROL, SKIP, PART, PRELOAD-HINT,
// RENDITION-REPORT; parts after the last segment are TrailingParts). Other
// tags are skipped, as RFC 8216 tells clients to. What it returns encodes
// back to an equivalent playlist.
//
// Input is untrusted: a missing #EXTM3U, a master playlist, a URI without
// EXTINF, a negative, non-finite or absurd (over a day) duration, a
// malformed attribute or number is an error naming the line; nothing
// panics.
func ParseMediaPlaylist(data []byte) (*MediaPlaylist, error) {
	p := &MediaPlaylist{}
	var pending *Segment
	seenHeader := false
	err := eachLine(data, func(n int, line string) error {
		if !seenHeader {
			if line != "#EXTM3U" {
				return fmt.Errorf("line %d: want #EXTM3U first, got %q", n, clip(line))
			}
			seenHeader = true
			return nil
		}
		if !strings.HasPrefix(line, "#") {
			if pending == nil {
				return fmt.Errorf("line %d: URI %q has no #EXTINF before it", n, clip(line))
			}
			pending.URI = line
			if err := checkURI(line); err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			p.Segments = append(p.Segments, *pending)
			pending = nil
			return nil
		}
		tag, value, _ := strings.Cut(line, ":")
		if pending == nil {
			pending = &Segment{}
		}
		if err := p.mediaTag(tag, value, pending); err != nil {
			return fmt.Errorf("line %d: %s: %w", n, tag, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !seenHeader {
		return nil, errors.New("empty playlist: no #EXTM3U")
	}
	if pending != nil {
		// The parts of the segment in progress follow the last segment; a
		// PROGRAM-DATE-TIME may come with them.
		if pending.Duration != 0 || pending.Discontinuity || pending.ByteRange != nil || pending.Map != nil ||
			len(pending.Parts) == 0 && !pending.ProgramDateTime.IsZero() {
			return nil, errors.New("playlist ends inside a segment: tags without a URI after them")
		}
		p.TrailingParts = pending.Parts
	}
	return p, nil
}

// mediaTag applies one tag to the playlist or to the segment being read.
func (p *MediaPlaylist) mediaTag(tag, value string, seg *Segment) error {
	var err error
	switch tag {
	case "#EXT-X-STREAM-INF", "#EXT-X-MEDIA", "#EXT-X-I-FRAME-STREAM-INF":
		return errors.New("this is a master playlist, not a media playlist")
	case "#EXT-X-VERSION":
		p.Version, err = smallInt(value, 100)
	case "#EXT-X-TARGETDURATION":
		p.TargetDuration, err = smallInt(value, 86400)
	case "#EXT-X-MEDIA-SEQUENCE":
		p.MediaSequence, err = strconv.ParseUint(value, 10, 63)
	case "#EXT-X-DISCONTINUITY-SEQUENCE":
		p.DiscontinuitySequence, err = strconv.ParseUint(value, 10, 63)
	case "#EXT-X-PLAYLIST-TYPE":
		switch PlaylistType(value) {
		case Event, VOD:
			p.Type = PlaylistType(value)
		default:
			err = fmt.Errorf("want EVENT or VOD, got %q", clip(value))
		}
	case "#EXT-X-INDEPENDENT-SEGMENTS":
		p.IndependentSegments = true
	case "#EXT-X-I-FRAMES-ONLY":
		p.IFramesOnly = true
	case "#EXT-X-ENDLIST":
		p.Ended = true
	case "#EXT-X-MAP":
		if len(p.Segments) == 0 && p.Map == nil {
			p.Map, err = parseMap(value)
		} else {
			seg.Map, err = parseMap(value)
		}
	case "#EXT-X-PART-INF":
		p.PartTarget, err = parsePartInf(value)
	case "#EXT-X-SERVER-CONTROL":
		p.ServerControl, err = parseServerControl(value)
	case "#EXT-X-SKIP":
		p.SkippedSegments, err = parseSkip(value)
	case "#EXT-X-PART":
		var pt Part
		if pt, err = parsePart(value); err == nil {
			seg.Parts = append(seg.Parts, pt)
		}
	case "#EXT-X-PRELOAD-HINT":
		p.PreloadHint, err = parsePreloadHint(value)
	case "#EXT-X-RENDITION-REPORT":
		var r RenditionReport
		if r, err = parseRenditionReport(value); err == nil {
			p.RenditionReports = append(p.RenditionReports, r)
		}
	case "#EXTINF":
		seg.Duration, seg.Title, err = parseExtinf(value)
	case "#EXT-X-BYTERANGE":
		seg.ByteRange, err = parseByteRange(value)
	case "#EXT-X-DISCONTINUITY":
		seg.Discontinuity = true
	case "#EXT-X-PROGRAM-DATE-TIME":
		seg.ProgramDateTime, err = time.Parse(time.RFC3339Nano, value)
	}
	return err
}

// Variant URIs and renditions of a master playlist, as
// ParseMasterPlaylist reads them.
type MasterInfo struct {
	// Variants are the URIs of the EXT-X-STREAM-INF entries, in order.
	Variants []string
	// Groups maps each EXT-X-MEDIA TYPE to the GROUP-IDs it uses, so a
	// caller adding a rendition can avoid a group that exists.
	Groups map[string][]string
	// SessionData lists the DATA-IDs of EXT-X-SESSION-DATA entries.
	SessionData []string
}

// ParseMasterPlaylist reads what a caller needs to extend a master
// (multivariant) playlist: its variants' URIs and its rendition groups. A
// playlist without #EXTM3U, with a media segment, without a variant or
// with an EXT-X-STREAM-INF not followed by a URI is an error.
func ParseMasterPlaylist(data []byte) (*MasterInfo, error) {
	m := &MasterInfo{Groups: map[string][]string{}}
	seenHeader, wantURI := false, false
	err := eachLine(data, func(n int, line string) error {
		switch {
		case !seenHeader:
			if line != "#EXTM3U" {
				return fmt.Errorf("line %d: want #EXTM3U first, got %q", n, clip(line))
			}
			seenHeader = true
		case wantURI:
			if strings.HasPrefix(line, "#") {
				return nil // tags may come between EXT-X-STREAM-INF and its URI
			}
			if err := checkURI(line); err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			m.Variants = append(m.Variants, line)
			wantURI = false
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			if _, err := parseAttrs(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:")); err != nil {
				return fmt.Errorf("line %d: EXT-X-STREAM-INF: %w", n, err)
			}
			wantURI = true
		case strings.HasPrefix(line, "#EXTINF:"), strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			return fmt.Errorf("line %d: this is a media playlist, not a master playlist", n)
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			a, err := parseAttrs(strings.TrimPrefix(line, "#EXT-X-MEDIA:"))
			if err != nil {
				return fmt.Errorf("line %d: EXT-X-MEDIA: %w", n, err)
			}
			m.Groups[a["TYPE"]] = append(m.Groups[a["TYPE"]], a["GROUP-ID"])
		case strings.HasPrefix(line, "#EXT-X-SESSION-DATA:"):
			a, err := parseAttrs(strings.TrimPrefix(line, "#EXT-X-SESSION-DATA:"))
			if err != nil {
				return fmt.Errorf("line %d: EXT-X-SESSION-DATA: %w", n, err)
			}
			m.SessionData = append(m.SessionData, a["DATA-ID"])
		case !strings.HasPrefix(line, "#"):
			return fmt.Errorf("line %d: URI %q is not after an EXT-X-STREAM-INF", n, clip(line))
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, err
	case !seenHeader:
		return nil, errors.New("empty playlist: no #EXTM3U")
	case wantURI:
		return nil, errors.New("the last EXT-X-STREAM-INF has no URI")
	case len(m.Variants) == 0:
		return nil, errors.New("master playlist has no EXT-X-STREAM-INF")
	}
	return m, nil
}

// eachLine calls fn with each non-blank line, trimmed, numbered from 1. It
// stops at the first error, at a NUL byte and past MaxPlaylistLines.
func eachLine(data []byte, fn func(n int, line string) error) error {
	if bytes.IndexByte(data, 0) >= 0 {
		return errors.New("playlist contains a NUL byte")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		if n > MaxPlaylistLines {
			return fmt.Errorf("playlist has more than %d lines", MaxPlaylistLines)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

func smallInt(s string, limit int) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > limit {
		return 0, fmt.Errorf("want an integer from 0 to %d, got %q", limit, clip(s))
	}
	return v, nil
}

// parseExtinf reads "<duration>,[<title>]".
func parseExtinf(v string) (time.Duration, string, error) {
	num, title, _ := strings.Cut(v, ",")
	sec, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(sec) || sec < 0 || sec > 86400 {
		return 0, "", fmt.Errorf("want a duration from 0 to 86400 seconds, got %q", clip(num))
	}
	return time.Duration(math.Round(sec*1e6)) * time.Microsecond, title, nil
}

// parseByteRange reads "<length>[@<offset>]"; a missing offset is 0 here
// (weir always writes it).
func parseByteRange(v string) (*ByteRange, error) {
	l, o, hasOffset := strings.Cut(v, "@")
	length, err := strconv.ParseInt(l, 10, 63)
	if err != nil || length <= 0 {
		return nil, fmt.Errorf("want a positive length, got %q", clip(l))
	}
	var offset int64
	if hasOffset {
		if offset, err = strconv.ParseInt(o, 10, 63); err != nil || offset < 0 {
			return nil, fmt.Errorf("want a non-negative offset, got %q", clip(o))
		}
	}
	return &ByteRange{Length: length, Offset: offset}, nil
}

func parseMap(v string) (*Map, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return nil, err
	}
	m := &Map{URI: a["URI"]}
	if err := checkQuoted("URI", m.URI); err != nil {
		return nil, err
	}
	if br, ok := a["BYTERANGE"]; ok {
		if m.ByteRange, err = parseByteRange(br); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// parseAttrs reads an attribute list (RFC 8216 4.2): NAME=value pairs
// separated by commas, values quoted (without the quotes in the result)
// or not. A name repeated, a quote not closed, or a pair without '=' is an
// error.
func parseAttrs(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !attrName(name) {
			return nil, fmt.Errorf("attribute list %q: want NAME=value with NAME of A-Z, 0-9 and '-'", clip(s))
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("attribute %s: quoted string not closed", clip(name))
			}
			value, rest = rest[1:1+end], rest[2+end:]
			if rest != "" && !strings.HasPrefix(rest, ",") {
				return nil, fmt.Errorf("attribute %s: text after the closing quote", clip(name))
			}
			rest = strings.TrimPrefix(rest, ",")
		} else {
			value, rest, _ = strings.Cut(rest, ",")
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("attribute %s appears twice", clip(name))
		}
		out[name] = value
		s = rest
	}
	return out, nil
}

// attrName reports whether s is an attribute name: [A-Z0-9-]+.
func attrName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
