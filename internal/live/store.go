package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/weir-media/weir/graph"
	"github.com/weir-media/weir/internal/livewatch"
	"github.com/weir-media/weir/internal/objstore"
)

// Content types of what the packager stores.
const (
	contentTypeTS       = "video/mp2t"
	contentTypePlaylist = "application/vnd.apple.mpegurl"
)

// maxRewrites is how many times a segment whose read-back checksum does
// not match is rewritten before it is given up (and a discontinuity marks
// the hole).
const maxRewrites = 3

// errChecksum: a segment never read back as written.
var errChecksum = errors.New("segment does not read back as written")

// retry runs op until it succeeds or ctx ends, backing off from 50 ms to
// 5 s between attempts and logging each failure. Storage hiccups hold the
// stream up (the bus keeps its records) rather than lose segments.
func retry(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("live stream: "+what+" failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// objectMatches reads an object back and compares it with data, byte for
// byte, without hashing it again. It returns the object's size and the
// offset of the first byte that differs (-1 when none does).
func objectMatches(ctx context.Context, objects objstore.Store, key string, data []byte) (n int64, diff int64, err error) {
	rc, _, err := objects.Get(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	diff = -1
	for {
		m, rerr := rc.Read(buf)
		if m > 0 && diff < 0 {
			rest := data[min(n, int64(len(data))):]
			got := buf[:m]
			if k := min(len(rest), m); !bytes.Equal(got[:k], rest[:k]) || k < m {
				diff = n + int64(firstDiff(got, rest))
			}
		}
		n += int64(m)
		if rerr == io.EOF {
			if diff < 0 && n != int64(len(data)) {
				diff = n
			}
			return n, diff, nil
		}
		if rerr != nil {
			return n, diff, rerr
		}
	}
}

// firstDiff is the index of the first byte at which a and b differ, or the
// shorter one's length.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// writeVerified writes data to key, reads it back and compares it with
// data; a mismatch is counted and the object rewritten, up to maxRewrites
// times. It returns the data's SHA-256 (for the segment row; the store's,
// so the bytes are hashed once) and the mismatches seen.
func writeVerified(ctx context.Context, objects objstore.Store, log *slog.Logger, key string, data []byte, onMismatch func()) (string, int, error) {
	mismatches := 0
	for {
		var stored objstore.Info
		if err := retry(ctx, log, "writing "+key, func() (err error) {
			stored, err = objstore.PutBytes(ctx, objects, key, data, segmentContentType(key))
			return err
		}); err != nil {
			return "", mismatches, err
		}
		var n, diff int64
		if err := retry(ctx, log, "reading back "+key, func() (err error) {
			n, diff, err = objectMatches(ctx, objects, key, data)
			return err
		}); err != nil {
			return "", mismatches, err
		}
		if diff < 0 {
			return stored.SHA256, mismatches, nil
		}
		mismatches++
		onMismatch()
		sum := sha256.Sum256(data)
		log.Error("live stream: segment reads back different from what was written; rewriting it",
			"key", key, "want_sha256", hex.EncodeToString(sum[:]), "first_difference_at", diff, "want_size", len(data), "got_size", n, "attempt", mismatches)
		if mismatches >= maxRewrites {
			return "", mismatches, fmt.Errorf("%s: %w after %d attempts", key, errChecksum, mismatches)
		}
	}
}

// putPlaylist replaces a playlist object (atomically: every store's Put is).
// Handlers of this process holding a blocking playlist reload are woken
// (internal/livewatch).
func putPlaylist(ctx context.Context, objects objstore.Store, log *slog.Logger, key string, data []byte) error {
	err := retry(ctx, log, "writing "+key, func() error {
		_, err := objects.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentTypePlaylist)
		return err
	})
	if err == nil {
		livewatch.Notify(key)
	}
	return err
}

type writerCalculator struct {
	env  *streamEnv
	next int64
	// holeBefore marks the next segment as a discontinuity because the
	// one before it was lost.
	holeBefore bool
}

func (c *writerCalculator) Open(cc *graph.CalculatorContext) error {
	c.env = cc.InputSidePacket("ENV").(*streamEnv)
	if n := len(c.env.segments); n > 0 {
		c.next = c.env.segments[n-1].ChunkIndex + 1
	}
	return nil
}

func (c *writerCalculator) Process(cc *graph.CalculatorContext) error {
	b, ok := graph.As[*segmentBatch](cc.Input("SEGMENTS"))
	if !ok {
		return nil
	}
	out := &storedBatch{end: b.end}
	objects := c.env.p.cfg.Objects
	for _, seg := range b.segs {
		key := segmentKey(c.env.prefix, c.next)
		sum, mismatches, err := writeVerified(cc.Context(), objects, c.env.log, key, seg.Data, func() {
			c.env.p.metrics.checksumFailures.Inc()
		})
		if errors.Is(err, errChecksum) {
			// Give the segment up; its number goes to the next one and
			// a discontinuity marks the hole.
			c.env.log.Error("live stream: giving up a segment that never read back intact", "key", key, "err", err)
			c.holeBefore = true
			out.segs = append(out.segs, &storedSegment{cutSegment: nil, index: -1, checksumFailures: mismatches})
			continue
		}
		if err != nil {
			return fmt.Errorf("segment %d of stream %s: %w", c.next, c.env.prefix, err)
		}
		if c.holeBefore {
			seg.Discontinuity = true
			c.holeBefore = false
		}
		out.segs = append(out.segs, &storedSegment{
			cutSegment:       seg,
			index:            c.next,
			key:              key,
			size:             int64(len(seg.Data)),
			sha256:           sum,
			checksumFailures: mismatches,
		})
		c.next++
	}
	if len(out.segs) == 0 && !out.end {
		return nil
	}
	return cc.Output("STORED").Add(out, cc.InputTimestamp())
}

func (c *writerCalculator) Close(*graph.CalculatorContext) error { return nil }
