package results

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Cue is one caption: a text shown from StartMs to EndMs.
type Cue struct {
	StartMs, EndMs int64
	Text           string
}

// Cues makes captions of texts of one kind, in time order. A cue that
// would last past the next one's start is ended there, so captions never
// stack; a zero-length one gets MinCueMs.
func Cues(texts []Text, kind string) []Cue {
	var out []Cue
	for _, t := range texts {
		if t.Kind == kind && t.Text != "" {
			out = append(out, Cue{StartMs: t.StartMs, EndMs: max(t.EndMs, t.StartMs+MinCueMs), Text: t.Text})
		}
	}
	for i := 0; i+1 < len(out); i++ {
		if out[i].EndMs > out[i+1].StartMs && out[i+1].StartMs > out[i].StartMs {
			out[i].EndMs = out[i+1].StartMs
		}
	}
	return out
}

// MinCueMs is the shortest caption written.
const MinCueMs = 500

// WriteWebVTT writes cues as a WebVTT file (W3C WebVTT). header, when not
// empty, is written on the lines after "WEBVTT" (an HLS segment's
// X-TIMESTAMP-MAP, for one); offsetMs is subtracted from every time.
func WriteWebVTT(w io.Writer, cues []Cue, header string, offsetMs int64) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("WEBVTT\n")
	if header != "" {
		bw.WriteString(header + "\n")
	}
	for _, c := range cues {
		fmt.Fprintf(bw, "\n%s --> %s\n%s\n", clock(c.StartMs-offsetMs, '.'), clock(c.EndMs-offsetMs, '.'), cueText(c.Text))
	}
	return bw.Flush()
}

// WriteSRT writes cues as a SubRip file, numbered from 1.
func WriteSRT(w io.Writer, cues []Cue) error {
	bw := bufio.NewWriter(w)
	for i, c := range cues {
		fmt.Fprintf(bw, "%d\n%s --> %s\n%s\n\n", i+1, clock(c.StartMs, ','), clock(c.EndMs, ','), strings.ReplaceAll(c.Text, "\n", " "))
	}
	return bw.Flush()
}

// clock writes ms as hh:mm:ss.mmm (sep ',' for SRT); negative times are 0.
func clock(ms int64, sep byte) string {
	ms = max(ms, 0)
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}

// cueText escapes what WebVTT gives meaning to in a cue's text: '&', '<'
// and '>', and the "-->" that would end a cue's timing line.
func cueText(s string) string {
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
	return s
}
