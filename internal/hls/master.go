package hls

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Variant is one EXT-X-STREAM-INF entry of a master playlist: a complete
// encoding of the presentation that a player may switch to.
type Variant struct {
	// URI of the variant's media playlist.
	URI string
	// Bandwidth is the peak bit rate in bits per second (see PeakBitrate).
	Bandwidth int64
	// AverageBandwidth, when positive, is the mean bit rate over the whole
	// presentation (see AverageBitrate).
	AverageBandwidth int64
	// Codecs lists RFC 6381 codec strings ("avc1.640028", "mp4a.40.2").
	Codecs []string
	// Width and Height, when positive, are written as RESOLUTION.
	Width, Height int
	// FrameRate, when positive, is written with three decimals.
	FrameRate float64
	// Audio names the GROUP-ID of the EXT-X-MEDIA audio renditions the
	// variant plays with, if its audio is not muxed into its segments.
	Audio string
	// Subtitles names the GROUP-ID of the EXT-X-MEDIA subtitle renditions
	// the variant plays with (RFC 8216 4.3.4.2).
	Subtitles string
	// Name is a human-readable label, written as a non-standard NAME
	// attribute that several players show in their quality menu.
	Name string
}

// IFrameVariant is an EXT-X-I-FRAME-STREAM-INF entry: an I-frame playlist
// players use for fast seeking and trick play.
type IFrameVariant struct {
	URI              string
	Bandwidth        int64
	AverageBandwidth int64
	Codecs           []string
	Width, Height    int
}

// Rendition is an EXT-X-MEDIA entry: an alternative audio, subtitle or
// video rendition that variants refer to by group.
type Rendition struct {
	// Type is AUDIO, VIDEO, SUBTITLES or CLOSED-CAPTIONS.
	Type    string
	GroupID string
	Name    string
	// URI of the rendition's media playlist; empty when the rendition is
	// muxed into the variants' own segments.
	URI        string
	Language   string
	Default    bool
	Autoselect bool
	// Channels is the audio channel count, written when positive.
	Channels int
}

// SessionData is an EXT-X-SESSION-DATA entry (RFC 8216 4.3.4.4): data
// about the whole presentation, here always a URI of a JSON document.
type SessionData struct {
	// DataID names the data in reverse DNS form ("io.weir.metadata").
	DataID string
	// URI of the JSON document.
	URI string
}

// MasterPlaylist (multivariant playlist) lists the variants of a
// presentation.
type MasterPlaylist struct {
	// Version is the EXT-X-VERSION to write; at least 3 is written.
	Version int
	// IndependentSegments writes EXT-X-INDEPENDENT-SEGMENTS, promising it
	// for every media playlist of the presentation.
	IndependentSegments bool
	SessionData         []SessionData
	Renditions          []Rendition
	Variants            []Variant
	IFrameVariants      []IFrameVariant
}

