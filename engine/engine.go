package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"

	"github.com/weir-media/weir/protocol"
)

// Times. Every time an engine reports, in the series of its documents and
// in the ranges it emits, is in milliseconds from the start of its own
// input: the chunk's first sample for a chunk engine, the stream's first
// byte for a stream engine, the file's start for a batch engine. The host
// that runs the engine moves them onto the TDO's timeline (the recording's
// time, which protocol messages use) by adding where that input starts on
// it: the chunk's startOffsetMs, the stream's relativeStartOffsetMS. An
// engine never needs to know where its input sits in the recording, and
// the same engine gives the same answer for the same media wherever it
// is cut.

// ErrIgnored is returned, usually wrapped with the reason, by a chunk
// engine that does not attempt a chunk (a MIME type it cannot read, an
// empty chunk): the host answers the chunk with status IGNORED and the
// error's text as infoMsg, instead of ERROR.
//
//	return nil, fmt.Errorf("chunk has no audio: %w", engine.ErrIgnored)
var ErrIgnored = errors.New("chunk ignored")

// Chunk is one media_chunk handed to a ChunkEngine.
type Chunk struct {
	// Meta is the media_chunk message: its MIME type, index, offsets on
	// the TDO timeline, size of a picture, task payload and chunkUUID.
	// The engine's answer is shifted by Meta.StartOffsetMs; engines read
	// the offsets to know the chunk's length, not to shift their output.
	Meta protocol.MediaChunk
	// Path names a local file holding the chunk's bytes, for engines that
	// hand the chunk to a program (ffprobe, tesseract). The host fetches
	// the cacheURI (or writes inline content) to it and removes it after
	// Process returns. It may be empty when the chunk carries its data
	// inline in Meta.Content; Open reads either.
	Path string
}

// Open returns the chunk's bytes: the file at Path, or, when there is no
// file, the inline content (Meta.Data: base64 decoded when
// Meta.ContentEncoding says so, text as is). The caller closes it.
func (c *Chunk) Open() (io.ReadCloser, error) {
	if c.Path == "" {
		b, err := c.Meta.Data()
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return os.Open(c.Path)
}

// DurationMs is the chunk's length: endOffsetMs - startOffsetMs.
func (c *Chunk) DurationMs() int64 { return c.Meta.EndOffsetMs - c.Meta.StartOffsetMs }

// ChunkEngine processes chunks one at a time. Process answers one chunk
// with a vtn-standard document whose series are timed from the chunk's
// start (a series covering the whole chunk is [0, DurationMs]); nil means
// the chunk was processed and nothing was found. Errors wrapping
// ErrIgnored mark the chunk IGNORED; other errors mark it ERROR with the
// error's text.
//
// A host calls Process from one goroutine per engine instance, with a
// context that ends when the chunk's task is cancelled or the host stops.
// Options are the chunk's task's, parsed against the engine's spec.
type ChunkEngine interface {
	Process(ctx context.Context, c *Chunk, opts Options) (*protocol.Document, error)
}

// Stream is the input of a StreamEngine: one stream of a stream topic.
type Stream struct {
	// Init is the stream's stream_init: its MIME type and ffmpeg format,
	// expected duration, and where it starts on the TDO timeline (which
	// the host's Emitter applies).
	Init protocol.StreamInit
	// Body reads the raw_stream bytes in order. It returns io.EOF at the
	// stream's stream_eof, and an error when the stream broke (its
	// integrity checks failed, or the task was stopped: a forced EOF).
	Body io.Reader
}

// StreamEngine reads a stream as it arrives and emits output as it goes,
// through the Emitter, in time order. It finds media time in the bytes
// themselves (by demuxing them, or from the byte rate of raw audio); a
// stream carries no clock of its own. Process returns nil once Body is
// exhausted and all output is emitted, or the first error. A live stream
// may never end: Process then runs until its context ends.
type StreamEngine interface {
	Process(ctx context.Context, s *Stream, opts Options, emit *Emitter) error
}

// File is the input of a BatchEngine: the whole media, at once.
type File struct {
	// Path names a local file holding the media, removed by the host
	// after Process returns.
	Path string
	// MimeType is the media's type ("video/mp4").
	MimeType string
	// DurationMs is the media's duration when known, 0 otherwise.
	DurationMs int64
}

// BatchEngine processes a whole input at once and emits its output
// through the Emitter, in time order, before Process returns.
type BatchEngine interface {
	Process(ctx context.Context, f *File, opts Options, emit *Emitter) error
}
