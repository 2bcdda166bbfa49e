package chunker

import (
	"bufio"
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig reads the frames' size
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// event is a finished chunk from one output's reader, or its failure.
type event struct {
	chunk Chunk
	err   error
}

// testStarted, when set by a test, learns ffmpeg's pid.
var testStarted func(pid int)

// runFFmpeg starts ffmpeg on the plan, feeds it the input when it reads a
// pipe, and emits chunks as its segment lists report them.
func runFFmpeg(ctx context.Context, cancel context.CancelFunc, p *plan, dir string,
	in input, emit func(context.Context, Chunk) error) error {
	opts := p.opts
	cmd := exec.CommandContext(ctx, opts.FFmpeg, p.args(dir)...)
	cmd.WaitDelay = 5 * time.Second
	stderr := newTail(8 << 10)
	cmd.Stderr = stderr
	feedInput, err := in.connect(cmd)
	if err != nil {
		return err
	}
	readers, writers, err := p.pipes()
	if err != nil {
		return err
	}
	cmd.ExtraFiles = writers
	startErr := cmd.Start()
	for _, w := range writers {
		w.Close() // ffmpeg holds its own copies
	}
	if startErr != nil {
		closeAll(readers)
		return fmt.Errorf("chunker: start %s: %w", opts.FFmpeg, startErr)
	}
	if testStarted != nil {
		testStarted(cmd.Process.Pid)
	}
	feedErr := make(chan error, 1)
	go func() { feedErr <- feedInput(ctx) }()

	events := make(chan event)
	stop := make(chan struct{})
	var dropped atomic.Int64
	var wg sync.WaitGroup
	i := 0
	for _, o := range p.outputs {
		var meta *os.File
		list := readers[i]
		i++
		if o.meta {
			meta = readers[i]
			i++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer list.Close()
			if meta != nil {
				defer meta.Close()
			}
			r := outputReader{p: p, o: o, dir: filepath.Join(dir, string(o.kind)), events: events, stop: stop, dropped: &dropped}
			r.run(list, meta)
		}()
	}
	go func() { wg.Wait(); close(events) }()

	emitted, runErr := emitAll(ctx, events, emit)
	if runErr != nil {
		cancel() // kills ffmpeg
	}
	close(stop)
	for range events { // readers exit on stop or at the pipes' end
	}
	waitErr := cmd.Wait()
	if err := finish(ctx, runErr, waitErr, feedErr, stderr); err != nil {
		return err
	}
	if emitted == 0 && p.mustCut() {
		return nothingCut(dropped.Load(), stderr)
	}
	return nil
}

func finish(ctx context.Context, runErr, waitErr error, feedErr <-chan error, stderr *tail) error {
	if runErr != nil {
		return runErr
	}
	var fe error
	select {
	case fe = <-feedErr:
	default:
	}
	if ctx.Err() != nil {
		return fmt.Errorf("chunker: %w", ctx.Err())
	}
	if waitErr != nil {
		msg := stderr.lastLines(4)
		if msg == "" {
			msg = "no error output"
		}
		return fmt.Errorf("chunker: ffmpeg: %v: %s", waitErr, msg)
	}
	if fe != nil {
		return fmt.Errorf("chunker: %w", fe)
	}
	return nil
}

// nothingCut is the error for an input ffmpeg read to its end without
// finishing a single chunk that holds media.
func nothingCut(dropped int64, stderr *tail) error {
	msg := stderr.lastLines(2)
	if msg == "" {
		msg = "no error output"
	}
	if dropped > 0 {
		return fmt.Errorf("chunker: ffmpeg produced only empty chunks (%d) from the input: %s", dropped, msg)
	}
	return fmt.Errorf("chunker: ffmpeg cut no chunk from the input: %s", msg)
}

// emitAll hands every chunk to emit, removing its file afterwards, until
// the readers are done or something fails.
func emitAll(ctx context.Context, events <-chan event, emit func(context.Context, Chunk) error) (emitted int, err error) {
	for ev := range events {
		if ev.err != nil {
			return emitted, ev.err
		}
		err := emit(ctx, ev.chunk)
		os.Remove(ev.chunk.Path)
		emitted++
		if err != nil {
			return emitted, fmt.Errorf("chunker: emit %s chunk %d: %w", ev.chunk.Kind, ev.chunk.Index, err)
		}
		if ctx.Err() != nil {
			return emitted, fmt.Errorf("chunker: %w", ctx.Err())
		}
	}
	return emitted, nil
}

// pipes makes one pipe per segment list and per metadata stream, in the
// fd order plan.args numbers them.
func (p *plan) pipes() (readers, writers []*os.File, err error) {
	n := 0
	for _, o := range p.outputs {
		n++
		if o.meta {
			n++
		}
	}
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(readers)
			closeAll(writers)
			return nil, nil, fmt.Errorf("chunker: %w", err)
		}
		readers, writers = append(readers, r), append(writers, w)
	}
	return readers, writers, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// feed writes the probed prefix and then the rest of the input to ffmpeg,
