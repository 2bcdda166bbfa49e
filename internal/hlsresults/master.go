package hlsresults

import (
	"context"
	"errors"
	"fmt"
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

// liveMaster writes the master of a live stream: one variant, the media
// playlist ref, with BANDWIDTH measured over the segments it lists and
// CODECS and RESOLUTION read from its first segment.
func (s *Service) liveMaster(ctx context.Context, st metastore.Stream, ref string, ext hls.MasterExtension) ([]byte, error) {
	media, err := s.mediaPlaylist(ctx, st.ID+"/"+ref)
	if err != nil {
		return nil, err
	}
	rows, err := s.rows(ctx, st.ID, "", media)
	if err != nil {
		return nil, err
	}
	var sizes []hls.SegmentSize
	first := ""
	for i := range media.Segments {
		if r, ok := rows[int64(media.MediaSequence)+int64(i)]; ok {
			sizes = append(sizes, hls.SegmentSize{Bytes: r.Size, Duration: time.Duration(r.DurationUS) * time.Microsecond})
			if first == "" {
				first = r.Key
			}
		}
	}
	v := hls.Variant{URI: ref, Name: "live",
		Bandwidth: max(hls.PeakBitrate(sizes, time.Duration(media.TargetDurationSeconds())*time.Second), 1)}
	if first != "" {
		lv := s.liveVariant(ctx, st.ID, first)
		v.Codecs, v.Width, v.Height = lv.codecs, lv.width, lv.height
	}
	m := hls.MasterPlaylist{IndependentSegments: media.IndependentSegments, SessionData: ext.SessionData, Variants: []hls.Variant{v}}
	if ext.Subtitles != nil {
		m.Renditions = []hls.Rendition{*ext.Subtitles}
		m.Variants[0].Subtitles = ext.Subtitles.GroupID
	}
	return m.Encode()
}

// liveVariant reads the codecs and picture size of a live stream from one
// of its segments, once per stream while the cache keeps it.
func (s *Service) liveVariant(ctx context.Context, streamID, key string) liveVariant {
	if lv, ok := s.codecs.get(streamID); ok {
		return lv
	}
	var lv liveVariant
	data, err := s.readObject(ctx, key)
	if err == nil {
		var info hls.SegmentInfo
		if info, err = hls.InspectTS(data); err == nil {
			lv.codecs, lv.width, lv.height = info.Codecs, info.Width, info.Height
		}
	}
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		s.Log.Warn("hls results: reading a live segment's codecs", "key", key, "err", err)
	}
	s.codecs.put(streamID, lv)
	return lv
}
