package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/livewatch"
	"github.com/weir-media/weir/internal/objstore"
)

// Low-Latency HLS delivery (RFC 8216bis section 6.2.5): blocking playlist
// reload, delta updates, blocking preload-hinted parts and rendition
// reports, for the live playlists the packager writes with
// EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES.

// llPollInterval is how often a playlist with requests held on it is
// re-read (once for all of them: playlistWatches); a packager in this
// process wakes them sooner (internal/livewatch).
const llPollInterval = 100 * time.Millisecond

// llMaxWait bounds how long a request for a hinted part is held when the
// playlist's target duration is unknown.
const llMaxWait = 10 * time.Second

// llQuery is a playlist request's delivery directives.
type llQuery struct {
	msn, part    int64 // -1: absent
	skip         bool
	hasDirective bool
}

// parseLLQuery reads _HLS_msn, _HLS_part and _HLS_skip. A malformed value,
// or _HLS_part without _HLS_msn, is an error (400).
func parseLLQuery(r *http.Request) (llQuery, error) {
	q := llQuery{msn: -1, part: -1}
	v := r.URL.Query()
	if s, ok := v["_HLS_msn"]; ok {
		n, err := strconv.ParseInt(s[0], 10, 63)
		if err != nil || n < 0 || len(s) > 1 {
			return q, fmt.Errorf("_HLS_msn %q: want one non-negative integer", s[0])
		}
		q.msn, q.hasDirective = n, true
	}
	if s, ok := v["_HLS_part"]; ok {
		n, err := strconv.ParseInt(s[0], 10, 31)
		if err != nil || n < 0 || len(s) > 1 {
			return q, fmt.Errorf("_HLS_part %q: want one non-negative integer", s[0])
		}
		if q.msn < 0 {
			return q, errors.New("_HLS_part without _HLS_msn")
		}
		q.part = n
	}
	if s, ok := v["_HLS_skip"]; ok {
		switch s[0] {
		case "YES", "v2":
			q.skip, q.hasDirective = true, true
		default:
			return q, fmt.Errorf("_HLS_skip %q: want YES or v2", s[0])
		}
	}
	return q, nil
}

// serveLowLatency handles what plain object serving cannot: a live
// playlist request with delivery directives, and a request for a part
// named by the preload hint that is not written yet. It reports whether it
// answered; when not, serveHLS goes on as for any object.
func (s *Server) serveLowLatency(w http.ResponseWriter, r *http.Request, key string) bool {
	switch base := path.Base(key); {
	case base == "live.m3u8":
		q, err := parseLLQuery(r)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "delivery directive: "+err.Error())
			return true
		}
		if !q.hasDirective {
			return false
		}
		return s.serveBlockingPlaylist(w, r, key, q)
	case partName.MatchString(base):
		s.waitHintedPart(r.Context(), key)
		return false
	}
	return false
}

var partName = regexp.MustCompile(`^part_([0-9]{1,18})\.m4s$`)

// readPlaylist reads and parses a media playlist object.
func (s *Server) readPlaylist(ctx context.Context, key string) (*hls.MediaPlaylist, error) {
	data, err := readObject(ctx, s.cfg.Objects, key, maxPlaylistBytes)
	if err != nil {
		return nil, err
	}
	return hls.ParseMediaPlaylist(data)
}

// lastMSN is the media sequence number of the playlist's last complete
// segment (-1 when none).
func lastMSN(p *hls.MediaPlaylist) int64 {
	return int64(p.MediaSequence) + int64(p.SkippedSegments) + int64(len(p.Segments)) - 1
}

// reached says whether the playlist holds segment q.msn (and its part
// q.part): a complete segment holds all its parts; the segment in
// progress, the parts listed after the last one.
func reached(p *hls.MediaPlaylist, q llQuery) bool {
	last := lastMSN(p)
	switch {
	case p.Ended || q.msn < 0:
		return true
	case q.msn <= last:
		return true
	case q.msn == last+1 && q.part >= 0:
		return int64(len(p.TrailingParts)) > q.part
	}
	return false
}

