package objstore

import (
	"context"
	"fmt"
	"io"
)

// defaultContentType is what an empty content type is stored as.
const defaultContentType = "application/octet-stream"

// bodyReader wraps a Put body so that it stops with ctx's error once ctx is
// done and, when size >= 0, fails unless exactly size bytes arrive: a short
// body ends in io.ErrUnexpectedEOF, a long one in an error naming the size.
// Either failure aborts the Put before anything becomes visible.
func bodyReader(ctx context.Context, r io.Reader, size int64) io.Reader {
	return &sizedReader{ctx: ctx, r: r, size: size, remaining: size}
}

type sizedReader struct {
	ctx       context.Context
	r         io.Reader
	size      int64
	remaining int64 // bytes still expected; unused when size < 0
	err       error // sticky
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.size < 0 {
		n, err := s.r.Read(p)
		if err != nil {
			s.err = err
		}
		return n, err
	}
	if s.remaining == 0 {
		// Everything declared has arrived; the body must end here.
		var probe [1]byte
		for range 100 {
			n, err := s.r.Read(probe[:])
			if n > 0 {
				s.err = fmt.Errorf("body longer than the declared %d bytes", s.size)
				return 0, s.err
			}
			if err == io.EOF {
				s.err = io.EOF
				return 0, io.EOF
			}
			if err != nil {
				s.err = err
				return 0, err
			}
		}
		s.err = io.ErrNoProgress
		return 0, s.err
	}
	if int64(len(p)) > s.remaining {
		p = p[:s.remaining]
	}
	n, err := s.r.Read(p)
	s.remaining -= int64(n)
	if err == io.EOF {
		if s.remaining > 0 {
			s.err = fmt.Errorf("body ended after %d of the declared %d bytes: %w", s.size-s.remaining, s.size, io.ErrUnexpectedEOF)
			return n, s.err
		}
		// Reached the declared size exactly; the next Read confirms EOF.
		err = nil
	}
	if err != nil {
		s.err = err
	}
	return n, err
}
