package enginehost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/bus/bustest"
	"github.com/weir-media/weir/internal/enginehost"
	"github.com/weir-media/weir/protocol"
)

// trivialDoc is what the benchmark's engine finds in every chunk.
const trivialDoc = `{"series":[{"startTimeMs":0,"stopTimeMs":1000,"tags":[{"key":"seen"}]}]}`

// trivialEngine answers every chunk at once.
type trivialEngine struct{}

func (trivialEngine) Process(_ context.Context, c *engine.Chunk, _ engine.Options) (*protocol.Document, error) {
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: c.DurationMs(), Tags: []protocol.Tag{{Key: "seen"}}}}}, nil
}

// benchProcessors makes the processors compared: the trivial engine
// in-process (on the graph runtime) and the same answer from an HTTP
// engine on loopback.
func benchProcessors(b *testing.B) map[string]enginehost.Processor {
	reg := engine.Registration{Spec: testSpec("trivial"), Factory: engine.ChunkFactory(func() (engine.ChunkEngine, error) { return trivialEngine{}, nil })}
	inproc, err := enginehost.NewInProcess(reg, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, trivialDoc)
	}))
	b.Cleanup(srv.Close)
	return map[string]enginehost.Processor{"inprocess": inproc, "http": enginehost.NewHTTP(engine.HTTPEndpoint{URL: srv.URL})}
}

// BenchmarkDispatch measures what hosting adds to a chunk: a tiny inline
// chunk for an engine that answers at once, one chunk at a time, from
// the media_chunk produced to its chunk_processed_status read back
// ("us/chunk"), through the in-memory bus and through the embedded Kafka
// broker; "direct" is the processor called alone, without a bus.
// "kafka-engine" is the third way to host an engine: an external engine
// that is its own Kafka client (here a plain bus consumer, no host),
// reading its chunk topic and answering on the results topic.
func BenchmarkDispatch(b *testing.B) {
	b.Run("kafka-engine/kafka", func(b *testing.B) {
		bb := startBroker(b)
		startKafkaEngine(b, bb, "trivial")
		benchRoundTrips(b, bb)
	})
	for _, name := range []string{"inprocess", "http"} {
		b.Run(name+"/direct", func(b *testing.B) {
			p := benchProcessors(b)[name]
			c := &engine.Chunk{Meta: *chunkFor("job-b", 0, "audio/wav", []byte("RIFF tiny chunk"))}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Process(ctx, c, engine.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/chunk")
		})
		for _, transport := range []string{"bustest", "kafka"} {
			b.Run(name+"/"+transport, func(b *testing.B) {
				var bb bus.Bus = bustest.New()
				if transport == "kafka" {
					bb = startBroker(b)
				}
				benchHosted(b, bb, benchProcessors(b)[name])
			})
		}
	}
}

func benchHosted(b *testing.B, bb bus.Bus, p enginehost.Processor) {
	spec := testSpec("trivial")
	startHost(b, enginehost.Config{Spec: spec, Processor: p, Bus: bb, HeartbeatInterval: time.Hour})
	benchRoundTrips(b, bb)
}

// benchRoundTrips times chunks of job-b sent one at a time to the
// engine "trivial", from the media_chunk produced to its
// chunk_processed_status read back, whoever answers.
func benchRoundTrips(b *testing.B, bb bus.Bus) {
	done := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		consumed <- bb.Consume(ctx, bus.ConsumeOptions{Topics: []string{protocol.ResultsTopic("job-b")}, FromBeginning: true,
			Handler: func(_ context.Context, rec *bus.Record) error {
				if msg, err := protocol.Decode(rec.Key, rec.Value); err == nil && msg.MessageType() == protocol.TypeChunkProcessedStatus {
					done <- struct{}{}
				}
				return nil
			}})
	}()
	defer func() { cancel(); <-consumed }()
	topic := protocol.ChunkTopic("trivial")
	roundTrip := func(i int64) {
		c := chunkFor("job-b", i, "audio/wav", []byte("RIFF tiny chunk"))
		key, value, err := protocol.Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		if err := bb.Produce(ctx, &bus.Record{Topic: topic, Key: key, Value: value}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("chunk %d: no status after 30 s", i)
		}
	}
	roundTrip(0) // topics made, group joined
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		i++
		roundTrip(i)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/chunk")
}

// startKafkaEngine runs, until the benchmark ends, an engine written as an
// external Kafka engine in any language would be: a consumer of its chunk
// topic in its own group that answers every media_chunk with an
// engine_output and a chunk_processed_status SUCCESS on the job's results
// topic, keyed by taskId.
func startKafkaEngine(b *testing.B, bb bus.Bus, name string) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	answer := func(ctx context.Context, rec *bus.Record) error {
		msg, err := protocol.Decode(rec.Key, rec.Value)
		c, ok := msg.(*protocol.MediaChunk)
		if err != nil || !ok {
			return bus.Permanent(fmt.Errorf("not a media_chunk: %v", err))
		}
		hdr := protocol.Header{TaskID: c.TaskID, JobID: c.JobID, TDOID: c.TDOID, TimestampUTC: protocol.NowMillis()}
		hdr.Type = protocol.TypeEngineOutput
		out := &protocol.EngineOutput{Header: hdr, OutputType: "tag", MimeType: "application/json",
			StartOffsetMs: c.StartOffsetMs, EndOffsetMs: c.EndOffsetMs, ChunkUUID: c.ChunkUUID, Content: json.RawMessage(trivialDoc)}
		hdr.Type = protocol.TypeChunkProcessedStatus
		st := &protocol.ChunkProcessedStatus{Header: hdr, ChunkUUID: c.ChunkUUID, Status: protocol.ChunkSuccess}
		for _, m := range []protocol.Message{out, st} {
			key, value, err := protocol.Encode(m)
			if err != nil {
				return bus.Permanent(err)
			}
			if err := bb.Produce(ctx, &bus.Record{Topic: protocol.ResultsTopic(c.JobID), Key: key, Value: value}); err != nil {
				return err
			}
		}
		return nil
	}
	go func() {
		stopped <- bb.Consume(ctx, bus.ConsumeOptions{Topics: []string{protocol.ChunkTopic(name)},
			Group: protocol.EngineGroup(name), FromBeginning: true, Handler: answer})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			b.Errorf("kafka engine: %v", err)
		}
	})
}
