package live

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/protocol"
)

// forgetSpy records the topics a packager forgets.
type forgetSpy struct {
	bus.Bus
	mu        sync.Mutex
	forgotten []string
}

func (s *forgetSpy) ForgetTopic(topic string) {
	s.mu.Lock()
	s.forgotten = append(s.forgotten, topic)
	s.mu.Unlock()
	s.Bus.ForgetTopic(topic)
}

func (s *forgetSpy) has(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.forgotten, topic)
}

// An ended stream leaves nothing behind on the bus: its metric series go
// when it ends, its topic after TopicRetention.
func TestEndedStreamsLeaveNoTopicOrSeriesBehind(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t, envOptions{segment: time.Second, timeout: time.Minute})
	e.stopPackager()
	spy := &forgetSpy{Bus: e.client}
	cfg := e.packager.cfg
	cfg.Bus, cfg.TopicRetention = spy, 2*time.Second
	p, err := NewPackager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.runPackager(p)

	st := e.newStream("")
	e.produceStream(st.ID, 1, makeTS(t, 3, 25, "libx264", 0))
	waitFor(t, 20*time.Second, "a segment", func() bool {
		rows, _ := e.meta.ListSegments(context.Background(), st.ID, "", 0, 0)
		return len(rows) >= 1
	})
	e.end(st.ID)
	e.waitStatus(st.ID, metastore.StatusVOD, 20*time.Second)
	topic := protocol.StreamTopic(st.ID)
	waitFor(t, 10*time.Second, "the stream's series to be forgotten", func() bool { return spy.has(topic) })

	waitFor(t, 30*time.Second, "the ended stream's topic to be deleted", func() bool {
		cur, err := e.meta.GetStream(context.Background(), st.ID)
		return err == nil && metastore.DetailRaw(cur.Details, topicDeletedKey) != nil
	})
	if _, err := e.client.ReadAll(context.Background(), topic, 0); err == nil {
		t.Fatalf("topic %s still exists after its retention", topic)
	}
	// The VOD it became is untouched.
	if vp := parsePlaylist(t, e.getObject(st.ID+"/vod.m3u8")); !vp.ended || len(vp.segments) == 0 {
		t.Fatalf("vod playlist after the topic went: ended %v, %d segments", vp.ended, len(vp.segments))
	}
}
