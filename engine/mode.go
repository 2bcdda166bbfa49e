package engine

import "fmt"

// Mode is how an engine takes its input, named as Veritone's manifests name
// it (engineMode). The mode decides which interface the engine implements
// and how a host feeds it.
type Mode string

// The engine modes weir runs. Veritone's fourth mode, "legacy", is for
// engines that are not real-time; weir does not run those.
const (
	// ModeChunk engines get one media_chunk at a time (a frame, a few
	// seconds of audio) and answer it with one document: ChunkEngine.
	// Chunks are independent, so a chunk engine scales out by running
	// more instances.
	ModeChunk Mode = "chunk"
	// ModeStream engines read a whole stream as it arrives (stream_init,
	// then the raw bytes) and emit time-coded output as they go:
	// StreamEngine.
	ModeStream Mode = "stream"
	// ModeBatch engines get the whole input at once, as a file, and emit
	// their output for it: BatchEngine.
	ModeBatch Mode = "batch"
)

// Modes lists the modes in the order the docs present them.
var Modes = []Mode{ModeChunk, ModeStream, ModeBatch}

// ParseMode checks an engineMode value. Veritone's "legacy" gets its own
// message, since a manifest written for Veritone may carry it.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeChunk, ModeStream, ModeBatch:
		return m, nil
	case "legacy":
		return "", fmt.Errorf("engineMode %q is for engines that are not real-time, which weir does not run; use chunk, stream or batch", s)
	case "":
		return "", fmt.Errorf("engineMode is required: chunk, stream or batch")
	}
	return "", fmt.Errorf("engineMode %q is not one of chunk, stream, batch", s)
}