// blockTimeout is how long a blocking request is held: three target
// durations, as RFC 8216bis suggests.
func blockTimeout(p *hls.MediaPlaylist) time.Duration {
	return 3 * time.Duration(max(p.TargetDuration, 1)) * time.Second
}

// serveBlockingPlaylist answers a live playlist request with delivery
// directives: held until the playlist holds the segment or part asked
// for (503 after three target durations), 400 for a segment more than two
// ahead of the last, a delta update for _HLS_skip.
func (s *Server) serveBlockingPlaylist(w http.ResponseWriter, r *http.Request, key string, q llQuery) bool {
	ctx := r.Context()
	p, err := s.readPlaylist(ctx, key)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return false // the plain path answers 404
		}
		s.objectError(w, key, err)
		return true
	}
	if p.ServerControl == nil || !p.ServerControl.CanBlockReload {
		// Not a low-latency playlist: the directives do not apply.
		return false
	}
	if q.msn > lastMSN(p)+2 && !p.Ended {
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("_HLS_msn %d is more than two segments past the last, %d", q.msn, lastMSN(p)))
		return true
	}
	p, err = s.waitForPlaylist(ctx, key, p, q)
	switch {
	case ctx.Err() != nil:
		return true
	case errors.Is(err, errBlockTimeout):
		w.Header().Set("Retry-After", strconv.Itoa(max(p.TargetDuration, 1)))
		writeProblem(w, http.StatusServiceUnavailable, fmt.Sprintf("segment %d part %d did not appear in %s within %v", q.msn, q.part, key, blockTimeout(p)))
		return true
	case err != nil:
		s.objectError(w, key, err)
		return true
	}
	if q.skip {
		skipSegments(p)
	}
	p.RenditionReports = s.renditionReports(ctx, key)
	data, err := p.Encode()
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "re-encoding "+key+": "+err.Error())
		return true
	}
	h := w.Header()
	h.Set("Content-Type", hlsTypes[".m3u8"].contentType)
	h.Set("Cache-Control", playlistCacheControl(data))
	data, _ = negotiateGzip(h, r, data, "")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
	return true
}

// errBlockTimeout: what a blocking request asked for did not appear in
// time.
var errBlockTimeout = errors.New("blocking reload timed out")

// waitForPlaylist waits until the playlist at key holds what q asks for,
// starting from p, read already, and returns it; errBlockTimeout (with
// the last playlist read) after blockTimeout.
func (s *Server) waitForPlaylist(ctx context.Context, key string, p *hls.MediaPlaylist, q llQuery) (*hls.MediaPlaylist, error) {
	deadline := time.NewTimer(blockTimeout(p))
	defer deadline.Stop()
	watch := s.watches.hold(key)
	defer watch.release()
	// p was read before the watch was held: the watch's bytes, whatever
	// their version, have not been looked at yet.
	var seen uint64
	for !reached(p, q) {
		changed := livewatch.Changed(key)
		if watch.current() == seen {
			select {
			case <-ctx.Done():
				return p, ctx.Err()
			case <-deadline.C:
				return p, errBlockTimeout
			case <-changed:
			}
		}
		data, v, err := watch.latest(ctx, seen)
		if err != nil {
			return p, err
		}
		if v == seen {
			continue // woken, but the playlist read back the same
		}
		seen = v
		next, err := hls.ParseMediaPlaylist(data)
		if err != nil {
			return p, fmt.Errorf("playlist %s: %w", key, err)
		}
		if !newerPlaylist(p, next) {
			p = next // the watch's first bytes may be older than p
		}
	}
	return p, nil
}

// newerPlaylist says whether live playlist a is further along than b: a
// later last segment, more parts of the segment in progress, or ended.
func newerPlaylist(a, b *hls.MediaPlaylist) bool {
	switch la, lb := lastMSN(a), lastMSN(b); {
	case la != lb:
		return la > lb
	case a.Ended != b.Ended:
		return a.Ended
	}
	return len(a.TrailingParts) > len(b.TrailingParts)
}

