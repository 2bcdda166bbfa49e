package live

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/push"
)

// sourceFormat is what a pulled source sends.
type sourceFormat int

const (
	formatUnknown sourceFormat = iota
	formatTS
	formatADTS
	formatMP3
)

func (f sourceFormat) String() string {
	return [...]string{"unknown", "mpeg-ts", "aac (adts)", "mp3"}[f]
}

// sniffFormat tells the format of a source from its first bytes, falling
// back on the content type.
func sniffFormat(head []byte, contentType string) sourceFormat {
	switch {
	case len(head) > tsPacketSize && head[0] == tsSyncByte && head[tsPacketSize] == tsSyncByte:
		return formatTS
	case len(head) >= 2 && head[0] == 0xff && head[1]&0xf6 == 0xf0:
		return formatADTS
	case len(head) >= 3 && string(head[:3]) == "ID3",
		len(head) >= 2 && head[0] == 0xff && head[1]&0xe0 == 0xe0 && head[1]&0x06 != 0:
		return formatMP3
	}
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	switch ct {
	case "video/mp2t", "video/mpeg", "application/octet-stream+mpegts":
		return formatTS
	case "audio/aac", "audio/aacp", "audio/x-aac", "audio/x-aacp":
		return formatADTS
	case "audio/mpeg", "audio/mp3", "audio/x-mpeg":
		return formatMP3
	}
	return formatUnknown
}

// ErrNotMedia is the failure of a pulled source whose response is not
// MPEG-TS, AAC (ADTS) or MP3, by its first bytes and its Content-Type (an
// HTML page, a playlist).
var ErrNotMedia = errors.New("not MPEG-TS, AAC or MP3")

// SourceStatusError is the failure of a pulled source that answered with
// an HTTP status other than 200.
type SourceStatusError struct {
	Code   int
	Status string // as the response gave it, "404 Not Found"
}

func (e *SourceStatusError) Error() string { return "source answered " + e.Status }

// PermanentSourceError is the default ControllerConfig.Permanent: it
// reports whether err, the failure of one attempt to pull a source, would
// come back on every retry. Those are:
//
//   - a refused address: the error names --allow-private-sources, as the
//     HTTP client of weir serve says when it will not dial a loopback or
//     private address;
//   - an unsupported scheme (a redirect to ftp://, say);
//   - an HTTP status 4xx other than 408 Request Timeout and 429 Too Many
//     Requests (a SourceStatusError);
//   - a response that is not media (ErrNotMedia).
//
// Everything else (refused or dropped connections, timeouts, DNS failures,
// 5xx) may mend and is retried.
func PermanentSourceError(err error) bool {
	if err == nil {
		return false
	}
	if se, ok := errors.AsType[*SourceStatusError](err); ok {
		return se.Code >= 400 && se.Code < 500 && se.Code != http.StatusRequestTimeout && se.Code != http.StatusTooManyRequests
	}
	if errors.Is(err, ErrNotMedia) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "allow-private-sources") || strings.Contains(msg, "unsupported protocol scheme")
}

