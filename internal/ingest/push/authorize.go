package push

import (
	"context"
	"errors"
	"fmt"

	"github.com/weir-media/weir/internal/metastore"
)

// StreamLookup is what the ingest servers need of the metadata store: live
// streams by publish key and id, and the publish leases that keep a stream
// to one publisher. metastore.Store satisfies it.
type StreamLookup interface {
	GetStreamByPublishKey(ctx context.Context, key string) (metastore.Stream, error)
	GetStream(ctx context.Context, id string) (metastore.Stream, error)
	metastore.Leaser
}

// Reasons a publisher is refused.
var (
	// ErrUnknownKey: no live stream has the publish key.
	ErrUnknownKey = errors.New("unknown publish key")
	// ErrStreamEnded: the stream the key belongs to has ended (vod) or
	// failed; a key is good for one stream's life only.
	ErrStreamEnded = errors.New("stream has ended")
)

// Authorize returns the live stream publish key opens, or an error wrapping
// ErrUnknownKey or ErrStreamEnded. Errors never contain the key.
func Authorize(ctx context.Context, streams StreamLookup, key string) (metastore.Stream, error) {
	if key == "" {
		return metastore.Stream{}, fmt.Errorf("empty key: %w", ErrUnknownKey)
	}
	st, err := streams.GetStreamByPublishKey(ctx, key)
	switch {
	case errors.Is(err, metastore.ErrNotFound):
		return metastore.Stream{}, ErrUnknownKey
	case err != nil:
		return metastore.Stream{}, fmt.Errorf("look up publish key: %w", err)
	case st.Kind != metastore.KindLive:
		return metastore.Stream{}, fmt.Errorf("stream %s is not a live stream: %w", st.ID, ErrUnknownKey)
	case st.Status.Terminal():
		return metastore.Stream{}, fmt.Errorf("stream %s is %s: %w", st.ID, st.Status, ErrStreamEnded)
	}
	return st, nil
}
