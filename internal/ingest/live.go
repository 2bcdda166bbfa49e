package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
)

// LiveOptions configure PullLive.
type LiveOptions struct {
	// StreamID is the live stream; the pull writes to
	// protocol.StreamTopic(StreamID).
	StreamID string
	// Source is the http(s) URL of the feed.
	Source string
	// HTTPClient fetches the source; default a client without an overall
	// timeout, since a live stream never ends by itself.
	HTTPClient *http.Client
	// ReadTimeout bounds how long the source may send nothing (default
	// DefaultReadTimeout; negative for no limit).
	ReadTimeout time.Duration
	// ChunkSize is the most bytes per raw_stream record (default
	// protocol.DefaultChunkSize).
	ChunkSize int
	// Lease, when set, is the lease the pull holds: every record carries
	// its token, and nothing is written once it is lost (see
	// SessionOptions.Lease).
	Lease *metastore.HeldLease
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// LiveEngineID names pulled live streams in their heartbeats.
const LiveEngineID = "weir-pull"

// errSourceEnded: the source closed its response.
var errSourceEnded = errors.New("source ended its response")

// PullLive reads a live HTTP(S) source over one response into
// protocol.StreamTopic(o.StreamID) as MPEG-TS, through a Session (so raw
// records carry their receive time), until the source ends or fails or ctx
// ends. The source may send MPEG-TS, which passes through, or a bare AAC
// (ADTS) or MP3 stream, as Icecast stations do, which is wrapped in
// MPEG-TS; its format is told from its first bytes, then its Content-Type.
//
// connected reports that the source answered with media, so a session was
// opened and ended with its stream_eof (forcedEOF when ctx ended); err says
// why the response ended. Failures before that (see IsPermanent) publish
// nothing: a status other than 2xx (*HTTPStatusError), a response that is
// not media (wrapping media.ErrNoMedia), an address or scheme the client
// refuses, a stall (ErrStalled).
func PullLive(ctx context.Context, b bus.Bus, o LiveOptions) (connected bool, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	u, err := url.Parse(o.Source)
	if err != nil {
		return false, fmt.Errorf("source URL: %w", err)
	}
	body, err := httpGet{client: o.HTTPClient, url: u, userAgent: "weir-live-pull", readTimeout: o.ReadTimeout}.open(ctx)
	if err != nil {
		return false, err
	}
	defer body.Close()
	br := bufio.NewReaderSize(body, 64<<10)
	head, _ := br.Peek(mpegts.PacketSize + 1)
	contentType := body.contentType
	format := sniffFormat(head, contentType)
	if format == formatUnknown {
		if len(head) == 0 {
			// Nothing at all: a source that is not sending yet, or
			// hung up at once; not proof of a wrong URL.
			return false, errSourceEnded
		}
		return false, fmt.Errorf("source sends %q: not MPEG-TS, AAC or MP3: %w", contentType, media.ErrNoMedia)
	}
	conv, err := converter(format)
	if err != nil {
		return false, err
	}

	sess, err := OpenSession(context.WithoutCancel(ctx), b, SessionOptions{
		StreamID:  o.StreamID,
		EngineID:  LiveEngineID,
		ChunkSize: o.ChunkSize,
		Lease:     o.Lease,
		Logger:    o.Logger,
	})
	if err != nil {
		return false, err
	}
	o.Logger.Info("live pull connected", "stream", o.StreamID, "format", format.String())
	readErr := copyLive(br, conv, sess)
	if errors.Is(readErr, io.EOF) {
		readErr = errSourceEnded
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := sess.Close(cctx, ctx.Err() != nil); err != nil {
		o.Logger.Warn("live pull: closing the stream", "stream", o.StreamID, "err", err)
	}
	return true, readErr
}

// copyLive writes what r sends, through conv when set, to sess until a
// read or a write fails, and returns that error.
func copyLive(r io.Reader, conv func([]byte) ([]byte, error), sess *Session) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			at := time.Now()
			out := buf[:n]
			if conv != nil {
				var cerr error
				if out, cerr = conv(out); cerr != nil {
					return cerr
				}
			}
			if werr := sess.Write(out, at); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// sourceFormat is what a pulled live source sends.
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
	case len(head) > mpegts.PacketSize && head[0] == mpegts.SyncByte && head[mpegts.PacketSize] == mpegts.SyncByte:
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

// converter returns what turns a source's bytes into MPEG-TS: nil for
// MPEG-TS, which passes through, or an mpegts.AudioRemuxer for a bare
// audio stream.
func converter(f sourceFormat) (func([]byte) ([]byte, error), error) {
	if f == formatTS {
		return nil, nil
	}
	codec := mpegts.CodecAAC
	if f == formatMP3 {
		codec = mpegts.CodecMPEGAudio
	}
	r, err := mpegts.NewAudioRemuxer(codec)
	if err != nil {
		return nil, err
	}
	return r.Remux, nil
}
