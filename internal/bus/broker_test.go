package bus

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestBrokerRestartKeepsRecordsAndCommittedOffsets(t *testing.T) {
	dir := t.TempDir()
	start := func() *Broker {
		b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(testLogger()))
		if err != nil {
			t.Fatalf("StartBroker on %s: %v", dir, err)
		}
		return b
	}

	b1 := start()
	c1 := newTestClient(t, b1.Addr())
	ctx := testCtx(t)
	if err := c1.CreateTopic(ctx, "durable", 2); err != nil {
		t.Fatal(err)
	}
	// Two partitions, five records each, keyed so each key stays put.
	var sent []*Record
	for i := 0; i < 10; i++ {
		sent = append(sent, &Record{Topic: "durable", Key: []byte("k" + strconv.Itoa(i%2)), Value: []byte("v" + strconv.Itoa(i))})
	}
	if err := c1.Produce(ctx, sent...); err != nil {
		t.Fatal(err)
	}

	// The group handles 6 of the 10 records, then stops cleanly.
	cctx, cancel := context.WithCancel(ctx)
	handledBefore := map[string]bool{}
	err := c1.Consume(cctx, ConsumeOptions{Topics: []string{"durable"}, Group: "resume", FromBeginning: true,
		Handler: func(_ context.Context, r *Record) error {
			handledBefore[string(r.Value)] = true
			if len(handledBefore) == 6 {
				cancel()
			}
			return nil
		}})
	if err != nil {
		t.Fatalf("first Consume: %v", err)
	}
	if len(handledBefore) != 6 {
		t.Fatalf("first consumer handled %d records, want 6", len(handledBefore))
	}
	c1.Close()
	if err := b1.Close(); err != nil {
		t.Fatalf("Broker.Close: %v", err)
	}

	b2 := start()
	t.Cleanup(func() { b2.Close() })
	c2 := newTestClient(t, b2.Addr())

	// Every record survived, at its offset.
	got, err := c2.ReadAll(ctx, "durable", 0)
	if err != nil {
		t.Fatalf("ReadAll after restart: %v", err)
	}
	if len(got) != len(sent) {
		t.Fatalf("after restart the topic holds %d records, want %d", len(got), len(sent))
	}
	for _, g := range got {
		i := slices.IndexFunc(sent, func(s *Record) bool { return string(s.Value) == string(g.Value) })
		if i < 0 || sent[i].Partition != g.Partition || sent[i].Offset != g.Offset || string(sent[i].Key) != string(g.Key) {
			t.Errorf("record %q at %d@%d after restart does not match what was produced", g.Value, g.Partition, g.Offset)
		}
	}

	// The group resumes after its last commit.
	rest := consumeUntilEOF(t, c2, "durable", "resume")
	if len(rest) != 4 {
		t.Errorf("group resumed with %d records (%v), want the 4 it had not handled", len(rest), values(rest))
	}
	for _, r := range rest {
		if handledBefore[string(r.Value)] {
			t.Errorf("record %q was committed before the restart and delivered again", r.Value)
		}
	}

	// New records continue the offsets instead of overwriting.
	more := produceValues(t, c2, "durable", []byte("k0"), "after-restart")
	var before int64
	for _, s := range sent {
		if s.Partition == more[0].Partition {
			before++
		}
	}
	if more[0].Offset != before {
		t.Errorf("first record after restart at offset %d of partition %d, want %d", more[0].Offset, more[0].Partition, before)
	}
}

func TestTwoBrokersCannotShareADataDir(t *testing.T) {
	dir := t.TempDir()
	startTestBroker(t, WithDataDir(dir))
	b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(testLogger()))
	if err == nil {
		b.Close()
		t.Fatal("a second broker started on a data dir in use")
	}
}

func TestStartBrokerOnABusyAddressFails(t *testing.T) {
	b := startTestBroker(t)
	if b2, err := StartBroker(WithListenAddr(b.Addr()), WithLogger(testLogger())); err == nil {
		b2.Close()
		t.Fatalf("second broker on %s started", b.Addr())
	}
}

func TestBrokerCloseIsIdempotent(t *testing.T) {
	b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(t.TempDir()), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", b.ListenAddr()); err == nil {
		t.Errorf("broker still accepts connections after Close")
	}
}

func TestMetadataAdvertisesAnAddressClientsCanReach(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []BrokerOption
		wantHost   string
		listenHost string
	}{
		{"loopback", nil, "127.0.0.1", "127.0.0.1"},
		{"every interface falls back to loopback", []BrokerOption{WithListenAddr("0.0.0.0:0")}, "127.0.0.1", "unspecified"},
		{"explicit advertised host", []BrokerOption{WithAdvertisedAddr("localhost")}, "localhost", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startTestBroker(t, tc.opts...)
			host, port, _ := net.SplitHostPort(b.Addr())
			if host != tc.wantHost {
				t.Errorf("Addr() = %s, want host %s", b.Addr(), tc.wantHost)
			}
			lhost, lport, _ := net.SplitHostPort(b.ListenAddr())
			if tc.listenHost == "unspecified" && net.ParseIP(lhost).IsUnspecified() {
				lhost = tc.listenHost // 0.0.0.0 or [::], as the OS reports it
			}
			if lhost != tc.listenHost || lport != port || port == "0" {
				t.Errorf("ListenAddr() = %s, Addr() = %s: want host %s and the same bound port", b.ListenAddr(), b.Addr(), tc.listenHost)
			}
			c := newTestClient(t, b.Addr())
			meta, err := c.Admin().BrokerMetadata(testCtx(t))
			if err != nil {
				t.Fatalf("BrokerMetadata: %v", err)
			}
			if len(meta.Brokers) != 1 {
				t.Fatalf("metadata lists %d brokers, want 1", len(meta.Brokers))
			}
			got := net.JoinHostPort(meta.Brokers[0].Host, strconv.Itoa(int(meta.Brokers[0].Port)))
			if got != b.Addr() {
				t.Errorf("metadata advertises %s, want %s", got, b.Addr())
			}
		})
	}
}

