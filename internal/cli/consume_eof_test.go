package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/bus"
)

// TestConsumeUntilEOFStopsAtAStreamEOFWithoutItsStart: --until-eof stops at
// any record keyed stream_eof, not only one that ends a stream consume saw
// start, and exits non-zero saying nothing could be verified, instead of
// waiting for ever.
func TestConsumeUntilEOFStopsAtAStreamEOFWithoutItsStart(t *testing.T) {
	requireKcat(t)
	broker := startEmbeddedBroker(t)
	for _, tc := range []struct {
		name  string
		recs  [][2][]byte
		lines int
		want  string
	}{
		{"a lone stream_eof", [][2][]byte{
			{[]byte("raw_stream"), []byte("abc")},
			{[]byte("stream_eof"), []byte(`{"type":"stream_eof","contentLength":3}`)},
			{[]byte("raw_stream"), []byte("after")},
		}, 2, "stream_eof at offset 1, but the stream's start (its stream_init) was not seen, so nothing could be verified"},
		{"a prefixed stream_eof without its stream_init", [][2][]byte{
			{[]byte("stream_init"), []byte(`{"type":"stream_init","chunkSize":4,"mimeType":"audio/aac"}`)},
			{[]byte("cam1_stream_eof"), []byte(`{"type":"stream_eof"}`)},
		}, 2, "stream_eof at offset 1, but the stream's start (its stream_init) was not seen"},
		{"junk keyed stream_eof", [][2][]byte{
			{[]byte("stream_init"), []byte(`{"type":"stream_init","chunkSize":4,"mimeType":"audio/aac"}`)},
			{[]byte("stream_eof"), []byte(`{broken`)},
		}, 2, "stream_eof at offset 1: stream_eof: invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "stream_" + strings.ReplaceAll(tc.name, " ", "_")
			runKcat(t, kcatStream(tc.recs), "-b", broker.Addr(), "-P", "-t", topic, "-K", `\t`, "-D", `\x1e`)
			res := runWeir(testContext(t), "consume", "--topic", topic, "--kafka", broker.Addr(), "--from-beginning", "--until-eof")
			if res.exitCode() != 1 || !strings.Contains(res.err.Error(), tc.want) {
				t.Fatalf("exit %d, error %v; want 1 and an error saying %q", res.exitCode(), res.err, tc.want)
			}
			if n := strings.Count(res.stdout, "\n"); n != tc.lines {
				t.Errorf("%d lines, want %d (up to the stream_eof):\n%s", n, tc.lines, res.stdout)
			}
		})
	}
}

// TestConsumeUntilEOFStartedMidStream: consume started without
// --from-beginning after a stream's stream_init stops at its stream_eof
// and says the start was not seen.
func TestConsumeUntilEOFStartedMidStream(t *testing.T) {
	broker := startEmbeddedBroker(t)
	client := newBusClient(t, broker.Addr())
	ctx := testContext(t)
	const topic = "stream_mid"
	if err := client.Produce(ctx,
		&bus.Record{Topic: topic, Key: []byte("stream_init"), Value: []byte(`{"type":"stream_init","chunkSize":8,"mimeType":"audio/aac"}`)},
		&bus.Record{Topic: topic, Key: []byte("raw_stream"), Value: []byte("12345678")},
	); err != nil {
		t.Fatal(err)
	}
	done := make(chan weirResult, 1)
	go func() { done <- runWeir(ctx, "consume", "--topic", topic, "--kafka", broker.Addr(), "--until-eof") }()
	// consume starts at the end of the topic at some moment: keep adding
	// the stream's end until it has seen one.
	var res weirResult
	for waiting := true; waiting; {
		if err := client.Produce(ctx,
			&bus.Record{Topic: topic, Key: []byte("raw_stream"), Value: []byte("9")},
			&bus.Record{Topic: topic, Key: []byte("stream_eof"), Value: []byte(`{"type":"stream_eof","contentLength":9}`)},
		); err != nil {
			t.Fatal(err)
		}
		select {
		case res = <-done:
			waiting = false
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("consume --until-eof did not stop at a stream_eof")
		}
	}
	if res.exitCode() != 1 || !strings.Contains(res.err.Error(), "the stream's start (its stream_init) was not seen") ||
		!strings.Contains(res.err.Error(), "--from-beginning") {
		t.Fatalf("exit %d, error %v; want 1 and an error saying the start was not seen", res.exitCode(), res.err)
	}
	if !strings.HasSuffix(res.stdout, "stream_eof ERROR key=stream_eof forcedEOF=false contentLength=9 problem=\"stream_eof: out of order: no stream_init yet (a stream topic must start with stream_init)\"\n") {
		t.Errorf("output does not end with the stream_eof line:\n%s", res.stdout)
	}
}
