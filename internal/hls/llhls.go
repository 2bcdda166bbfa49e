package hls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Low-Latency HLS (RFC 8216bis) tags of a media playlist.

// Part is a partial segment (EXT-X-PART): a short run of media, listed
// before the segment it belongs to is complete, that a low-latency client
// fetches as soon as it appears.
type Part struct {
	URI      string
	Duration time.Duration
	// Independent writes INDEPENDENT=YES: the part starts with a key frame.
	Independent bool
	// ByteRange, when set, limits the part to a range of URI.
	ByteRange *ByteRange
}

// PreloadHint is an EXT-X-PRELOAD-HINT: the resource the server will
// publish next, which a client may request before it exists (the request
// blocks until it does).
type PreloadHint struct {
	// Type is "PART" or "MAP".
	Type string
	URI  string
}

// ServerControl is EXT-X-SERVER-CONTROL: what the server offers clients.
type ServerControl struct {
	// CanBlockReload writes CAN-BLOCK-RELOAD=YES: the server holds a
	// playlist request with _HLS_msn (and _HLS_part) until that segment or
	// part is listed.
	CanBlockReload bool
	// CanSkipUntil, when positive, writes CAN-SKIP-UNTIL: the server
	// answers _HLS_skip=YES with a delta update that skips segments older
	// than this from the live edge.
	CanSkipUntil time.Duration
	// HoldBack and PartHoldBack, when positive, are the minimum distances
	// from the live edge a client starts playback at (PART-HOLD-BACK must
	// be at least three part targets).
	HoldBack     time.Duration
	PartHoldBack time.Duration
}

// RenditionReport is an EXT-X-RENDITION-REPORT: the newest segment and part
// of another rendition, so a client switching to it can ask for the right
// blocking reload at once.
type RenditionReport struct {
	URI string
	// LastMSN is the media sequence number of the newest segment.
	LastMSN uint64
	// LastPart is the index, within its segment, of the newest part;
	// negative leaves LAST-PART out.
	LastPart int
}

// checkLowLatency validates the LL-HLS fields before Encode writes anything.
func (p *MediaPlaylist) checkLowLatency() error {
	if p.PartTarget < 0 {
		return fmt.Errorf("negative part target %v", p.PartTarget)
	}
	if sc := p.ServerControl; sc != nil {
		if sc.CanSkipUntil < 0 || sc.HoldBack < 0 || sc.PartHoldBack < 0 {
			return errors.New("EXT-X-SERVER-CONTROL: negative duration")
		}
		if sc.PartHoldBack > 0 && sc.PartHoldBack < 3*p.PartTarget.Round(time.Millisecond) {
			return fmt.Errorf("PART-HOLD-BACK %v is under three part targets (%v)", sc.PartHoldBack, p.PartTarget)
		}
	}
	for i, s := range p.Segments {
		if s.Map != nil {
			if err := checkQuoted(fmt.Sprintf("segment %d EXT-X-MAP URI", i), s.Map.URI); err != nil {
				return err
			}
			if err := checkRange(fmt.Sprintf("segment %d EXT-X-MAP", i), s.Map.ByteRange); err != nil {
				return err
			}
		}
		if err := checkParts(s.Parts); err != nil {
			return fmt.Errorf("segment %d (%s): %w", i, s.URI, err)
		}
	}
	if err := checkParts(p.TrailingParts); err != nil {
		return fmt.Errorf("trailing parts: %w", err)
	}
	if h := p.PreloadHint; h != nil {
		if h.Type != "PART" && h.Type != "MAP" {
			return fmt.Errorf("EXT-X-PRELOAD-HINT type %q: want PART or MAP", h.Type)
		}
		if err := checkQuoted("EXT-X-PRELOAD-HINT URI", h.URI); err != nil {
			return err
		}
	}
	for _, r := range p.RenditionReports {
		if err := checkQuoted("EXT-X-RENDITION-REPORT URI", r.URI); err != nil {
			return err
		}
	}
	return nil
}

func checkParts(parts []Part) error {
	for j, pt := range parts {
		if err := checkQuoted(fmt.Sprintf("part %d URI", j), pt.URI); err != nil {
			return err
		}
		if pt.Duration < 0 {
			return fmt.Errorf("part %d (%s): negative duration", j, pt.URI)
		}
		if err := checkRange(fmt.Sprintf("part %d (%s)", j, pt.URI), pt.ByteRange); err != nil {
			return err
		}
	}
	return nil
}

// writeLowLatencyHeader writes EXT-X-SERVER-CONTROL and EXT-X-PART-INF.
func (p *MediaPlaylist) writeLowLatencyHeader(b *bytes.Buffer) {
	if sc := p.ServerControl; sc != nil {
		var attrs []string
		if sc.CanBlockReload {
			attrs = append(attrs, "CAN-BLOCK-RELOAD=YES")
		}
		if sc.CanSkipUntil > 0 {
			attrs = append(attrs, "CAN-SKIP-UNTIL="+FormatDuration(sc.CanSkipUntil))
		}
		if sc.HoldBack > 0 {
			attrs = append(attrs, "HOLD-BACK="+FormatDuration(sc.HoldBack))
		}
		if sc.PartHoldBack > 0 {
			attrs = append(attrs, "PART-HOLD-BACK="+FormatDuration(sc.PartHoldBack))
		}
		b.WriteString("#EXT-X-SERVER-CONTROL:")
		for i, a := range attrs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(a)
		}
		b.WriteByte('\n')
	}
	if p.PartTarget > 0 {
		fmt.Fprintf(b, "#EXT-X-PART-INF:PART-TARGET=%s\n", FormatDuration(p.PartTarget))
	}
}

