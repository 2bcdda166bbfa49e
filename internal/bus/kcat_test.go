package bus

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-media/weir/internal/testenv"
)

// kcat runs kcat with args and stdin, failing the test on error.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}

func requireKcat(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "kcat")
}

func TestKcatListsTheBrokerAtItsAdvertisedAddress(t *testing.T) {
	requireKcat(t)
	b := startTestBroker(t)
	out := kcat(t, "", "-b", b.Addr(), "-L")
	if !strings.Contains(out, "1 brokers:") || !strings.Contains(out, "at "+b.Addr()) {
		t.Errorf("kcat -L does not list one broker at %s:\n%s", b.Addr(), out)
	}
}

// batchCodecs records the compression codec and sizes of every record
// batch a client fetches (kgo reads the codec from the batch's
// attributes, as the broker stored it).
type batchCodecs struct {
	mu      sync.Mutex
	batches []kgo.FetchBatchMetrics
}

func (h *batchCodecs) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.mu.Lock()
	h.batches = append(h.batches, m)
	h.mu.Unlock()
}

// TestKcatCompressesEveryCodecAgainstTheBroker: kcat's producer really
// compresses with each codec (librdkafka sends uncompressed batches to a
// broker it believes cannot take them), the broker stores the batches
// compressed, and weir's consumer and kcat read the records back intact.
func TestKcatCompressesEveryCodecAgainstTheBroker(t *testing.T) {
	requireKcat(t)
	b := startTestBroker(t)
	for _, tc := range []struct {
		codec string
		attr  uint8 // the compression bits of a record batch's attributes
	}{{"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run(tc.codec, func(t *testing.T) {
			topic := "kcat-" + tc.codec
			lines := []string{"k1:" + strings.Repeat("a", 2000), "k2:second", "k1:" + strings.Repeat("third ", 200)}
			// A new topic: kcat's producer asks the broker to create it.
			kcat(t, strings.Join(lines, "\n")+"\n", "-b", b.Addr(), "-P", "-t", topic, "-K:", "-z", tc.codec)

			hook := &batchCodecs{}
			c := newTestClient(t, b.Addr(), WithKgoOptions(kgo.WithHooks(hook)))
			got, err := c.ReadAll(testCtx(t), topic, 0)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			var kv []string
			for _, r := range got {
				kv = append(kv, string(r.Key)+":"+string(r.Value))
			}
			if !slices.Equal(kv, lines) {
				t.Errorf("weir's consumer read %q, want %q", kv, lines)
			}
			hook.mu.Lock()
			batches := slices.Clone(hook.batches)
			hook.mu.Unlock()
			if len(batches) == 0 {
				t.Fatal("no record batch fetched")
			}
			for _, m := range batches {
				if m.CompressionType != tc.attr {
					t.Errorf("stored batch of %d records has codec %d, want %d (%s)", m.NumRecords, m.CompressionType, tc.attr, tc.codec)
				}
				if m.CompressedBytes >= m.UncompressedBytes {
					t.Errorf("stored batch is %d bytes for %d uncompressed", m.CompressedBytes, m.UncompressedBytes)
				}
			}

			out := kcat(t, "", "-b", b.Addr(), "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", `%k:%s\n`)
			if out != strings.Join(lines, "\n")+"\n" {
				t.Errorf("kcat -C read %q, want %q", out, lines)
			}
		})
	}
}

func TestKcatReadsWhatTheClientProduced(t *testing.T) {
	requireKcat(t)
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	if err := c.Produce(testCtx(t),
		&Record{Topic: "to-kcat", Key: []byte("stream_init"), Value: []byte(`{"type":"stream_init"}`), Headers: []Header{{Key: "h", Value: []byte("v")}}},
		&Record{Topic: "to-kcat", Key: []byte("raw_stream"), Value: []byte("bytes")},
	); err != nil {
		t.Fatal(err)
	}
	out := kcat(t, "", "-b", b.Addr(), "-C", "-t", "to-kcat", "-o", "beginning", "-e", "-q", "-f", `%k|%s|%h|%o\n`)
	want := "stream_init|{\"type\":\"stream_init\"}|h=v|0\nraw_stream|bytes||1\n"
	if out != want {
		t.Errorf("kcat read\n%q\nwant\n%q", out, want)
	}
}

func TestKcatGroupCommitsAreSeenByTheClient(t *testing.T) {
	requireKcat(t)
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "kcat-group", nil, "a", "b", "c")
	// kcat as a group member reads everything and commits on exit
	// (librdkafka's autocommit).
	out := kcat(t, "", "-b", b.Addr(), "-G", "kcatgrp", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", `%s\n`, "kcat-group")
	if out != "a\nb\nc\n" {
		t.Fatalf("kcat group read %q", out)
	}
	produceValues(t, c, "kcat-group", nil, "d")
	if rest := consumeUntilEOF(t, c, "kcat-group", "kcatgrp"); !slices.Equal(values(rest), []string{"d"}) {
		t.Errorf("weir consumer in kcat's group got %v, want [d]", values(rest))
	}
}