// skipSegments makes p a delta update: the segments that start more than
// CAN-SKIP-UNTIL before the end are replaced by EXT-X-SKIP. The init
// segment in force at the first segment kept becomes the playlist's
// EXT-X-MAP.
func skipSegments(p *hls.MediaPlaylist) {
	if p.ServerControl == nil || p.ServerControl.CanSkipUntil <= 0 || p.SkippedSegments > 0 {
		return
	}
	var fromEnd time.Duration
	keep := len(p.Segments)
	for i := len(p.Segments) - 1; i >= 0; i-- {
		fromEnd += p.Segments[i].Duration
		if fromEnd > p.ServerControl.CanSkipUntil {
			break
		}
		keep = i
	}
	if keep == 0 || keep >= len(p.Segments) {
		return
	}
	m := p.Map
	for _, sg := range p.Segments[:keep] {
		if sg.Map != nil {
			m = sg.Map
		}
	}
	p.Map = m
	p.Segments = p.Segments[keep:]
	if p.Segments[0].Map != nil {
		p.Map, p.Segments[0].Map = p.Segments[0].Map, nil
	}
	p.SkippedSegments = uint64(keep)
}

// waitHintedPart holds a request for a part the preload hint of its
// stream's live playlist names, or an earlier one, until the part is
// written (or the playlist's blocking timeout passes); the plain path then
// serves it or answers 404.
func (s *Server) waitHintedPart(ctx context.Context, key string) {
	if _, err := s.cfg.Objects.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
		return
	}
	plKey := path.Join(path.Dir(key), "live.m3u8")
	p, err := s.readPlaylist(ctx, plKey)
	if err != nil || p.PreloadHint == nil || p.Ended {
		return
	}
	want, _ := strconv.ParseInt(partName.FindStringSubmatch(path.Base(key))[1], 10, 64)
	m := partName.FindStringSubmatch(p.PreloadHint.URI)
	if m == nil {
		return
	}
	hinted, _ := strconv.ParseInt(m[1], 10, 64)
	if want > hinted {
		return
	}
	deadline := time.NewTimer(min(blockTimeout(p), llMaxWait))
	defer deadline.Stop()
	// The packager writes a part before the playlist that lists it: look
	// for the part each time the playlist changes.
	watch := s.watches.hold(plKey)
	defer watch.release()
	for {
		changed := livewatch.Changed(plKey)
		if _, err := s.cfg.Objects.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-changed:
		}
	}
}

// renditionSiblings returns the playlists of the stream's other renditions,
// as object keys, from the stream's stored master playlist ({id}/master.m3u8):
// every variant but the playlist itself. None without a master.
func (s *Server) renditionSiblings(ctx context.Context, playlistKey string) []string {
	if sib, ok := s.ladderSiblings(ctx, playlistKey); ok {
		return sib // a live ABR ladder (hls_ladder.go)
	}
	streamID, _, _ := strings.Cut(playlistKey, "/")
	data, err := readObject(ctx, s.cfg.Objects, streamID+"/master.m3u8", maxPlaylistBytes)
	if err != nil {
		return nil
	}
	m, err := hls.ParseMasterPlaylist(data)
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range m.Variants {
		if strings.Contains(v, "://") || strings.HasPrefix(v, "/") {
			continue
		}
		k := path.Join(streamID, v)
		if k != playlistKey && strings.HasPrefix(k, streamID+"/") {
			out = append(out, k)
		}
	}
	return out
}

// renditionReports are the EXT-X-RENDITION-REPORTs of a low-latency
// playlist: the last segment and part of each sibling rendition.
func (s *Server) renditionReports(ctx context.Context, playlistKey string) []hls.RenditionReport {
	var out []hls.RenditionReport
	dir := path.Dir(playlistKey)
	for _, k := range s.renditionSiblings(ctx, playlistKey) {
		p, err := s.readPlaylist(ctx, k)
		if err != nil || len(p.Segments) == 0 {
			continue
		}
		r := hls.RenditionReport{URI: relativeURI(dir, k), LastMSN: uint64(lastMSN(p)), LastPart: -1}
		if n := len(p.TrailingParts); n > 0 {
			r.LastMSN, r.LastPart = uint64(lastMSN(p)+1), n-1
		} else if n := len(p.Segments[len(p.Segments)-1].Parts); n > 0 {
			r.LastPart = n - 1
		}
		out = append(out, r)
	}
	return out
}
