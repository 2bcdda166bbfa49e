package control

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

// A control record that is too large or does not decode is dead-lettered
// once and the requests after it are carried out; an end request for a
// stream that does not exist creates nothing on the bus.
func TestPoisonAndForgedControlRecordsChangeNothing(t *testing.T) {
	t.Parallel()
	cs := newControllers(t)
	ctx := context.Background()
	st := cs.pulledStream(t, "")

	huge := `{"action":"end","stream_id":"` + strings.Repeat("x", 300<<10) + `"}`
	records := []*bus.Record{
		{Topic: protocol.TopicLiveControl, Key: []byte("x"), Value: []byte(huge)},
		{Topic: protocol.TopicLiveControl, Key: []byte("x"), Value: []byte(`{"action":"pause","stream_id":"x"}`)},
	}
	for i := range 50 {
		m := protocol.LiveControl{Action: protocol.LiveEnd, StreamID: "live-forged" + strings.Repeat("0", i%3) + string(rune('a'+i%26))}
		k, v, err := protocol.EncodeControl(&m)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, &bus.Record{Topic: protocol.TopicLiveControl, Key: k, Value: v})
	}
	end := protocol.LiveControl{Action: protocol.LiveEnd, StreamID: st.ID}
	k, v, err := protocol.EncodeControl(&end)
	if err != nil {
		t.Fatal(err)
	}
	records = append(records, &bus.Record{Topic: protocol.TopicLiveControl, Key: k, Value: v})
	if err := cs.bus.Produce(ctx, records...); err != nil {
		t.Fatal(err)
	}

	// The real end after the poison gets through: its marker is written.
	waitFor(t, 10*time.Second, "the end marker of the real stream", func() bool {
		for _, r := range cs.bus.Records(protocol.StreamTopic(st.ID)) {
			if _, ok := r.Header(protocol.HeaderLiveEnd); ok {
				return true
			}
		}
		return false
	})
	dead := cs.bus.Records(protocol.DeadLetterTopic(protocol.TopicLiveControl))
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want the oversized and the malformed record", len(dead))
	}
	for _, topic := range cs.bus.Topics() {
		if strings.HasPrefix(topic, "stream_live-forged") {
			t.Fatalf("a forged end request created topic %s", topic)
		}
	}
}
