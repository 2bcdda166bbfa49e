package chunker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/weir-media/weir/internal/media"
)

// input is how ffprobe and ffmpeg get the media: Run's pipe or RunFile's
// file. It is the only thing Run and RunFile do differently.
type input interface {
	// probe learns the input's streams; it is called once, first.
	probe(ctx context.Context, opts Options) (*probeInfo, error)
	// source is what ffmpeg reads: its protocol allow-list and -i URL.
	source() ffInput
	// connect wires ffmpeg's stdin before it starts and returns what
	// feeds it once started, which returns when the input has been fed.
	connect(cmd *exec.Cmd) (feed func(context.Context) error, err error)
}

// ffInput is ffmpeg's view of an input.
type ffInput struct {
	protocols string // media.ProtocolsPipe or media.ProtocolsFile
	url       string // "pipe:0" or "file:/abs/path"
}

// pipeInput is a stream ffmpeg reads on its stdin: ffprobe sees its start,
// which ffmpeg is then fed again before the rest.
type pipeInput struct {
	r      io.Reader
	src    *pump
	prefix []byte
}

func (in *pipeInput) probe(ctx context.Context, opts Options) (*probeInfo, error) {
	in.src = startPump(ctx, in.r)
	pr, err := probeStream(ctx, opts, in.src)
	if err != nil {
		return nil, err
	}
	in.prefix = pr.prefix
	return pr.info, nil
}

func (in *pipeInput) source() ffInput { return ffInput{media.ProtocolsPipe, "pipe:0"} }

func (in *pipeInput) connect(cmd *exec.Cmd) (func(context.Context) error, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("chunker: %w", err)
	}
	return func(ctx context.Context) error { return feed(ctx, stdin, in.prefix, in.src) }, nil
}

// fileInput is a local file ffprobe and ffmpeg open themselves, so they
// can seek in it (an MP4's index at its end).
type fileInput struct {
	url string // "file:" and the absolute path
}

// newFileInput checks that path is a local regular file and names it so
// that ffmpeg reads nothing else: "file:" and the absolute path, never a
// protocol the path might spell ("concat:a|b", "subfile,,...", "data:").
func newFileInput(path string) (*fileInput, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("chunker: input file %q: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("chunker: input file %q is not a readable local file: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("chunker: input file %q is not a regular file (%s)", path, fi.Mode().Type())
	}
	return &fileInput{url: "file:" + abs}, nil
}

func (in *fileInput) probe(ctx context.Context, opts Options) (*probeInfo, error) {
	return probeFile(ctx, opts, in.url)
}

func (in *fileInput) source() ffInput { return ffInput{media.ProtocolsFile, in.url} }

func (in *fileInput) connect(*exec.Cmd) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil // ffmpeg reads the file; stdin stays /dev/null
}
