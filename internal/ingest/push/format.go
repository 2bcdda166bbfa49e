package push

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/weir-media/weir/internal/media/mpegts"
)

// pushFormat is what an HTTP or WebSocket publisher sends, told from its
// first bytes.
type pushFormat int

const (
	formatUnknown  pushFormat = iota
	formatTS                  // MPEG-TS: passed through
	formatMatroska            // WebM or Matroska: remuxed into MPEG-TS by ffmpeg
)

func (f pushFormat) String() string {
	switch f {
	case formatTS:
		return "mpegts"
	case formatMatroska:
		return "matroska"
	}
	return "unknown"
}

// ebmlMagic starts every EBML document: WebM and Matroska files.
var ebmlMagic = []byte{0x1a, 0x45, 0xdf, 0xa3}

// sniffBytes is how many bytes sniffFormat needs to decide: three MPEG-TS
// packet starts.
const sniffBytes = 2*mpegts.PacketSize + 1

// errNotMedia: what a publisher sends is neither MPEG-TS nor WebM/Matroska.
var errNotMedia = errors.New("not MPEG-TS or WebM/Matroska")

// sniffFormat tells the format of a publisher's stream from its first
// bytes. With fewer than sniffBytes it answers formatUnknown and more=true
// while more bytes could decide, unless complete says no more will come.
// MPEG-TS must have a sync byte at each of its first three packet starts
// (those present, for a complete stream of at least one packet).
func sniffFormat(head []byte, complete bool) (f pushFormat, more bool) {
	if len(head) >= len(ebmlMagic) && bytes.Equal(head[:len(ebmlMagic)], ebmlMagic) {
		return formatMatroska, false
	}
	if len(head) == 0 || head[0] != mpegts.SyncByte {
		if len(head) < len(ebmlMagic) && bytes.HasPrefix(ebmlMagic, head) && !complete {
			return formatUnknown, true
		}
		return formatUnknown, false
	}
	for off := mpegts.PacketSize; off < min(len(head), sniffBytes); off += mpegts.PacketSize {
		if head[off] != mpegts.SyncByte {
			return formatUnknown, false
		}
	}
	if len(head) >= sniffBytes || complete && len(head) >= mpegts.PacketSize {
		return formatTS, false
	}
	return formatUnknown, !complete
}

// describeHead names the first bytes of a stream that is not media, for
// an error message: in hex, and as text when they look like text (an HTML
// page, a JSON document, an m3u8 playlist).
func describeHead(head []byte) string {
	if len(head) == 0 {
		return "nothing"
	}
	n := min(len(head), 8)
	desc := fmt.Sprintf("% x", head[:n])
	text := head[:min(len(head), 24)]
	printable := true
	for _, r := range string(text) {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			printable = false
			break
		}
	}
	if printable {
		desc += fmt.Sprintf(" (text %q)", strings.TrimSpace(string(text)))
	}
	return desc
}

// maxGarbage is how many bytes of an MPEG-TS stream may pass without two
// sync bytes a packet apart before tsCheck calls it no longer MPEG-TS.
const maxGarbage = 64 << 10

// errLostSync: an MPEG-TS stream turned into something else.
var errLostSync = errors.New("not MPEG-TS any more")

// tsCheck follows the packet structure of an MPEG-TS stream as it passes
// through, in writes of any size, and reports a stream that stops being
// MPEG-TS: more than maxGarbage bytes without a sync byte at a packet start
// following another one a packet earlier. Damage short of that (a lost
// piece, a stray byte) is left to the packager's demuxer, which skips it.
type tsCheck struct {
	synced bool  // a sync byte was seen and the packets since are aligned to it
	off    int   // bytes into the current packet, while synced
	runs   int   // packet starts with a sync byte in a row, while synced
	bad    int64 // bytes since the last confirmed packet start
}

// check takes the next bytes of the stream and returns an error wrapping
// errLostSync once the stream is no longer MPEG-TS.
func (c *tsCheck) check(p []byte) error {
	for i := 0; i < len(p); {
		if !c.synced {
			j := bytes.IndexByte(p[i:], mpegts.SyncByte)
			if j < 0 {
				c.bad += int64(len(p) - i)
				break
			}
			c.bad += int64(j)
			i += j
			c.synced, c.off, c.runs = true, 0, 0
		}
		if c.off == 0 {
			if p[i] != mpegts.SyncByte {
				c.synced = false
				c.bad++
				i++
				continue
			}
			c.runs++
			if c.runs >= 2 {
				c.bad = 0
			}
		}
		step := min(mpegts.PacketSize-c.off, len(p)-i)
		c.off = (c.off + step) % mpegts.PacketSize
		c.bad += int64(step)
		i += step
		if c.runs >= 2 && c.off == 0 {
			c.bad = 0
		}
	}
	if c.bad > maxGarbage {
		return fmt.Errorf("%w: %d bytes without MPEG-TS packets", errLostSync, c.bad)
	}
	return nil
}