func writeParts(b *bytes.Buffer, parts []Part) {
	for _, pt := range parts {
		fmt.Fprintf(b, "#EXT-X-PART:DURATION=%s,URI=\"%s\"", FormatDuration(pt.Duration), pt.URI)
		if pt.Independent {
			b.WriteString(",INDEPENDENT=YES")
		}
		if pt.ByteRange != nil {
			fmt.Fprintf(b, ",BYTERANGE=\"%s\"", pt.ByteRange)
		}
		b.WriteByte('\n')
	}
}

// writeLowLatencyTrailer writes the parts of the segment in progress, the
// preload hint and the rendition reports, which follow the last segment.
func (p *MediaPlaylist) writeLowLatencyTrailer(b *bytes.Buffer) {
	writeParts(b, p.TrailingParts)
	if h := p.PreloadHint; h != nil {
		fmt.Fprintf(b, "#EXT-X-PRELOAD-HINT:TYPE=%s,URI=\"%s\"\n", h.Type, h.URI)
	}
	for _, r := range p.RenditionReports {
		fmt.Fprintf(b, "#EXT-X-RENDITION-REPORT:URI=\"%s\",LAST-MSN=%d", r.URI, r.LastMSN)
		if r.LastPart >= 0 {
			fmt.Fprintf(b, ",LAST-PART=%d", r.LastPart)
		}
		b.WriteByte('\n')
	}
}

// parseSeconds reads a decimal-floating-point attribute in seconds.
func parseSeconds(what, v string) (time.Duration, error) {
	sec, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(sec) || sec < 0 || sec > 86400 {
		return 0, fmt.Errorf("%s: want seconds from 0 to 86400, got %q", what, clip(v))
	}
	return time.Duration(math.Round(sec*1e6)) * time.Microsecond, nil
}

func parseYes(what, v string) (bool, error) {
	switch v {
	case "YES":
		return true, nil
	case "NO":
		return false, nil
	}
	return false, fmt.Errorf("%s: want YES or NO, got %q", what, clip(v))
}

func parsePart(v string) (Part, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return Part{}, err
	}
	pt := Part{URI: a["URI"]}
	if err := checkQuoted("URI", pt.URI); err != nil {
		return Part{}, err
	}
	d, ok := a["DURATION"]
	if !ok {
		return Part{}, errors.New("no DURATION")
	}
	if pt.Duration, err = parseSeconds("DURATION", d); err != nil {
		return Part{}, err
	}
	if v, ok := a["INDEPENDENT"]; ok {
		if pt.Independent, err = parseYes("INDEPENDENT", v); err != nil {
			return Part{}, err
		}
	}
	if br, ok := a["BYTERANGE"]; ok {
		if pt.ByteRange, err = parseByteRange(br); err != nil {
			return Part{}, err
		}
	}
	return pt, nil
}

func parseServerControl(v string) (*ServerControl, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return nil, err
	}
	sc := &ServerControl{}
	for name, val := range a {
		switch name {
		case "CAN-BLOCK-RELOAD":
			sc.CanBlockReload, err = parseYes(name, val)
		case "CAN-SKIP-UNTIL":
			sc.CanSkipUntil, err = parseSeconds(name, val)
		case "HOLD-BACK":
			sc.HoldBack, err = parseSeconds(name, val)
		case "PART-HOLD-BACK":
			sc.PartHoldBack, err = parseSeconds(name, val)
		}
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

func parsePartInf(v string) (time.Duration, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return 0, err
	}
	t, ok := a["PART-TARGET"]
	if !ok {
		return 0, errors.New("no PART-TARGET")
	}
	d, err := parseSeconds("PART-TARGET", t)
	if err == nil && d == 0 {
		err = errors.New("PART-TARGET is zero")
	}
	return d, err
}

func parsePreloadHint(v string) (*PreloadHint, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return nil, err
	}
	h := &PreloadHint{Type: a["TYPE"], URI: a["URI"]}
	if h.Type != "PART" && h.Type != "MAP" {
		return nil, fmt.Errorf("TYPE %q: want PART or MAP", clip(h.Type))
	}
	if err := checkQuoted("URI", h.URI); err != nil {
		return nil, err
	}
	return h, nil
}

func parseSkip(v string) (uint64, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(a["SKIPPED-SEGMENTS"], 10, 63)
	if err != nil {
		return 0, fmt.Errorf("SKIPPED-SEGMENTS: want a count, got %q", clip(a["SKIPPED-SEGMENTS"]))
	}
	return n, nil
}

func parseRenditionReport(v string) (RenditionReport, error) {
	a, err := parseAttrs(v)
	if err != nil {
		return RenditionReport{}, err
	}
	r := RenditionReport{URI: a["URI"], LastPart: -1}
	if err := checkQuoted("URI", r.URI); err != nil {
		return RenditionReport{}, err
	}
	if r.LastMSN, err = strconv.ParseUint(a["LAST-MSN"], 10, 63); err != nil {
		return RenditionReport{}, fmt.Errorf("LAST-MSN: want a number, got %q", clip(a["LAST-MSN"]))
	}
	if lp, ok := a["LAST-PART"]; ok {
		if r.LastPart, err = smallInt(lp, 1<<20); err != nil {
			return RenditionReport{}, fmt.Errorf("LAST-PART: %w", err)
		}
	}
	return r, nil
}
