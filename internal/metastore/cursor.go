package metastore

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// pageCursor marks the last row of a page of a newest-first listing. Rows are
// ordered by (created_at, id) descending, so the next page starts strictly
// below the cursor; because id breaks ties, rows created in the same
// microsecond are neither skipped nor repeated.
type pageCursor struct {
	createdAt time.Time
	id        string
}

// encodeCursor renders c as an opaque URL-safe token. Both backends use the
// same form, so a token survives a move between them.
func encodeCursor(c pageCursor) string {
	raw := strconv.FormatInt(c.createdAt.UnixMicro(), 10) + "," + c.id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor parses a token made by encodeCursor; anything else fails with
// ErrInvalid.
func decodeCursor(token string) (pageCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return pageCursor{}, fmt.Errorf("page cursor %q: %w", token, ErrInvalid)
	}
	micros, id, ok := strings.Cut(string(raw), ",")
	if !ok || id == "" {
		return pageCursor{}, fmt.Errorf("page cursor %q: %w", token, ErrInvalid)
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return pageCursor{}, fmt.Errorf("page cursor %q: %w", token, ErrInvalid)
	}
	return pageCursor{createdAt: time.UnixMicro(us).UTC(), id: id}, nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// pageSize applies the listing defaults: <= 0 means 50, and at most 1000.
func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return defaultPageSize
	case limit > maxPageSize:
		return maxPageSize
	}
	return limit
}