func TestAdvertisedAddr(t *testing.T) {
	for _, tc := range []struct {
		name, explicit, listen string
		port                   int
		want                   string
		wantErr                bool
	}{
		{"listen host kept", "", "127.0.0.1:0", 4321, "127.0.0.1:4321", false},
		{"named listen host kept", "", "localhost:9092", 9092, "localhost:9092", false},
		{"empty host becomes loopback", "", ":9092", 9092, "127.0.0.1:9092", false},
		{"ipv4 any becomes loopback", "", "0.0.0.0:9092", 9092, "127.0.0.1:9092", false},
		{"ipv6 any becomes loopback", "", "[::]:9092", 9092, "127.0.0.1:9092", false},
		{"explicit with port", "kafka.example:19092", "0.0.0.0:9092", 9092, "kafka.example:19092", false},
		{"explicit bare host takes bound port", "kafka.example", "0.0.0.0:0", 5555, "kafka.example:5555", false},
		{"explicit zero port takes bound port", "10.0.0.5:0", "0.0.0.0:0", 5555, "10.0.0.5:5555", false},
		{"explicit ipv6", "[fd00::1]:9092", "[::]:9092", 9092, "[fd00::1]:9092", false},
		{"explicit without host", ":9092", "0.0.0.0:9092", 9092, "", true},
		{"bad listen address", "", "nonsense", 9092, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := advertisedAddr(tc.explicit, tc.listen, tc.port)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("advertisedAddr(%q, %q, %d) = %q, %v; want %q, error %v", tc.explicit, tc.listen, tc.port, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestStartBrokerRejectsZeroDefaultPartitions(t *testing.T) {
	if b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDefaultPartitions(0)); err == nil {
		b.Close()
		t.Fatal("StartBroker with 0 default partitions succeeded")
	}
}

// crashDirEnv tells the test binary, re-run as a child, to act as a broker
// process that gets killed.
const crashDirEnv = "WEIR_BUS_CRASH_CHILD_DIR"

// TestCrashChild is the child half of
// TestBrokerKilledMidRunKeepsAcknowledgedRecordsAndCommits; it does nothing
// in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of the crash test")
	}
	b, err := StartBroker(WithListenAddr("127.0.0.1:0"), WithDataDir(dir), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, b.Addr())
	produceValues(t, c, "crash", nil, numberedValues("v", 10)...)
	ctx, cancel := context.WithCancel(testCtx(t))
	n := 0
	if err := c.Consume(ctx, ConsumeOptions{Topics: []string{"crash"}, Group: "survivor", FromBeginning: true,
		Handler: func(context.Context, *Record) error {
			if n++; n == 6 {
				cancel()
			}
			return nil
		}}); err != nil {
		t.Fatal(err)
	}
	// Offsets of the 6 handled records are committed; records are
	// acknowledged. Tell the parent, then wait to be killed without any
	// Close.
	fmt.Println("READY")
	select {}
}

func TestBrokerKilledMidRunKeepsAcknowledgedRecordsAndCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatal("child broker exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child broker not ready")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	b := startTestBroker(t, WithDataDir(dir))
	c := newTestClient(t, b.Addr())
	got, err := c.ReadAll(testCtx(t), "crash", 0)
	if err != nil {
		t.Fatalf("ReadAll after the crash: %v", err)
	}
	if !slices.Equal(values(got), numberedValues("v", 10)) {
		t.Errorf("after a kill -9 the topic holds %v, want the 10 acknowledged records", values(got))
	}
	if rest := consumeUntilEOF(t, c, "crash", "survivor"); !slices.Equal(offsets(rest), []int64{6, 7, 8, 9}) {
		t.Errorf("after a kill -9 the group resumed with offsets %v, want 6..9", offsets(rest))
	}
}

func TestBrokerDeletesRecordsPastRetention(t *testing.T) {
	b := startTestBroker(t, WithRetentionCheck(50*time.Millisecond))
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)
	retention := "60000" // one minute
	if _, err := c.Admin().CreateTopic(ctx, 1, -1, map[string]*string{"retention.ms": &retention}, "short-lived"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := c.Produce(ctx,
		&Record{Topic: "short-lived", Value: []byte("expired"), Timestamp: old},
	); err != nil {
		t.Fatal(err)
	}
	if err := c.Produce(ctx, &Record{Topic: "short-lived", Value: []byte("fresh")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expired record to be deleted", func() bool {
		starts, err := c.Admin().ListStartOffsets(ctx, "short-lived")
		if err != nil {
			return false
		}
		o, ok := starts.Lookup("short-lived", 0)
		return ok && o.Offset == 1
	})
	got, err := c.ReadAll(ctx, "short-lived", 0)
	if err != nil || !slices.Equal(values(got), []string{"fresh"}) {
		t.Errorf("after retention the topic holds %v (%v), want [fresh]", values(got), err)
	}
}
