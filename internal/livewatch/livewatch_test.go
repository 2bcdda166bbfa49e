package livewatch

import (
	"sync"
	"testing"
)

func TestNotifyWakesOnlyItsKeyAndOnlyOnce(t *testing.T) {
	var h Hub
	a1, a2, b := h.Changed("a"), h.Changed("a"), h.Changed("b")
	if a1 != a2 {
		t.Fatal("two waiters on one key got different channels")
	}
	h.Notify("a")
	for _, ch := range []<-chan struct{}{a1, a2} {
		select {
		case <-ch:
		default:
			t.Fatal("waiter on a not woken")
		}
	}
	select {
	case <-b:
		t.Fatal("waiter on b woken by a")
	default:
	}
	if next := h.Changed("a"); next == a1 {
		t.Fatal("a new wait reuses a closed channel")
	}
	h.Notify("nobody") // no waiter: nothing happens
}

func TestConcurrentWaitersAndNotifiers(t *testing.T) {
	var h Hub
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); <-h.Changed("k") }()
		go func() { defer wg.Done(); h.Notify("k") }()
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				h.Notify("k")
			}
		}
	}()
	wg.Wait()
	close(done)
}
