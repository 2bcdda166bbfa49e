package chunker

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// segment is one line of ffmpeg's segment list in CSV form:
// "file,start,end", times in seconds on the output's timeline.
type segment struct {
	File       string
	Start, End float64
}

// maxSegmentTime bounds the times a segment list may carry (about 31
// years); anything larger is not a media time this package produced.
const maxSegmentTime = 1e9

// parseSegmentLine parses one CSV line of the segment muxer's list. The
// file name is quoted, with doubled quotes inside, when it holds a comma,
// quote or line break; the two times never are.
func parseSegmentLine(line string) (segment, error) {
	line = strings.TrimRight(line, "\r\n")
	i := strings.LastIndexByte(line, ',')
	if i < 0 {
		return segment{}, fmt.Errorf("segment list line %q: want file,start,end", line)
	}
	j := strings.LastIndexByte(line[:i], ',')
	if j < 0 {
		return segment{}, fmt.Errorf("segment list line %q: want file,start,end", line)
	}
	name, err := unquoteCSV(line[:j])
	if err != nil {
		return segment{}, fmt.Errorf("segment list line %q: %w", line, err)
	}
	start, err := parseTime(line[j+1 : i])
	if err != nil {
		return segment{}, fmt.Errorf("segment list line %q: start: %w", line, err)
	}
	end, err := parseTime(line[i+1:])
	if err != nil {
		return segment{}, fmt.Errorf("segment list line %q: end: %w", line, err)
	}
	if end < start {
		return segment{}, fmt.Errorf("segment list line %q: ends before it starts", line)
	}
	return segment{File: name, Start: start, End: end}, nil
}

func parseTime(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(v) || math.Abs(v) > maxSegmentTime {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return v, nil
}

// unquoteCSV undoes the segment muxer's CSV quoting of a file name and
// refuses names that could leave the output folder.
func unquoteCSV(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		if len(s) < 2 || !strings.HasSuffix(s, `"`) {
			return "", errors.New("unterminated quoted file name")
		}
		inner := s[1 : len(s)-1]
		if strings.Count(inner, `"`)%2 != 0 || strings.Contains(strings.ReplaceAll(inner, `""`, ""), `"`) {
			return "", errors.New("stray quote in file name")
		}
		s = strings.ReplaceAll(inner, `""`, `"`)
	} else if strings.ContainsAny(s, "\"\n\r") {
		return "", errors.New("unquoted file name holds a quote or line break")
	}
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") {
		return "", fmt.Errorf("file name %q is not a plain name", s)
	}
	return s, nil
}

// frameMeta is what the metadata filter printed for one selected frame.
type frameMeta struct {
	PTS      int64   // in the video stream's time base, on the input's own clock
	HasPTS   bool    // false when ffmpeg printed NOPTS
	Score    float64 // lavfi.scene_score, 0 when not computed
	HasScore bool
}

// frameMarker is the key the filter graph adds to every selected frame
// after any other metadata, so a record is complete when it is printed.
const frameMarker = "weir.frame"

// metaParser reads the metadata filter's print output line by line:
//
//	frame:3    pts:270000  pts_time:3
//	lavfi.scene_score=0.001440
//	weir.frame=1
type metaParser struct {
	cur  frameMeta
	open bool
}

// line consumes one line and returns a finished record when the line
// completes one.
func (p *metaParser) line(s string) (frameMeta, bool, error) {
	s = strings.TrimRight(s, "\r\n")
	if strings.HasPrefix(s, "frame:") {
		prev, had := p.cur, p.open
		m, err := parseMetaHeader(s)
		if err != nil {
			return frameMeta{}, false, err
		}
		p.cur, p.open = m, true
		return prev, had, nil
	}
	if !p.open {
		return frameMeta{}, false, fmt.Errorf("frame metadata %q before any frame header", s)
	}
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return frameMeta{}, false, fmt.Errorf("frame metadata line %q: want key=value", s)
	}
	switch key {
	case "lavfi.scene_score":
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return frameMeta{}, false, fmt.Errorf("frame metadata line %q: bad scene score", s)
		}
		p.cur.Score, p.cur.HasScore = v, true
	case frameMarker:
		m := p.cur
		p.cur, p.open = frameMeta{}, false
		return m, true, nil
	}
	return frameMeta{}, false, nil
}

// end returns a record left open when the output stopped.
func (p *metaParser) end() (frameMeta, bool) {
	m, ok := p.cur, p.open
	p.cur, p.open = frameMeta{}, false
	return m, ok
}

func parseMetaHeader(s string) (frameMeta, error) {
	var m frameMeta
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return m, fmt.Errorf("frame metadata header %q: want frame:N pts:P", s)
	}
	pts, ok := strings.CutPrefix(fields[1], "pts:")
	if !ok {
		return m, fmt.Errorf("frame metadata header %q: no pts", s)
	}
	if pts == "NOPTS" {
		return m, nil
	}
	v, err := strconv.ParseInt(pts, 10, 64)
	if err != nil {
		return m, fmt.Errorf("frame metadata header %q: bad pts", s)
	}
	m.PTS, m.HasPTS = v, true
	return m, nil
}
