// Package livewatch lets the live packager wake HTTP handlers waiting for a
// playlist to change in the same process: the packager calls Notify with a
// playlist's object key after writing it, and a blocking playlist reload
// (internal/api, Low-Latency HLS) waits on Changed. Handlers also poll the
// object store, so nothing depends on the packager running in the same
// process; the notification only saves the poll interval.
package livewatch

import "sync"

// Hub hands out change notifications by key. The zero value is ready.
type Hub struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
}

// Changed returns a channel closed at the next Notify of key.
func (h *Hub) Changed(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters == nil {
		h.waiters = map[string]chan struct{}{}
	}
	ch, ok := h.waiters[key]
	if !ok {
		ch = make(chan struct{})
		h.waiters[key] = ch
	}
	return ch
}

// Notify wakes everyone waiting on key.
func (h *Hub) Notify(key string) {
	h.mu.Lock()
	ch, ok := h.waiters[key]
	delete(h.waiters, key)
	h.mu.Unlock()
	if ok {
		close(ch)
	}
}

// Default is the process's hub.
var Default Hub

// Changed and Notify use Default.
func Changed(key string) <-chan struct{} { return Default.Changed(key) }
func Notify(key string)                  { Default.Notify(key) }
