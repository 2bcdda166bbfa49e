package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/weir-media/weir/internal/livewatch"
	"github.com/weir-media/weir/internal/objstore"
)

// playlistWatches shares the watching of a live playlist among the
// requests held on it (blocking playlist reloads, preload-hinted parts):
// one read of the object store per poll interval per playlist, however
// many viewers wait on it, and one read per change. A change seen by the
// poll, or announced by a packager in this process (internal/livewatch),
// wakes every request held on the playlist.
type playlistWatches struct {
	store    objstore.Store
	interval time.Duration

	mu      sync.Mutex
	watches map[string]*playlistWatch
}

func newPlaylistWatches(store objstore.Store, interval time.Duration) *playlistWatches {
	return &playlistWatches{store: store, interval: interval, watches: map[string]*playlistWatch{}}
}

// pollReadTimeout bounds one poll's read of the store, so a hung read
// cannot hold up the requests waiting on the playlist for longer.
const pollReadTimeout = 5 * time.Second

// playlistWatch is one playlist's shared state: the last bytes read and a
// version counted up at each change.
type playlistWatch struct {
	ws      *playlistWatches
	key     string
	holders int           // under ws.mu
	stop    chan struct{} // closed when the last holder lets go
	done    chan struct{} // closed when the poll has stopped

	mu      sync.Mutex // serialises the reads of the store
	version uint64
	data    []byte
}

// hold returns key's watch, starting its poll for the first holder. The
// caller calls release when it stops waiting.
func (ws *playlistWatches) hold(key string) *playlistWatch {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w := ws.watches[key]
	if w == nil {
		w = &playlistWatch{ws: ws, key: key, stop: make(chan struct{}), done: make(chan struct{})}
		ws.watches[key] = w
		go w.poll()
	}
	w.holders++
	return w
}

// release lets go of the watch; the last holder stops its poll and waits
// for a read in progress to end, so that no read of the store outlives the
// requests (the store may be closed once they are done).
func (w *playlistWatch) release() {
	ws := w.ws
	ws.mu.Lock()
	w.holders--
	last := w.holders == 0
	if last {
		delete(ws.watches, w.key)
		close(w.stop)
	}
	ws.mu.Unlock()
	if last {
		<-w.done
	}
}

// poll reads the playlist every interval while the watch is held and
// wakes the holders when it changed. A failed read is left to the
// holders' own reads to report.
func (w *playlistWatch) poll() {
	defer close(w.done)
	tick := time.NewTicker(w.ws.interval)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), pollReadTimeout)
		w.mu.Lock()
		changed, _ := w.fetchLocked(ctx)
		w.mu.Unlock()
		cancel()
		if changed {
			livewatch.Notify(w.key)
		}
	}
}

// current is the version of the last bytes read.
func (w *playlistWatch) current() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.version
}

// latest returns the playlist's bytes and their version: those read
// already when they are newer than seen, or else read now (one holder
// reads, those woken with it take its result). The version equals seen
// when nothing changed.
func (w *playlistWatch) latest(ctx context.Context, seen uint64) ([]byte, uint64, error) {
	w.mu.Lock()
	if w.version > seen {
		defer w.mu.Unlock()
		return w.data, w.version, nil
	}
	changed, err := w.fetchLocked(ctx)
	data, v := w.data, w.version
	w.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if changed {
		// Every new version wakes every holder, whoever read it.
		livewatch.Notify(w.key)
	}
	return data, v, nil
}

// fetchLocked reads the playlist and, when its bytes differ from the last
// read, keeps them under a new version. w.mu is held.
func (w *playlistWatch) fetchLocked(ctx context.Context) (bool, error) {
	data, err := readObject(ctx, w.ws.store, w.key, maxPlaylistBytes)
	if err != nil {
		return false, err
	}
	if w.version > 0 && bytes.Equal(data, w.data) {
		return false, nil
	}
	w.data = data
	w.version++
	return true, nil
}

// readObject reads a whole object of at most limit bytes.
func readObject(ctx context.Context, store objstore.Store, key string, limit int) ([]byte, error) {
	rc, _, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return data, nil
}
