package enginehost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/weir-media/weir/protocol"
)

// stage puts a chunk's bytes in a temporary file, fetched from its
// cacheURI or decoded from its inline content, and returns its path and
// size. The caller removes the file.
func (h *Host) stage(ctx context.Context, c *protocol.MediaChunk) (string, int64, error) {
	var src io.Reader
	if c.CacheURI != "" {
		rc, err := h.cfg.Fetch(ctx, c.CacheURI)
		if err != nil {
			return "", 0, err
		}
		defer rc.Close()
		src = rc
	} else {
		data, err := c.Data()
		if err != nil {
			return "", 0, err
		}
		if int64(len(data)) > h.cfg.MaxChunkBytes {
			return "", 0, fmt.Errorf("inline content is %d bytes, more than the %d-byte cap", len(data), h.cfg.MaxChunkBytes)
		}
		src = bytes.NewReader(data)
	}
	f, err := os.CreateTemp(h.cfg.TempDir, "weir-chunk-*")
	if err != nil {
		return "", 0, err
	}
	n, err := io.Copy(f, io.LimitReader(src, h.cfg.MaxChunkBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > h.cfg.MaxChunkBytes {
		err = fmt.Errorf("%s is larger than the %d-byte cap", c.CacheURI, h.cfg.MaxChunkBytes)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), n, nil
}

// HTTPFetch is Config.Fetch's default: a GET that must answer 200, its
// error quoting the start of any other answer.
func HTTPFetch(ctx context.Context, uri string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		excerpt := readExcerpt(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s%s", uri, resp.Status, excerpt)
	}
	return resp.Body, nil
}
