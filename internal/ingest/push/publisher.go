package push

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// One stream has at most one publisher in a process. A publisher that
// connects while another publishes the same stream replaces it: encoders
// reconnect after network trouble before the server has noticed the old
// connection is dead, and refusing them would keep the stream down until
// the old connection times out. The old publisher's stream_eof is written
// before the new one's stream_init.
var publishers = struct {
	sync.Mutex
	m map[string]*publisherSlot
}{m: map[string]*publisherSlot{}}

type publisherSlot struct {
	kick func()
	done chan struct{}
}

// replaceWait bounds how long a new publisher waits for the one it replaces
// to wind down.
const replaceWait = 5 * time.Second

// claimStream makes the caller the stream's publisher, kicking (and waiting
// for) any current one. kick must make the caller's connection end. The
// returned release must be called once the caller's session is closed.
func claimStream(streamID string, kick func(), log *slog.Logger) (release func()) {
	for {
		publishers.Lock()
		old := publishers.m[streamID]
		if old == nil {
			slot := &publisherSlot{kick: kick, done: make(chan struct{})}
			publishers.m[streamID] = slot
			publishers.Unlock()
			return func() {
				publishers.Lock()
				if publishers.m[streamID] == slot {
					delete(publishers.m, streamID)
				}
				publishers.Unlock()
				close(slot.done)
			}
		}
		publishers.Unlock()
		log.Info("live stream: a new publisher replaces the current one", "stream", streamID)
		old.kick()
		select {
		case <-old.done:
		case <-time.After(replaceWait):
			// The old connection is stuck; take over anyway.
			publishers.Lock()
			if publishers.m[streamID] == old {
				delete(publishers.m, streamID)
			}
			publishers.Unlock()
		}
	}
}

// watchStatus calls stop once the stream reaches a terminal status (it was
// ended or failed), checking every interval until ctx ends.
func watchStatus(ctx context.Context, streams StreamLookup, streamID string, interval time.Duration, stop func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := streams.GetStream(ctx, streamID)
		if err == nil && st.Status.Terminal() {
			stop()
			return
		}
	}
}
