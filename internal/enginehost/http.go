package enginehost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/protocol"
)

// Defaults of HTTPProcessor.
const (
	// DefaultHTTPAttempts is how many times a chunk is sent to an engine
	// that fails it in a way worth retrying.
	DefaultHTTPAttempts = 3
	// DefaultHTTPBackoff is the wait before the second attempt; it doubles
	// with each attempt up to DefaultHTTPMaxBackoff, with jitter.
	DefaultHTTPBackoff    = 250 * time.Millisecond
	DefaultHTTPMaxBackoff = 5 * time.Second
	// DefaultMaxResponseBytes caps an engine's answer.
	DefaultMaxResponseBytes = 16 << 20
	// excerptBytes is how much of an error body an error message quotes.
	excerptBytes = 256
)

// HTTPProcessor sends chunks to an external engine over HTTP, as
// Veritone's engine toolkit does: POST <url>/process, multipart/form-data
// with the chunk's bytes in field "chunk" and its metadata in the fields
// chunkMimeType, startOffsetMS, endOffsetMS, width, height, chunkIndex,
// chunkUUID, taskId, jobId, tdoId, cacheURI (when set) and payload (the
// task's options as a JSON object in a string). The engine answers:
//
//   - 200 with a vtn-standard JSON document, series timed from the
//     chunk's start: the result;
//   - 204: the chunk is ignored (an error wrapping engine.ErrIgnored);
//   - 5xx or 429, or no answer (a refused connection, a timeout): tried
//     again after a backoff with jitter, up to the attempts limit, then an
//     error naming the last status and quoting its body;
//   - any other status: an error at once, not retried.
//
// A 200 whose body is not a valid document is an error starting with
// "malformed output: ". It is safe for concurrent use.
type HTTPProcessor struct {
	ep             engine.HTTPEndpoint
	client         *http.Client
	attempts       int
	backoff, limit time.Duration
	attemptTimeout time.Duration
	maxBody        int64
}

// HTTPOption configures an HTTPProcessor.
type HTTPOption func(*HTTPProcessor)

// WithHTTPClient sets the client requests go through (default: a client
// without an overall timeout; the chunk's context bounds each call).
func WithHTTPClient(c *http.Client) HTTPOption { return func(p *HTTPProcessor) { p.client = c } }

// WithAttempts sets how many times a chunk is sent at most (default
// DefaultHTTPAttempts; at least 1).
func WithAttempts(n int) HTTPOption { return func(p *HTTPProcessor) { p.attempts = max(n, 1) } }

// WithBackoff sets the wait before the second attempt and the most any
// wait grows to (defaults DefaultHTTPBackoff, DefaultHTTPMaxBackoff).
func WithBackoff(first, limit time.Duration) HTTPOption {
	return func(p *HTTPProcessor) { p.backoff, p.limit = first, max(limit, first) }
}

// WithAttemptTimeout bounds each attempt; an attempt that runs out is
// retried like a 5xx. Zero (the default) leaves only the chunk's timeout.
func WithAttemptTimeout(d time.Duration) HTTPOption {
	return func(p *HTTPProcessor) { p.attemptTimeout = d }
}

// WithMaxResponseBytes caps the engine's answer (default
// DefaultMaxResponseBytes); a longer body is malformed output.
func WithMaxResponseBytes(n int64) HTTPOption { return func(p *HTTPProcessor) { p.maxBody = n } }

// NewHTTP returns the processor of the external engine at ep.
func NewHTTP(ep engine.HTTPEndpoint, opts ...HTTPOption) *HTTPProcessor {
	p := &HTTPProcessor{
		ep: ep, client: &http.Client{}, attempts: DefaultHTTPAttempts,
		backoff: DefaultHTTPBackoff, limit: DefaultHTTPMaxBackoff, maxBody: DefaultMaxResponseBytes,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Ready asks the engine's GET /ready whether it takes work: nil when it
// answers 200.
func (p *HTTPProcessor) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.ep.ReadyURL(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("engine at %s is not ready: %w", p.ep.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("engine at %s is not ready: GET /ready answered %s%s", p.ep.URL, resp.Status, readExcerpt(resp.Body))
	}
	return nil
}

// Process implements Processor.
func (p *HTTPProcessor) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	body, err := newChunkBody(c, opts)
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 1; attempt <= p.attempts; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, p.wait(attempt)); err != nil {
				return nil, fmt.Errorf("%w (after %d attempts; the last answer: %v)", err, attempt-1, last)
			}
		}
		doc, err, retry := p.attempt(ctx, body)
		if !retry {
			return doc, err
		}
		if ctx.Err() != nil {
			// The chunk's time ran out during this attempt: the answer
			// worth reporting is the last one the engine gave.
			if last == nil {
				last = err
			}
			return nil, fmt.Errorf("%w (after %d attempts; the last answer: %v)", ctx.Err(), attempt, last)
		}
		last = err
	}
	return nil, fmt.Errorf("engine failed %d attempts: %w", p.attempts, last)
}

