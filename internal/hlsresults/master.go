package hlsresults

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/hls"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// liveVariant is what a live stream's generated master says about its
// one variant, read from a segment.
type liveVariant struct {
	codecs        []string
	width, height int
}

// master answers master.m3u8: a title's stored master extended with the
// renditions its jobs give, or a live stream's generated master. A title
// without jobs, or an unknown stream, is left to the object store.
func (s *Service) master(ctx context.Context, streamID string) (*Response, error) {
	st, err := s.stream(ctx, streamID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	jobs, err := s.progress(ctx, streamID)
	if err != nil {
		return nil, err
	}
	if st.Kind == metastore.KindVOD && len(jobs) == 0 {
		return nil, nil // nothing to add: the stored master as it is
	}
	ref, err := s.mirrored(ctx, st)
	if err != nil {
		if st.Kind == metastore.KindVOD && errors.Is(err, ErrNotFound) {
			return nil, nil // no master yet: the object store says so
		}
		return nil, err
	}
	ext := hls.MasterExtension{}
	if _, ok := captionJob(jobs); ok {
		ext.Subtitles = &hls.Rendition{Type: "SUBTITLES", GroupID: SubtitlesGroup, Name: SubtitlesName,
			Language: SubtitlesLang, Autoselect: true, URI: subsDir + ref}
	}
	if len(jobs) > 0 {
		ext.SessionData = []hls.SessionData{{DataID: MetadataDataID, URI: metaDir + "index.json"}}
	}
	var body []byte
	if st.Kind == metastore.KindLive {
		body, err = s.liveMaster(ctx, st, ref, ext)
	} else {
		body, err = s.extendedMaster(ctx, st, ext)
	}
	if err != nil {
		return nil, err
	}
	return &Response{Body: body, ContentType: TypePlaylist, CacheControl: cacheMaster}, nil
}

func (s *Service) extendedMaster(ctx context.Context, st metastore.Stream, ext hls.MasterExtension) ([]byte, error) {
	data, err := s.readObject(ctx, st.ID+"/master.m3u8")
	if err != nil {
		return nil, err
	}
	out, err := hls.ExtendMaster(data, ext)
	if err != nil {
		return nil, fmt.Errorf("master playlist of %s: %w", st.ID, err)
	}
	return out, nil
}

// liveMaster writes the master of a live stream: the source's media
// playlist ref and, for a stream with a live ABR ladder, each rung's
// ({rung}/ref) that has segments, highest first, each with BANDWIDTH and
// AVERAGE-BANDWIDTH measured over the segments it lists and CODECS and
// RESOLUTION read from its first segment.
func (s *Service) liveMaster(ctx context.Context, st metastore.Stream, ref string, ext hls.MasterExtension) ([]byte, error) {
	v, media, err := s.measuredVariant(ctx, st.ID, "", ref)
	if err != nil {
		return nil, err
	}
	v.Name = "live"
	variants := []hls.Variant{v}
	for _, name := range ladderRungs(st.VariantsGenerated) {
		rv, _, err := s.measuredVariant(ctx, st.ID, name, name+"/"+ref)
		if errors.Is(err, ErrNotFound) {
			continue // not transcoded (yet, or taller than the source)
		}
		if err != nil {
			return nil, err
		}
		rv.Name = name
		variants = append(variants, rv)
	}
	m := hls.MasterPlaylist{IndependentSegments: media.IndependentSegments, SessionData: ext.SessionData, Variants: variants}
	if ext.Subtitles != nil {
		m.Renditions = []hls.Rendition{*ext.Subtitles}
		for i := range m.Variants {
			m.Variants[i].Subtitles = ext.Subtitles.GroupID
		}
	}
	return m.Encode()
}

// ladderRungs returns the rung names of a live stream's ladder, as its
// row keeps it ("480p=1400k").
func ladderRungs(ladder []string) []string {
	var names []string
	for _, r := range ladder {
		name, _, _ := strings.Cut(r, "=")
		if validName(name) {
			names = append(names, name)
		}
	}
	return names
}

// measuredVariant describes the media playlist uri (relative to the
// stream) of rendition ("" for the source) as a variant.
func (s *Service) measuredVariant(ctx context.Context, streamID, rendition, uri string) (hls.Variant, *hls.MediaPlaylist, error) {
	media, err := s.mediaPlaylist(ctx, streamID+"/"+uri)
	if err != nil {
		return hls.Variant{}, nil, err
	}
	rows, err := s.rows(ctx, streamID, rendition, media)
	if err != nil {
		return hls.Variant{}, nil, err
	}
	var sizes []hls.SegmentSize
	var keys []string
	for i := range media.Segments {
		if r, ok := rows[int64(media.MediaSequence)+int64(i)]; ok {
			sizes = append(sizes, hls.SegmentSize{Bytes: r.Size, Duration: time.Duration(r.DurationUS) * time.Microsecond})
			keys = append(keys, r.Key)
		}
	}
	v := hls.Variant{URI: uri,
		Bandwidth:        max(hls.PeakBitrate(sizes, time.Duration(media.TargetDurationSeconds())*time.Second), 1),
		AverageBandwidth: hls.AverageBitrate(sizes)}
	if media.Map != nil {
		// fMP4 (a Low-Latency HLS stream): the init segment says it all.
		if lv, err := s.initVariant(ctx, path.Join(path.Dir(streamID+"/"+uri), media.Map.URI)); err == nil {
			v.Codecs, v.Width, v.Height = lv.codecs, lv.width, lv.height
		}
	} else if len(keys) > 0 {
		cacheKey := streamID
		if rendition != "" {
			cacheKey += "/" + rendition
		}
		lv := s.liveVariant(ctx, cacheKey, keys)
		v.Codecs, v.Width, v.Height = lv.codecs, lv.width, lv.height
	}
	return v, media, nil
}

// liveVariant reads the codecs and picture size of a live stream from the
// first of its listed segments that starts with a key frame (a segment that
// continues an over-long GOP has no parameter sets to read the video codec
// from), once per stream while the cache keeps it. When none of the first
// few segments does, what was read is used and not kept, so a later
// request tries again.
func (s *Service) liveVariant(ctx context.Context, streamID string, keys []string) liveVariant {
	if lv, ok := s.codecs.get(streamID); ok {
		return lv
	}
	var lv liveVariant
	for _, key := range keys[:min(len(keys), maxCodecProbes)] {
		info, err := s.inspectSegment(ctx, key)
		if err != nil {
			continue
		}
		lv = liveVariant{codecs: info.Codecs, width: info.Width, height: info.Height}
		if info.StartsWithKeyFrame || !info.HasVideo {
			s.codecs.put(streamID, lv)
			return lv
		}
	}
	return lv
}

// initVariant reads the codecs and picture size of an fMP4 rendition from
// its initialization segment (object key), video first.
func (s *Service) initVariant(ctx context.Context, key string) (liveVariant, error) {
	if lv, ok := s.codecs.get(key); ok {
		return lv, nil
	}
	data, err := s.readObject(ctx, key)
	if err != nil {
		return liveVariant{}, err
	}
	tracks, err := hls.ParseInit(data)
	if err != nil {
		s.Log.Warn("hls results: reading a live init segment's codecs", "key", key, "err", err)
		return liveVariant{}, err
	}
	var lv liveVariant
	for _, kind := range []string{"video", "audio"} {
		for _, t := range tracks {
			if t.Kind != kind || t.Codec == "" {
				continue
			}
			lv.codecs = append(lv.codecs, t.Codec)
			if kind == "video" && lv.width == 0 {
				lv.width, lv.height = t.Width, t.Height
			}
		}
	}
	s.codecs.put(key, lv)
	return lv, nil
}

// maxCodecProbes bounds the segments read to find a live stream's codecs.
const maxCodecProbes = 3

// inspectSegment reads one stored MPEG-TS segment's codecs and picture.
func (s *Service) inspectSegment(ctx context.Context, key string) (hls.SegmentInfo, error) {
	data, err := s.readObject(ctx, key)
	if err == nil {
		var info hls.SegmentInfo
		if info, err = hls.InspectTS(data); err == nil {
			return info, nil
		}
	}
	if !errors.Is(err, objstore.ErrNotFound) {
		s.Log.Warn("hls results: reading a live segment's codecs", "key", key, "err", err)
	}
	return hls.SegmentInfo{}, err
}