// closing its stdin at the input's end.
func feed(ctx context.Context, stdin io.WriteCloser, prefix []byte, src *pump) error {
	defer stdin.Close()
	if _, err := stdin.Write(prefix); err != nil {
		return nil // ffmpeg stopped reading; its exit status tells why
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-src.blocks:
			if !ok {
				if src.err != nil {
					return fmt.Errorf("read input: %w", src.err)
				}
				return nil
			}
			if _, err := stdin.Write(b); err != nil {
				return nil
			}
		}
	}
}

// outputReader turns one output's segment list (and, for frames, its
// metadata) into chunks.
type outputReader struct {
	p       *plan
	o       output
	dir     string
	events  chan<- event
	stop    <-chan struct{}
	dropped *atomic.Int64 // empty chunks left out, over all outputs
}

func (r *outputReader) run(list, meta io.Reader) {
	var metas <-chan frameMeta
	if meta != nil {
		metas = readMeta(meta, r.stop)
	}
	sc := bufio.NewScanner(list)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var index int64
	for sc.Scan() {
		seg, err := parseSegmentLine(sc.Text())
		if err != nil {
			r.send(event{err: fmt.Errorf("chunker: ffmpeg %s output: %w", r.o.kind, err)})
			return
		}
		c, err := r.chunk(index, seg, metas)
		if err != nil {
			r.send(event{err: err})
			return
		}
		if r.empty(c) {
			continue
		}
		if !r.send(event{chunk: c}) {
			return
		}
		index++
	}
}

// empty drops a video or audio chunk that holds no media, an empty file
// or no time, with a warning: ffmpeg writes one when it could not read
// the input's packets. Indexes stay consecutive over the chunks emitted.
func (r *outputReader) empty(c Chunk) bool {
	if c.Kind == KindFrame || c.Size > 0 && c.EndMs > c.StartMs {
		return false
	}
	r.p.opts.Log.Warn("chunker: ffmpeg produced an empty chunk; left out",
		"kind", string(c.Kind), "startMs", c.StartMs, "endMs", c.EndMs, "bytes", c.Size)
	os.Remove(c.Path)
	r.dropped.Add(1)
	return true
}

func (r *outputReader) send(ev event) bool {
	select {
	case r.events <- ev:
		return true
	case <-r.stop:
		return false
	}
}

func (r *outputReader) chunk(index int64, seg segment, metas <-chan frameMeta) (Chunk, error) {
	c := Chunk{Kind: r.o.kind, Index: index, MimeType: r.o.mimeType, Path: filepath.Join(r.dir, seg.File),
		StartMs: millis(seg.Start), EndMs: millis(seg.End)}
	fi, err := os.Stat(c.Path)
	if err != nil {
		return c, fmt.Errorf("chunker: %s chunk %d: %w", r.o.kind, index, err)
	}
	c.Size = fi.Size()
	switch r.o.kind {
	case KindVideo:
		if v := r.p.info.Video; v != nil {
			c.Width, c.Height = v.Width, v.Height
		}
	case KindFrame:
		if err := r.frameDetails(&c, seg, metas); err != nil {
			return c, err
		}
	}
	return c, nil
}

// frameDetails sets a frame's exact time, scene score and size.
func (r *outputReader) frameDetails(c *Chunk, seg segment, metas <-chan frameMeta) error {
	var m frameMeta
	var ok bool
	select {
	case m, ok = <-metas:
	case <-r.stop:
	}
	if ok && m.HasPTS {
		tb := r.p.info.Video.TimeBase
		start := float64(m.PTS)*float64(tb[0])/float64(tb[1]) - r.p.info.StartTime
		c.StartMs = millis(start)
	}
	if r.p.opts.SceneThreshold > 0 {
		c.SceneScore = m.Score
	}
	f, err := os.Open(c.Path)
	if err != nil {
		return fmt.Errorf("chunker: frame %d: %w", c.Index, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return fmt.Errorf("chunker: frame %d: ffmpeg wrote an unreadable JPEG: %w", c.Index, err)
	}
	c.Width, c.Height = cfg.Width, cfg.Height
	return nil
}

// readMeta parses the metadata pipe into one record per selected frame.
// A malformed line ends the records early (frame times then come from the
// segment list); the pipe is drained to its end so ffmpeg never blocks.
func readMeta(r io.Reader, stop <-chan struct{}) <-chan frameMeta {
	out := make(chan frameMeta, 256)
	go func() {
		sc := bufio.NewScanner(r)
		func() {
			defer close(out)
			var p metaParser
			for sc.Scan() {
				m, ok, err := p.line(sc.Text())
				if err != nil {
					return
				}
				if ok && !sendMeta(out, m, stop) {
					return
				}
			}
			if m, ok := p.end(); ok {
				sendMeta(out, m, stop)
			}
		}()
		for sc.Scan() {
		}
		io.Copy(io.Discard, r)
	}()
	return out
}

func sendMeta(out chan<- frameMeta, m frameMeta, stop <-chan struct{}) bool {
	select {
	case out <- m:
		return true
	case <-stop:
		return false
	}
}

func millis(sec float64) int64 {
	ms := math.Round(sec * 1000)
	if ms < 0 {
		return 0
	}
	return int64(ms)
}