// runPull pulls url into stream id until ctx ends or the stream ends,
// reconnecting with a growing delay when the source fails. Each connection
// is a publisher session of its own, so a reconnect shows up in the
// playlist as a discontinuity.
//
// Until the source has delivered media to the stream (the stream is still
// created and no attempt got media), a failure that
// ControllerConfig.Permanent calls permanent fails the stream instead,
// with the error as its error text. A source that has worked is retried
// whatever the error: live sources come and go (an Icecast mount answers
// 404 while its encoder is away).
func (c *Controller) runPull(ctx context.Context, id, src string) {
	log := c.log.With("stream", id)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Stop pulling once the stream has ended or failed, however that
	// happened.
	go func() {
		t := time.NewTicker(statusCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if st, err := c.cfg.Meta.GetStream(ctx, id); err == nil && st.Status.Terminal() {
				log.Info("live pull: the stream has ended; hanging up")
				cancel()
				return
			}
		}
	}()
	wait := 500 * time.Millisecond
	worked := false // the source has delivered media to the stream
	for ctx.Err() == nil {
		st, err := c.cfg.Meta.GetStream(ctx, id)
		if err == nil && st.Status.Terminal() {
			return
		}
		if err == nil && st.Status != metastore.StatusCreated {
			worked = true
		}
		started := time.Now()
		connected, err := c.pullOnce(ctx, id, src)
		if ctx.Err() != nil {
			return
		}
		worked = worked || connected
		if !worked && c.cfg.Permanent(err) {
			c.failPull(ctx, id, err)
			return
		}
		if time.Since(started) > 30*time.Second {
			wait = 500 * time.Millisecond // it worked for a while
		}
		log.Warn("live pull: source stopped; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, c.cfg.PullRetryMax)
	}
}

// failPull fails stream id for a source that cannot be pulled.
func (c *Controller) failPull(ctx context.Context, id string, cause error) {
	c.log.Error("live pull: the source cannot be pulled; the stream failed", "stream", id, "err", cause)
	if _, err := c.cfg.Meta.TransitionStatus(ctx, id, metastore.StatusFailed, func(s *metastore.Stream) {
		s.Error = fmt.Sprintf("pulling the source failed: %v", cause)
	}); err != nil {
		c.log.Warn("live control: recording the failure", "stream", id, "err", err)
	}
}

// errSourceEnded: the source closed its response.
var errSourceEnded = errors.New("source ended its response")

// pullOnce reads the source over one HTTP response. connected reports
// that the source answered with media, whatever happened after.
func (c *Controller) pullOnce(ctx context.Context, id, src string) (connected bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("User-Agent", "weir-live-pull")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, &SourceStatusError{Code: resp.StatusCode, Status: resp.Status}
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	head, _ := br.Peek(tsPacketSize + 1)
	format := sniffFormat(head, resp.Header.Get("Content-Type"))
	if format == formatUnknown {
		if len(head) == 0 {
			// Nothing at all: a source that is not sending yet, or
			// hung up at once; not proof of a wrong URL.
			return false, errSourceEnded
		}
		return false, fmt.Errorf("source sends %q: %w", resp.Header.Get("Content-Type"), ErrNotMedia)
	}

	sess, err := push.OpenSession(context.WithoutCancel(ctx), c.producer(), push.SessionOptions{
		StreamID:  id,
		EngineID:  "weir-pull",
		ChunkSize: c.cfg.ChunkSize,
		Logger:    c.log,
	})
	if err != nil {
		return false, err
	}
	c.log.Info("live pull connected", "stream", id, "format", format.String())
	var conv func([]byte) ([]byte, error)
	switch format {
	case formatADTS:
		conv = newADTSToTS().convert
	case formatMP3:
		conv = newMP3ToTS().convert
	}
	buf := make([]byte, 32<<10)
	var readErr error
	for {
		n, err := br.Read(buf)
		if n > 0 {
			at := time.Now()
			out := buf[:n]
			if conv != nil {
				if out, err = conv(out); err != nil {
					readErr = err
					break
				}
			}
			if werr := sess.Write(out, at); werr != nil {
				readErr = werr
				break
			}
		}
		if err != nil {
			readErr = err
			break
		}
	}
	if errors.Is(readErr, io.EOF) {
		readErr = errSourceEnded
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := sess.Close(cctx, ctx.Err() != nil); err != nil {
		c.log.Warn("live pull: closing the stream", "stream", id, "err", err)
	}
	return true, readErr
}

// audioTSOffset starts pulled audio at 1 s, so the PCR (100 ms earlier)
// is never negative.
const audioTSOffset = 90000

// audioMuxer wraps a single-track MPEG-TS writer.
type audioMuxer struct {
	buf   bytes.Buffer
	w     *mpegts.Writer
	track *mpegts.Track
}

func (m *audioMuxer) init(codec tscodecs.Codec) error {
	m.track = &mpegts.Track{Codec: codec}
	m.w = &mpegts.Writer{W: &m.buf, Tracks: []*mpegts.Track{m.track}}
	return m.w.Initialize()
}

func (m *audioMuxer) take(out []byte) []byte {
	out = append(out, m.buf.Bytes()...)
	m.buf.Reset()
	return out
}

// adtsToTS turns an ADTS (AAC) byte stream into MPEG-TS, timing frames by
// their sample count.
type adtsToTS struct {
	split   frameSplitter
	mux     audioMuxer
	cfg     mpeg4audio.AudioSpecificConfig
	samples int64
}

func newADTSToTS() *adtsToTS {
	return &adtsToTS{split: frameSplitter{frameLen: adtsFrameLen}}
}

func (a *adtsToTS) convert(data []byte) ([]byte, error) {
	var out []byte
	for _, frame := range a.split.push(data) {
		var pkts mpeg4audio.ADTSPackets
		if err := pkts.Unmarshal(frame); err != nil || len(pkts) != 1 {
			continue // a damaged frame; the splitter resyncs on the next one
		}
		p := pkts[0]
		if a.mux.w == nil || p.SampleRate != a.cfg.SampleRate || p.ChannelCount != a.cfg.ChannelCount || p.Type != a.cfg.Type { //nolint:staticcheck
			if a.mux.w != nil {
				return nil, errors.New("the AAC stream changed its format mid-way")
			}
			a.cfg = mpeg4audio.AudioSpecificConfig{Type: p.Type, SampleRate: p.SampleRate, ChannelCount: p.ChannelCount} //nolint:staticcheck
			if err := a.mux.init(&tscodecs.MPEG4Audio{Config: a.cfg}); err != nil {
				return nil, err
			}
		}
		pts := a.samples*90000/int64(a.cfg.SampleRate) + audioTSOffset
		if err := a.mux.w.WriteMPEG4Audio(a.mux.track, pts, [][]byte{p.AU}); err != nil {
			return nil, err
		}
		a.samples += mpeg4audio.SamplesPerAccessUnit
		out = a.mux.take(out)
	}
	return out, nil
}

// mp3ToTS turns an MPEG-1 audio byte stream into MPEG-TS.
type mp3ToTS struct {
	split   frameSplitter
	mux     audioMuxer
	samples int64
	rate    int
}

func newMP3ToTS() *mp3ToTS {
	return &mp3ToTS{split: frameSplitter{frameLen: mp3FrameLen}}
}

func (m *mp3ToTS) convert(data []byte) ([]byte, error) {
	var out []byte
	for _, frame := range m.split.push(data) {
		var h mpeg1audio.FrameHeader
		if err := h.Unmarshal(frame); err != nil || h.MPEG2 {
			continue // MPEG-2 (low sample rate) frames cannot go in MPEG-TS as MPEG-1 audio
		}
		if m.mux.w == nil {
			if err := m.mux.init(&tscodecs.MPEG1Audio{}); err != nil {
				return nil, err
			}
			m.rate = h.SampleRate
		}
		if m.rate <= 0 {
			continue
		}
		pts := m.samples*90000/int64(m.rate) + audioTSOffset
		if err := m.mux.w.WriteMPEG1Audio(m.mux.track, pts, [][]byte{frame}); err != nil {
			return nil, err
		}
		m.samples += int64(h.SampleCount())
		out = m.mux.take(out)
	}
	return out, nil
}

// frameSplitter cuts a byte stream into the frames frameLen recognises,
// skipping bytes that do not start a frame (and ID3 tags).
type frameSplitter struct {
	buf []byte
	// frameLen returns the length of the frame at the start of b, 0 when
	// b does not start a frame, or -1 when more bytes are needed to tell.
	frameLen func(b []byte) int
}

// maxSplitterBuffer bounds what the splitter keeps while looking for a
// frame.
const maxSplitterBuffer = 1 << 20

func (s *frameSplitter) push(data []byte) [][]byte {
	s.buf = append(s.buf, data...)
	var frames [][]byte
	i := 0
	for i < len(s.buf) {
		if n := id3Len(s.buf[i:]); n != 0 {
			if n < 0 || i+n > len(s.buf) {
				break
			}
			i += n
			continue
		}
		n := s.frameLen(s.buf[i:])
		if n < 0 {
			break
		}
		if n == 0 {
			i++
			continue
		}
		if i+n > len(s.buf) {
			break
		}
		frames = append(frames, bytes.Clone(s.buf[i:i+n]))
		i += n
	}
	s.buf = append(s.buf[:0], s.buf[i:]...)
	if len(s.buf) > maxSplitterBuffer {
		s.buf = s.buf[:0]
	}
	return frames
}

// id3Len returns the length of an ID3v2 tag at the start of b, 0 when
// there is none, -1 when b is too short to tell.
func id3Len(b []byte) int {
	if len(b) < 3 || string(b[:3]) != "ID3" {
		if len(b) < 3 && len(b) > 0 && strings.HasPrefix("ID3", string(b)) {
			return -1
		}
		return 0
	}
	if len(b) < 10 {
		return -1
	}
	size := int(b[6]&0x7f)<<21 | int(b[7]&0x7f)<<14 | int(b[8]&0x7f)<<7 | int(b[9]&0x7f)
	n := 10 + size
	if b[5]&0x10 != 0 {
		n += 10 // footer
	}
	return n
}

// adtsFrameLen reads an ADTS header.
func adtsFrameLen(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	if b[0] != 0xff || b[1]&0xf6 != 0xf0 {
		return 0
	}
	if len(b) < 7 {
		return -1
	}
	n := int(b[3]&0x03)<<11 | int(b[4])<<3 | int(b[5])>>5
	hdr := 7
	if b[1]&0x01 == 0 {
		hdr = 9
	}
	if n <= hdr || (b[2]>>2)&0x0f >= 13 {
		return 0
	}
	return n
}

// mp3FrameLen reads an MPEG audio frame header.
func mp3FrameLen(b []byte) int {
	if len(b) < 2 {
		return -1
	}
	if b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return 0
	}
	if len(b) < 4 {
		return -1
	}
	var h mpeg1audio.FrameHeader
	if err := h.Unmarshal(b); err != nil {
		return 0
	}
	n := h.FrameLen()
	if n < 4 {
		return 0
	}
	return n
}
