package vod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/media"
	"github.com/weir-media/weir/internal/objstore"
	"github.com/weir-media/weir/protocol"
)

// failure is a job error meant for the person who uploaded the title: the
// stream fails with this message and the job is not retried, because
// retrying cannot change the outcome.
type failure struct{ msg string }

func (f *failure) Error() string { return f.msg }

func failf(format string, args ...any) error { return &failure{msg: fmt.Sprintf(format, args...)} }

// fetchSource copies the job's source (an object or a URL) to a file in dir
// and returns its path. The file keeps the source's extension, which helps
// ffmpeg recognise raw formats such as .aac or .h264.
func (w *Worker) fetchSource(ctx context.Context, job protocol.VODJob, dir string) (string, error) {
	switch {
	case job.SourceKey != "":
		rc, _, err := w.cfg.Objects.Get(ctx, job.SourceKey)
		if errors.Is(err, objstore.ErrNotFound) {
			return "", failf("the uploaded file is missing from the object store (%s)", job.SourceKey)
		}
		if err != nil {
			return "", fmt.Errorf("reading source object %s: %w", job.SourceKey, err)
		}
		defer rc.Close()
		dst := filepath.Join(dir, "source"+cleanExt(job.SourceKey))
		if err := writeFile(dst, rc, -1); err != nil {
			return "", fmt.Errorf("copying source object %s: %w", job.SourceKey, err)
		}
		return dst, nil
	case job.SourceURL != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.SourceURL, nil)
		if err != nil {
			return "", failf("the source URL is not valid: %v", err)
		}
		req.Header.Set("User-Agent", "weir-vod")
		resp, err := w.cfg.HTTPClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return "", context.Cause(ctx)
			}
			return "", failf("could not fetch the source URL: %v", unwrapURLError(err))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", failf("could not fetch the source URL: the server answered %s", resp.Status)
		}
		if resp.ContentLength > w.cfg.MaxSourceBytes {
			return "", failf("the source is %d bytes, more than the %d this server accepts", resp.ContentLength, w.cfg.MaxSourceBytes)
		}
		u := req.URL
		dst := filepath.Join(dir, "source"+cleanExt(u.Path))
		if err := writeFile(dst, resp.Body, w.cfg.MaxSourceBytes); err != nil {
			if ctx.Err() != nil {
				return "", context.Cause(ctx)
			}
			if objstore.NoSpace(err) {
				return "", fmt.Errorf("downloading the source URL: %w", err)
			}
			var tl *tooLargeError
			if errors.As(err, &tl) {
				return "", failf("the source is larger than the %d bytes this server accepts", w.cfg.MaxSourceBytes)
			}
			return "", failf("downloading the source URL failed: %v", err)
		}
		return dst, nil
	}
	return "", failf("the job names no source (neither source_key nor source_url)")
}

type tooLargeError struct{}

func (*tooLargeError) Error() string { return "too large" }

// writeFile copies r to path, failing with *tooLargeError past limit bytes
// (no limit when limit < 0).
func writeFile(path string, r io.Reader, limit int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if limit >= 0 {
		r = io.LimitReader(r, limit+1)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && limit >= 0 && n > limit {
		err = &tooLargeError{}
	}
	return err
}

// cleanExt is the lower-case extension of name when it is a short run of
// letters and digits, else "".
func cleanExt(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if len(ext) < 2 || len(ext) > 6 {
		return ""
	}
	for _, c := range ext[1:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return ""
		}
	}
	return ext
}

// unwrapURLError drops net/http's "Get <url>:" prefix; the message
// already says a URL was being fetched.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// probeSource runs ffprobe on the downloaded source and turns what it
// finds wrong into messages a person can act on.
func (w *Worker) probeSource(ctx context.Context, src string) (*media.Info, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return nil, failf("the file is empty (0 bytes)")
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	info, err := media.Probe(pctx, src)
	var unsupported *media.UnsupportedContainerError
	switch {
	case err == nil:
		return info, nil
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case errors.As(err, &unsupported):
		return nil, failf("%v: weir transcodes audio and video files (MP4, MOV, MKV, WebM, MPEG-TS, FLV, AVI, MP3, AAC, WAV, FLAC, Ogg...), not playlists or lists of other files", unsupported)
	case errors.Is(err, media.ErrNoMedia):
		if isMP4WithoutIndex(src) {
			return nil, failf("the file is an incomplete MP4: its index (the moov box) is missing, so the upload or the recording was probably cut off before the end")
		}
		return nil, failf("the file is not audio or video: no video or audio stream found")
	}
	return nil, failf("could not read the file: %v", err)
}

// isMP4WithoutIndex reports whether the file starts like an ISO-BMFF file
// (an ftyp box) — ffprobe refusing such a file almost always means the moov
// box, written last by most recorders, never made it.
func isMP4WithoutIndex(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 12)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	return bytes.Equal(head[4:8], []byte("ftyp"))
}
