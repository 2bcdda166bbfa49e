package chunker

import (
	"encoding/binary"
	"errors"
	"slices"
)

// ErrIndexAtEnd means Run was given, as a stream, an MP4 (or QuickTime)
// file whose index (the moov box) follows its media data: ffmpeg can read
// such a file only by seeking back, which a pipe cannot do. It is what
// ffmpeg writes without -movflags +faststart. Give the file to RunFile.
var ErrIndexAtEnd = errors.New("input is an MP4 whose index (moov) is at its end, which cannot be read as a stream; give the file (RunFile)")

// mp4LeadBoxes are the top-level boxes an ISO BMFF or QuickTime file
// starts with.
var mp4LeadBoxes = []string{"ftyp", "wide", "free", "skip", "pnot", "mdat", "moov"}

// mp4IndexAtEnd reports whether data, the start of an input, is an ISO
// BMFF or QuickTime file whose top-level media data box (mdat) comes
// before its index (moov). It walks the top-level boxes only as far as
// data holds them, and says false for anything else.
func mp4IndexAtEnd(data []byte) bool {
	for off := 0; len(data)-off >= 8; {
		size := uint64(binary.BigEndian.Uint32(data[off:]))
		typ := string(data[off+4 : off+8])
		if off == 0 && !slices.Contains(mp4LeadBoxes, typ) {
			return false
		}
		switch typ {
		case "moov":
			return false
		case "mdat":
			return true
		}
		header := uint64(8)
		switch size {
		case 0: // the box runs to the end of the file
			return false
		case 1: // a 64-bit size follows the type
			if len(data)-off < 16 {
				return false
			}
			size, header = binary.BigEndian.Uint64(data[off+8:]), 16
		}
		if size < header || size > uint64(len(data)-off) {
			return false // malformed, or the next box is not here yet
		}
		off += int(size)
	}
	return false
}
