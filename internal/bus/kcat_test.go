package bus

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

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

func TestKcatCompressedProduceIsReadByTheClient(t *testing.T) {
	requireKcat(t)
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	for _, codec := range []string{"lz4", "zstd", "gzip", "snappy"} {
		t.Run(codec, func(t *testing.T) {
			topic := "kcat-" + codec
			lines := []string{"k1:" + strings.Repeat("a", 300), "k2:second", "k1:third"}
			// A new topic: kcat's producer asks the broker to create it.
			kcat(t, strings.Join(lines, "\n")+"\n", "-b", b.Addr(), "-P", "-t", topic, "-K:", "-z", codec)
			got, err := c.ReadAll(testCtx(t), topic, 0)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			var kv []string
			for _, r := range got {
				kv = append(kv, string(r.Key)+":"+string(r.Value))
			}
			if !slices.Equal(kv, lines) {
				t.Errorf("read %q, want %q", kv, lines)
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