// Encode writes the master playlist: EXT-X-MEDIA entries first, then each
// variant, then the I-frame variants, in the order given. It fails when
// there is no variant, a bandwidth is not positive, or a value cannot be
// written as an attribute (a quote or line break in a name or URI).
func (m *MasterPlaylist) Encode() ([]byte, error) {
	if len(m.Variants) == 0 {
		return nil, fmt.Errorf("master playlist has no variants")
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", max(m.Version, 3))
	if m.IndependentSegments {
		b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	}
	for i, d := range m.SessionData {
		line, err := d.line()
		if err != nil {
			return nil, fmt.Errorf("session data %d: %w", i, err)
		}
		b.WriteString(line)
	}
	for i, r := range m.Renditions {
		line, err := r.line()
		if err != nil {
			return nil, fmt.Errorf("rendition %d: %w", i, err)
		}
		b.WriteString(line)
	}
	for i, v := range m.Variants {
		if v.Bandwidth <= 0 {
			return nil, fmt.Errorf("variant %d (%s): BANDWIDTH must be positive, got %d", i, v.URI, v.Bandwidth)
		}
		if err := checkURI(v.URI); err != nil {
			return nil, fmt.Errorf("variant %d: %w", i, err)
		}
		var a attrs
		a.int("BANDWIDTH", v.Bandwidth)
		if v.AverageBandwidth > 0 {
			a.int("AVERAGE-BANDWIDTH", v.AverageBandwidth)
		}
		if len(v.Codecs) > 0 {
			a.quoted("CODECS", strings.Join(v.Codecs, ","))
		}
		if v.Width > 0 && v.Height > 0 {
			a.enum("RESOLUTION", fmt.Sprintf("%dx%d", v.Width, v.Height))
		}
		if v.FrameRate > 0 {
			a.enum("FRAME-RATE", strconv.FormatFloat(v.FrameRate, 'f', 3, 64))
		}
		if v.Audio != "" {
			a.quoted("AUDIO", v.Audio)
		}
		if v.Subtitles != "" {
			a.quoted("SUBTITLES", v.Subtitles)
		}
		if v.Name != "" {
			a.quoted("NAME", v.Name)
		}
		if a.err != nil {
			return nil, fmt.Errorf("variant %d (%s): %w", i, v.URI, a.err)
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:%s\n%s\n", a.String(), v.URI)
	}
	for i, v := range m.IFrameVariants {
		if v.Bandwidth <= 0 {
			return nil, fmt.Errorf("i-frame variant %d (%s): BANDWIDTH must be positive, got %d", i, v.URI, v.Bandwidth)
		}
		var a attrs
		a.int("BANDWIDTH", v.Bandwidth)
		if v.AverageBandwidth > 0 {
			a.int("AVERAGE-BANDWIDTH", v.AverageBandwidth)
		}
		if len(v.Codecs) > 0 {
			a.quoted("CODECS", strings.Join(v.Codecs, ","))
		}
		if v.Width > 0 && v.Height > 0 {
			a.enum("RESOLUTION", fmt.Sprintf("%dx%d", v.Width, v.Height))
		}
		a.quoted("URI", v.URI)
		if a.err != nil {
			return nil, fmt.Errorf("i-frame variant %d (%s): %w", i, v.URI, a.err)
		}
		fmt.Fprintf(&b, "#EXT-X-I-FRAME-STREAM-INF:%s\n", a.String())
	}
	return b.Bytes(), nil
}

// line is the EXT-X-MEDIA line of r, with its line break.
func (r Rendition) line() (string, error) {
	switch r.Type {
	case "AUDIO", "VIDEO", "SUBTITLES", "CLOSED-CAPTIONS":
	default:
		return "", fmt.Errorf("TYPE %q: want AUDIO, VIDEO, SUBTITLES or CLOSED-CAPTIONS", r.Type)
	}
	var a attrs
	a.enum("TYPE", r.Type)
	a.quoted("GROUP-ID", r.GroupID)
	a.quoted("NAME", r.Name)
	if r.Language != "" {
		a.quoted("LANGUAGE", r.Language)
	}
	a.enum("DEFAULT", yesNo(r.Default))
	a.enum("AUTOSELECT", yesNo(r.Autoselect || r.Default))
	if r.Channels > 0 {
		a.quoted("CHANNELS", strconv.Itoa(r.Channels))
	}
	if r.URI != "" {
		a.quoted("URI", r.URI)
	}
	if a.err != nil {
		return "", a.err
	}
	return "#EXT-X-MEDIA:" + a.String() + "\n", nil
}

// line is the EXT-X-SESSION-DATA line of d, with its line break.
func (d SessionData) line() (string, error) {
	var a attrs
	a.quoted("DATA-ID", d.DataID)
	a.quoted("URI", d.URI)
	if a.err != nil {
		return "", a.err
	}
	return "#EXT-X-SESSION-DATA:" + a.String() + "\n", nil
}

// attrs builds an attribute list, remembering the first invalid value.
type attrs struct {
	parts []string
	err   error
}

func (a *attrs) int(name string, v int64) {
	a.parts = append(a.parts, name+"="+strconv.FormatInt(v, 10))
}

func (a *attrs) enum(name, v string) { a.parts = append(a.parts, name+"="+v) }

func (a *attrs) quoted(name, v string) {
	if err := checkQuoted(name, v); err != nil && a.err == nil {
		a.err = err
	}
	a.parts = append(a.parts, name+"=\""+v+"\"")
}

func (a *attrs) String() string { return strings.Join(a.parts, ",") }

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}
