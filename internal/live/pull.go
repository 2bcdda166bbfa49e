package live

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/ingest"
	"github.com/weir-media/weir/internal/media/mpegts"
	"github.com/weir-media/weir/internal/metastore"
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
	head, _ := br.Peek(mpegts.PacketSize + 1)
	format := sniffFormat(head, resp.Header.Get("Content-Type"))
	if format == formatUnknown {
		if len(head) == 0 {
			// Nothing at all: a source that is not sending yet, or
			// hung up at once; not proof of a wrong URL.
			return false, errSourceEnded
		}
		return false, fmt.Errorf("source sends %q: %w", resp.Header.Get("Content-Type"), ErrNotMedia)
	}
	conv, err := converter(format)
	if err != nil {
		return false, err
	}

	sess, err := ingest.OpenSession(context.WithoutCancel(ctx), c.producer(), ingest.SessionOptions{
		StreamID:  id,
		EngineID:  "weir-pull",
		ChunkSize: c.cfg.ChunkSize,
		Logger:    c.log,
	})
	if err != nil {
		return false, err
	}
	c.log.Info("live pull connected", "stream", id, "format", format.String())
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
