package engines

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// This file holds the scenes engine's two parsers: the JPEG splitter that
// cuts ffmpeg's stream of thumbnails (image2pipe) into pictures, and the
// reader of ffmpeg's log lines that say where the cuts are.

// maxJPEG bounds one thumbnail: far above any picture a thumbnail width
// allows, so that a broken stream cannot grow a buffer without end.
const maxJPEG = 16 << 20

// errNotJPEG is wrapped by readJPEG's errors for bytes that are not a
// JPEG stream.
var errNotJPEG = errors.New("not a JPEG stream")

// readJPEG reads one whole JPEG picture (SOI to EOI) from r: io.EOF when
// r ends before the picture starts, an error wrapping errNotJPEG when the
// bytes are not a JPEG, io.ErrUnexpectedEOF when it ends inside one. It
// walks the marker segments by their lengths and the entropy-coded data
// after each SOS up to the next marker, so no byte inside a segment is
// taken for the end.
func readJPEG(r *bufio.Reader) ([]byte, error) {
	var out []byte
	add := func(b ...byte) error {
		if len(out)+len(b) > maxJPEG {
			return fmt.Errorf("%w: a picture over %d bytes", errNotJPEG, maxJPEG)
		}
		out = append(out, b...)
		return nil
	}
	soi := make([]byte, 2)
	if n, err := io.ReadFull(r, soi); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, io.ErrUnexpectedEOF
	}
	if soi[0] != 0xff || soi[1] != 0xd8 {
		return nil, fmt.Errorf("%w: starts with % x, want ff d8", errNotJPEG, soi)
	}
	_ = add(soi...)
	var carried byte // a marker readScan ran into
	for {
		m := carried
		carried = 0
		if m == 0 {
			var err error
			if m, err = nextMarker(r); err != nil {
				return nil, err
			}
		}
		if err := add(0xff, m); err != nil {
			return nil, err
		}
		switch {
		case m == 0xd9: // EOI
			return out, nil
		case m == 0xd8:
			return nil, fmt.Errorf("%w: a second SOI inside a picture", errNotJPEG)
		case m == 0x01 || m >= 0xd0 && m <= 0xd7: // TEM, RSTn: no length
			continue
		}
		if err := readSegment(r, add); err != nil {
			return nil, err
		}
		if m == 0xda { // SOS: entropy-coded data up to the next marker
			var err error
			if carried, err = readScan(r, add); err != nil {
				return nil, err
			}
		}
	}
}

// nextMarker reads a marker's 0xff (and any fill 0xff bytes) and returns
// its code.
func nextMarker(r *bufio.Reader) (byte, error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, io.ErrUnexpectedEOF
	}
	if b != 0xff {
		return 0, fmt.Errorf("%w: byte %#02x where a marker should be", errNotJPEG, b)
	}
	for b == 0xff {
		if b, err = r.ReadByte(); err != nil {
			return 0, io.ErrUnexpectedEOF
		}
	}
	if b == 0x00 {
		return 0, fmt.Errorf("%w: a stuffed ff 00 where a marker should be", errNotJPEG)
	}
	return b, nil
}

// readSegment copies a marker segment: its two-byte length (which counts
// itself) and its contents.
func readSegment(r *bufio.Reader, add func(...byte) error) error {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	n := int(l[0])<<8 | int(l[1])
	if n < 2 {
		return fmt.Errorf("%w: a segment length of %d", errNotJPEG, n)
	}
	if err := add(l[:]...); err != nil {
		return err
	}
	body := make([]byte, n-2)
	if _, err := io.ReadFull(r, body); err != nil {
		return io.ErrUnexpectedEOF
	}
	return add(body...)
}

// readScan copies entropy-coded data, in which 0xff is followed by 0x00
// (a stuffed byte) or a restart marker, up to the next other marker,
// whose code it returns (its 0xff and code consumed, not copied).
func readScan(r *bufio.Reader, add func(...byte) error) (byte, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		if b != 0xff {
			if err := add(b); err != nil {
				return 0, err
			}
			continue
		}
		c := byte(0xff)
		for c == 0xff {
			if c, err = r.ReadByte(); err != nil {
				return 0, io.ErrUnexpectedEOF
			}
		}
		if c == 0x00 || c >= 0xd0 && c <= 0xd7 {
			if err := add(b, c); err != nil {
				return 0, err
			}
			continue
		}
		return c, nil
	}
}

// sceneEvent is what one ffmpeg log line of the scenes engine's filters
// says: a cut (a frame the select filter passed, with its scene score) or
// a tick (the time of a frame, once a second, so time advances).
type sceneEvent struct {
	cut   bool
	ms    int64
	score float64
}

// sceneLog reads the scenes engine's ffmpeg log. The metadata filter
// named "cut" prints two lines for each frame select passed:
//
//	[metadata@cut @ 0x55d1] frame:3    pts:72000   pts_time:2.4
//	[metadata@cut @ 0x55d1] lavfi.scene_score=0.736041
//
// and the showinfo filter named "tick" one line (and a second, ignored)
// for a frame a second:
//
//	[showinfo@tick @ 0x55d2] n:   2 pts:2000000 pts_time:2       pos: ...
//
// Lines of other filters and of ffmpeg itself are ignored.
type sceneLog struct {
	pendingMs int64 // the time of a cut whose score line is next
	pending   bool
}

// line parses one log line; ok is false when it says nothing of use. A
// malformed line of one of the two filters is an error naming it.
func (p *sceneLog) line(s string) (ev sceneEvent, ok bool, err error) {
	switch {
	case strings.HasPrefix(s, "[metadata@cut "):
		body := s[strings.IndexByte(s, ']')+1:]
		if v, found := field(body, "lavfi.scene_score="); found {
			if !p.pending {
				return ev, false, fmt.Errorf("ffmpeg log: a scene score with no frame before it: %.120q", s)
			}
			score, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(score) || score < 0 || score > 1 {
				return ev, false, fmt.Errorf("ffmpeg log: bad scene score in %.120q", s)
			}
			p.pending = false
			return sceneEvent{cut: true, ms: p.pendingMs, score: score}, true, nil
		}
		if v, found := field(body, "pts_time:"); found {
			ms, err := parseSeconds(v)
			if err != nil {
				return ev, false, fmt.Errorf("ffmpeg log: %w in %.120q", err, s)
			}
			p.pendingMs, p.pending = ms, true
		}
		return ev, false, nil
	case strings.HasPrefix(s, "[showinfo@tick "):
		body := s[strings.IndexByte(s, ']')+1:]
		if !strings.Contains(body, " n:") {
			return ev, false, nil // the colour line, the config lines
		}
		v, found := field(body, "pts_time:")
		if !found {
			return ev, false, nil
		}
		ms, err := parseSeconds(v)
		if err != nil {
			return ev, false, fmt.Errorf("ffmpeg log: %w in %.120q", err, s)
		}
		return sceneEvent{ms: ms}, true, nil
	}
	return ev, false, nil
}

// field returns the text after key up to the next space.
func field(s, key string) (string, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return "", false
	}
	v := s[i+len(key):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v, true
}

// parseSeconds turns a pts_time (seconds, "2.4") into milliseconds.
// Negative times (frames before the first one) count as 0.
func parseSeconds(v string) (int64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
		return 0, fmt.Errorf("bad pts_time %.40q", v)
	}
	return max(0, int64(math.Round(f*1000))), nil
}