// wait is the backoff before attempt n (n >= 2): the base doubled per
// attempt, capped, less up to half of it at random so instances that
// failed together do not retry together.
func (p *HTTPProcessor) wait(n int) time.Duration {
	d := p.backoff
	for i := 2; i < n && d < p.limit; i++ {
		d *= 2
	}
	d = min(d, p.limit)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt posts the chunk once. retry says whether the failure is worth
// another attempt.
func (p *HTTPProcessor) attempt(ctx context.Context, body *chunkBody) (doc *protocol.Document, err error, retry bool) {
	actx := ctx
	if p.attemptTimeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, p.attemptTimeout)
		defer cancel()
	}
	r, err := body.reader()
	if err != nil {
		return nil, err, false
	}
	defer r.Close()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, p.ep.ProcessURL(), r)
	if err != nil {
		return nil, err, false
	}
	req.ContentLength = body.size
	req.Header.Set("Content-Type", body.contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, fmt.Errorf("POST %s: no answer within %v", p.ep.ProcessURL(), p.attemptTimeout), true
		}
		return nil, fmt.Errorf("POST %s: %w", p.ep.ProcessURL(), unwrapURLError(err)), true
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		data, err := readCapped(resp.Body, p.maxBody)
		if err != nil {
			if ctx.Err() == nil && actx.Err() != nil {
				return nil, fmt.Errorf("POST %s: answer not read within %v", p.ep.ProcessURL(), p.attemptTimeout), true
			}
			return nil, err, false
		}
		doc, err := ParseResponse(data)
		return doc, err, false
	case code == http.StatusNoContent:
		return nil, fmt.Errorf("engine answered 204 No Content: %w", engine.ErrIgnored), false
	case code >= 500 || code == http.StatusTooManyRequests:
		return nil, fmt.Errorf("engine answered %s%s", resp.Status, readExcerpt(resp.Body)), true
	default:
		return nil, fmt.Errorf("engine answered %s%s", resp.Status, readExcerpt(resp.Body)), false
	}
}

// unwrapURLError drops url.Error's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readCapped reads at most limit bytes of r, and fails when there are
// more.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read the engine's answer: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: the answer is longer than %d bytes", ErrMalformedOutput, limit)
	}
	return data, nil
}

// readExcerpt quotes the start of an error body, for error messages:
// ": \"...\"", or "" when the body is empty.
func readExcerpt(r io.Reader) string {
	data, _ := io.ReadAll(io.LimitReader(r, excerptBytes+1))
	s := strings.TrimSpace(string(data))
	if s == "" {
		return ""
	}
	more := ""
	if len(data) > excerptBytes {
		s, more = strings.TrimSpace(string(data[:excerptBytes])), "…"
	}
	return fmt.Sprintf(": %q%s", s, more)
}

// chunkBody is a chunk's multipart request body: the metadata fields and
// the file part's header (head), the chunk's bytes, and the closing
// boundary (tail). The bytes are read afresh for each attempt, so a large
// chunk is never held in memory; the length is known, so engines that
// cannot read a chunked request body still can read it.
type chunkBody struct {
	chunk       *engine.Chunk
	head, tail  []byte
	size        int64
	contentType string
}

// newChunkBody lays out the request body of c.
func newChunkBody(c *engine.Chunk, opts engine.Options) (*chunkBody, error) {
	payload, err := json.Marshal(opts.Map())
	if err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	n, err := chunkSize(c)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	m := c.Meta
	fields := [][2]string{
		{"chunkMimeType", m.MimeType},
		{"startOffsetMS", strconv.FormatInt(m.StartOffsetMs, 10)},
		{"endOffsetMS", strconv.FormatInt(m.EndOffsetMs, 10)},
		{"width", strconv.FormatInt(m.Width, 10)},
		{"height", strconv.FormatInt(m.Height, 10)},
		{"chunkIndex", strconv.FormatInt(m.ChunkIndex, 10)},
		{"chunkUUID", m.ChunkUUID},
		{"taskId", m.TaskID},
		{"jobId", m.JobID},
		{"tdoId", m.TDOID},
	}
	if m.CacheURI != "" {
		fields = append(fields, [2]string{"cacheURI", m.CacheURI})
	}
	fields = append(fields, [2]string{"payload", string(payload)})
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="chunk"; filename=%q`, "chunk-"+strconv.FormatInt(m.ChunkIndex, 10)))
	hdr.Set("Content-Type", m.MimeType)
	if _, err := mw.CreatePart(hdr); err != nil {
		return nil, err
	}
	headLen := buf.Len()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	all := buf.Bytes()
	b := &chunkBody{chunk: c, head: all[:headLen], tail: all[headLen:], contentType: mw.FormDataContentType()}
	b.size = int64(len(b.head)) + n + int64(len(b.tail))
	return b, nil
}

// chunkSize is the size of the chunk's bytes.
func chunkSize(c *engine.Chunk) (int64, error) {
	if c.Path == "" {
		data, err := c.Meta.Data()
		return int64(len(data)), err
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// reader returns the whole body; the caller closes it.
func (b *chunkBody) reader() (io.ReadCloser, error) {
	f, err := b.chunk.Open()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b.head), f, bytes.NewReader(b.tail)), f}, nil
}
