package api

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
)

// negotiateGzip picks the representation of a text object (a playlist, a
// JSON sidecar) for request r. Every answer names Accept-Encoding in Vary,
// since the body depends on it. A client that accepts gzip gets the
// compressed bytes, Content-Encoding: gzip and an entity tag of their own
// (RFC 9110 section 8.8.3: each representation has its own validator);
// a Range request gets the identity bytes, so byte offsets mean what the
// client thinks they mean. It returns the body to serve and its ETag.
func negotiateGzip(h http.Header, r *http.Request, data []byte, etag string) ([]byte, string) {
	h.Add("Vary", "Accept-Encoding")
	if r.Header.Get("Range") != "" || !acceptsGzip(r.Header.Values("Accept-Encoding")) {
		return data, etag
	}
	var b bytes.Buffer
	b.Grow(len(data)/4 + 64)
	zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression) // the level is valid
	if _, err := zw.Write(data); err != nil {
		return data, etag
	}
	if err := zw.Close(); err != nil {
		return data, etag
	}
	h.Set("Content-Encoding", "gzip")
	// http.ServeContent leaves Content-Length out when Content-Encoding is
	// set (it expects on-the-fly encoding); these bytes are final. A 304
	// or problem answer drops it again.
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	return b.Bytes(), gzipETag(etag)
}

// acceptsGzip reports whether Accept-Encoding values allow gzip (or
// x-gzip, or "*") with a non-zero quality. "gzip;q=0" refuses it, even
// when "*" would allow it.
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0 // malformed: do not take it as consent
					}
					q = f
				}
			}
			switch name {
			case "gzip", "x-gzip":
				return q > 0
			case "*":
				star = q > 0
			}
		}
	}
	return star
}

// gzipETag derives the entity tag of the gzip representation from that of
// the identity one: "abc" becomes "abc-gz", W/"abc" becomes W/"abc-gz".
func gzipETag(etag string) string {
	if i := strings.LastIndexByte(etag, '"'); i > 0 {
		return etag[:i] + "-gz" + etag[i:]
	}
	return etag
}
