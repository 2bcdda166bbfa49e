package bus

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weir-media/weir/protocol"
)

// A poison record — too large, malformed for its handler, or making the
// handler panic — is dead-lettered with its origin and reason, and the
// records after it are handled: nothing wedges the consumer.
func TestPoisonRecordsAreDeadLetteredAndTheConsumerMovesOn(t *testing.T) {
	b := startTestBroker(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, b.Addr(), WithMetrics(m))
	huge := strings.Repeat("x", 300<<10)
	produceValues(t, c, "control_x", []byte("k"), "ok-1", huge, "malformed", "panic", "ok-2")

	var got seen
	err = c.Consume(testCtx(t), ConsumeOptions{
		Topics: []string{"control_x"}, Group: "controllers", FromBeginning: true, UntilEOF: true,
		MaxRecordBytes: 64 << 10,
		Handler: func(_ context.Context, r *Record) error {
			switch string(r.Value) {
			case "malformed":
				return Permanent(errors.New(`field "stream_id": is 300 bytes long`))
			case "panic":
				panic("a bug this record triggers")
			}
			got.add(r)
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if vs := values(got.snapshot()); !slices.Equal(vs, []string{"ok-1", "ok-2"}) {
		t.Fatalf("handled %v, want ok-1 and ok-2", vs)
	}
	dead, err := c.ReadAll(testCtx(t), protocol.DeadLetterTopic("control_x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	wantReasons := []string{"over the 65536-byte limit", `field "stream_id"`, "handler panicked: a bug this record triggers"}
	wantOffsets := []string{"1", "2", "3"}
	for i, d := range dead {
		reason, _ := d.Header(protocol.HeaderDeadLetterReason)
		off, _ := d.Header(protocol.HeaderDeadLetterOffset)
		topic, _ := d.Header(protocol.HeaderDeadLetterTopic)
		group, _ := d.Header(protocol.HeaderDeadLetterGroup)
		if !strings.Contains(string(reason), wantReasons[i]) || string(off) != wantOffsets[i] ||
			string(topic) != "control_x" || string(group) != "controllers" || string(d.Key) != "k" {
			t.Errorf("dead letter %d: reason %q offset %s topic %s group %s key %s", i, reason, off, topic, group, d.Key)
		}
	}
	if size, ok := dead[0].Header(protocol.HeaderDeadLetterSize); !ok || string(size) != "307200" || len(dead[0].Value) != 64<<10 {
		t.Errorf("oversized dead letter: value %d bytes, size header %q", len(dead[0].Value), size)
	}
	if string(dead[1].Value) != "malformed" {
		t.Errorf("dead letter value %q, want the record's own", dead[1].Value)
	}
	var sample dto.Metric
	if err := m.deadLetters.WithLabelValues("control_x").Write(&sample); err != nil {
		t.Fatal(err)
	}
	if n := sample.GetCounter().GetValue(); n != 3 {
		t.Errorf("weir_bus_dead_letters_total = %v, want 3", n)
	}
	// Everything is committed: the group does not see the poison again.
	if again := consumeUntilEOF(t, c, "control_x", "controllers"); len(again) != 0 {
		t.Errorf("redelivered %v", values(again))
	}
}

// An error not marked Permanent is transient: the consumer stops on the
// record and it is delivered again, as before.
func TestTransientErrorsAreRetriedNotDeadLettered(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "control_y", nil, "v")
	err := c.Consume(testCtx(t), ConsumeOptions{
		Topics: []string{"control_y"}, Group: "g", FromBeginning: true,
		Handler: func(context.Context, *Record) error { return errors.New("metadata store unavailable") },
	})
	var re *RecordError
	if !errors.As(err, &re) || IsPermanent(err) {
		t.Fatalf("Consume = %v, want a RecordError for a transient failure", err)
	}
	if again := consumeUntilEOF(t, c, "control_y", "g"); len(again) != 1 {
		t.Fatalf("redelivered %d records, want the failed one", len(again))
	}
}
