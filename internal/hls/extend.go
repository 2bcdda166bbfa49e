package hls

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// MasterExtension is what ExtendMaster adds to a master playlist written
// earlier: renditions that did not exist when it was written.
type MasterExtension struct {
	// Subtitles, when set, is an EXT-X-MEDIA TYPE=SUBTITLES rendition;
	// every variant gets SUBTITLES="<its GroupID>".
	Subtitles *Rendition
	// SessionData entries are added after the header tags.
	SessionData []SessionData
}

// ExtendMaster returns master with ext added: the session data and the
// subtitles rendition right after the header tags (before the first
// EXT-X-MEDIA or variant), and SUBTITLES on every EXT-X-STREAM-INF
// (I-frame variants take no subtitles). Everything else is kept line for
// line. A master that does not parse (ParseMasterPlaylist), that already
// has the subtitle group or a variant with subtitles, or the session data
// ids, is an error.
func ExtendMaster(master []byte, ext MasterExtension) ([]byte, error) {
	info, err := ParseMasterPlaylist(master)
	if err != nil {
		return nil, err
	}
	var add strings.Builder
	for _, d := range ext.SessionData {
		if slices.Contains(info.SessionData, d.DataID) {
			return nil, fmt.Errorf("master playlist already has session data %q", d.DataID)
		}
		line, err := d.line()
		if err != nil {
			return nil, fmt.Errorf("session data: %w", err)
		}
		add.WriteString(line)
	}
	group := ""
	if r := ext.Subtitles; r != nil {
		if r.Type != "SUBTITLES" {
			return nil, fmt.Errorf("subtitles rendition has TYPE %q", r.Type)
		}
		if slices.Contains(info.Groups["SUBTITLES"], r.GroupID) {
			return nil, fmt.Errorf("master playlist already has the subtitles group %q", r.GroupID)
		}
		line, err := r.line()
		if err != nil {
			return nil, fmt.Errorf("subtitles rendition: %w", err)
		}
		add.WriteString(line)
		group = r.GroupID
	}
	var out bytes.Buffer
	inserted := false
	err = eachLine(master, func(n int, line string) error {
		body := strings.HasPrefix(line, "#EXT-X-MEDIA:") || strings.HasPrefix(line, "#EXT-X-STREAM-INF:") ||
			strings.HasPrefix(line, "#EXT-X-I-FRAME-STREAM-INF:") || strings.HasPrefix(line, "#EXT-X-SESSION-DATA:")
		if body && !inserted {
			out.WriteString(add.String())
			inserted = true
		}
		if v, ok := strings.CutPrefix(line, "#EXT-X-STREAM-INF:"); ok && group != "" {
			a, err := parseAttrs(v)
			if err != nil {
				return fmt.Errorf("line %d: EXT-X-STREAM-INF: %w", n, err)
			}
			if _, has := a["SUBTITLES"]; has {
				return fmt.Errorf("line %d: a variant already has subtitles", n)
			}
			if v != "" {
				line += ","
			}
			line += `SUBTITLES="` + group + `"`
		}
		out.WriteString(line)
		out.WriteByte('\n')
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
