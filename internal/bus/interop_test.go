package bus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readLedger records which group member read which record, by partition
// and offset, across weir consumers and external processes.
type readLedger struct {
	mu      sync.Mutex
	readers map[topicPartitionOffset][]string
	byName  map[string]map[int32]int // member → partition → records read
}

type topicPartitionOffset struct {
	partition int32
	offset    int64
}

func newReadLedger() *readLedger {
	return &readLedger{readers: map[topicPartitionOffset][]string{}, byName: map[string]map[int32]int{}}
}

func (l *readLedger) read(member string, partition int32, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := topicPartitionOffset{partition, offset}
	l.readers[k] = append(l.readers[k], member)
	if l.byName[member] == nil {
		l.byName[member] = map[int32]int{}
	}
	l.byName[member][partition]++
}

// count returns how many records member has read.
func (l *readLedger) count(member string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.byName[member] {
		n += c
	}
	return n
}

// partitions returns the partitions member has read from.
func (l *readLedger) partitions(member string) []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ps []int32
	for p := range l.byName[member] {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// covers reports whether every record up to ends (partition → end
// offset) has been read by someone.
func (l *readLedger) covers(ends map[int32]int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, end := range ends {
		for o := int64(0); o < end; o++ {
			if len(l.readers[topicPartitionOffset{p, o}]) == 0 {
				return false
			}
		}
	}
	return true
}

// check reports records never read and records read more than once.
func (l *readLedger) check(t *testing.T, ends map[int32]int64) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var missing, twice []string
	total := 0
	for p, end := range ends {
		for o := int64(0); o < end; o++ {
			total++
			switch rs := l.readers[topicPartitionOffset{p, o}]; {
			case len(rs) == 0:
				missing = append(missing, fmt.Sprintf("%d@%d", p, o))
			case len(rs) > 1:
				twice = append(twice, fmt.Sprintf("%d@%d by %v", p, o, rs))
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d records never read: %v", len(missing), total, firstOf(missing, 20))
	}
	if len(twice) > 0 {
		t.Errorf("%d of %d records read more than once: %v", len(twice), total, firstOf(twice, 20))
	}
	t.Logf("%d records read, per member and partition: %v", total, l.byName)
}

func firstOf(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}

// groupPeer is an external consumer group member: a process printing
// "PARTITION OFFSET VALUE" per record it reads.
type groupPeer struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process exited and its output is read
	err    error
	stderr bytes.Buffer
}

// startGroupPeer runs cmd, feeding every record it prints into ledger
// under name.
func startGroupPeer(t *testing.T, name string, ledger *readLedger, cmd *exec.Cmd) *groupPeer {
	t.Helper()
	p := &groupPeer{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			part, perr := strconv.ParseInt(fields[0], 10, 32)
			off, oerr := strconv.ParseInt(fields[1], 10, 64)
			if perr != nil || oerr != nil {
				continue
			}
			ledger.read(name, int32(part), off)
		}
		p.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once stopped
		<-p.done
	})
	return p
}

// stop asks the peer to close its consumer (commit and leave the group)
// and waits for it to exit.
func (p *groupPeer) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("stop %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of SIGINT\n%s", p.name, p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("%s: %v\n%s", p.name, p.err, p.stderr.String())
	}
}

// weirMember is a Consume call in the shared group.
type weirMember struct {
	cancel context.CancelFunc
	errc   chan error
}

func startWeirMember(ctx context.Context, c *Client, name, topic, group string, ledger *readLedger) *weirMember {
	mctx, cancel := context.WithCancel(ctx)
	m := &weirMember{cancel: cancel, errc: make(chan error, 1)}
	go func() {
		m.errc <- c.Consume(mctx, ConsumeOptions{Topics: []string{topic}, Group: group, FromBeginning: true,
			Handler: func(_ context.Context, r *Record) error {
				ledger.read(name, r.Partition, r.Offset)
				return nil
			}})
	}()
	return m
}

func (m *weirMember) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	if err := <-m.errc; err != nil {
		t.Fatalf("weir member: %v", err)
	}
}

// steadyProducer produces small batches spread over every partition until
// stopped.
type steadyProducer struct {
	stopc chan struct{}
	done  chan error
	// mu is held while a batch is produced, and by pause until resume.
	mu sync.Mutex
}

func startSteadyProducer(ctx context.Context, c *Client, topic string) *steadyProducer {
	p := &steadyProducer{stopc: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for n := 0; ; n++ {
			select {
			case <-p.stopc:
				p.done <- nil
				return
			case <-time.After(5 * time.Millisecond):
			}
			// 16 keys land on every one of 4 partitions (murmur2).
			recs := make([]*Record, 16)
			for i := range recs {
				recs[i] = &Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("v%d-%d", n, i))}
			}
			p.mu.Lock()
			err := c.Produce(ctx, recs...)
			p.mu.Unlock()
			if err != nil {
				p.done <- err
				return
			}
		}
	}()
	return p
}

// pause returns once no batch is being produced, and holds the producer
// until resume.
func (p *steadyProducer) pause() { p.mu.Lock() }

func (p *steadyProducer) resume() { p.mu.Unlock() }

func (p *steadyProducer) stop(t *testing.T) {
	t.Helper()
	close(p.stopc)
	if err := <-p.done; err != nil {
		t.Fatalf("producer: %v", err)
	}
}

// endOffsets returns every partition's end offset.
func endOffsets(t *testing.T, c *Client, topic string) map[int32]int64 {
	t.Helper()
	ends, err := c.adm.ListEndOffsets(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// librdkafkaPeer starts one librdkafka group member with its default
// assignors.
type librdkafkaPeer struct {
	name  string
	start func(t *testing.T, name, addr, group, topic string, ledger *readLedger) *groupPeer
	// quietStop: stop the member only once it has read everything
	// produced. kcat drops the record its poll returned when SIGINT
	// comes in between (consume_cb returns early once conf.run is 0),
	// although librdkafka stored that record's offset and commits it as
	// the consumer closes: a record the group reads but never prints.
	quietStop bool
}

func kcatMember(t *testing.T, name, addr, group, topic string, ledger *readLedger) *groupPeer {
	requireKcat(t)
	return startGroupPeer(t, name, ledger, exec.Command("kcat", "-b", addr, "-G", group,
		"-X", "auto.offset.reset=earliest", "-u", "-q", "-f", `%p %o %s\n`, topic))
}

func pythonMember(t *testing.T, name, addr, group, topic string, ledger *readLedger) *groupPeer {
	py := requireConfluentKafka(t)
	script, err := filepath.Abs(filepath.Join("testdata", "group_member.py"))
	if err != nil {
		t.Fatal(err)
	}
	return startGroupPeer(t, name, ledger, exec.Command(py, script, addr, group, topic))
}

// requireConfluentKafka returns a Python 3 that imports confluent_kafka:
// WEIR_PYTHON, Debian's /usr/bin/python3 (python3-confluent-kafka), or
// python3 on PATH. It fails when there is none: scripts/deps.sh test
// installs it.
func requireConfluentKafka(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, py := range []string{os.Getenv("WEIR_PYTHON"), "/usr/bin/python3", "python3"} {
		if py == "" {
			continue
		}
		path, err := exec.LookPath(py)
		if err != nil {
			tried = append(tried, py+": not found")
			continue
		}
		out, err := exec.Command(path, "-c", "import confluent_kafka").CombinedOutput()
		if err == nil {
			return path
		}
		tried = append(tried, path+": "+strings.TrimSpace(string(out)))
	}
	t.Fatalf("no python3 imports confluent_kafka (%s); install python3-confluent-kafka (scripts/deps.sh test does)", strings.Join(tried, "; "))
	return ""
}

// TestLibrdkafkaMembersShareAGroupWithWeirConsumers runs librdkafka group
// members with their default assignors (range,roundrobin) in one group
// with weir consumers while members join and leave and a producer keeps
// writing: they split the partitions, and every record is read exactly
// once by the group.
func TestLibrdkafkaMembersShareAGroupWithWeirConsumers(t *testing.T) {
	for _, peer := range []librdkafkaPeer{
		{name: "kcat", start: kcatMember, quietStop: true},
		{name: "confluent-kafka", start: pythonMember},
	} {
		t.Run(peer.name, func(t *testing.T) { testMixedGroup(t, peer) })
	}
}

func testMixedGroup(t *testing.T, peer librdkafkaPeer) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	ctx := testCtx(t)
	const topic, group, parts = "mixed", "mixed-group", 4
	if err := c.CreateTopic(ctx, topic, parts); err != nil {
		t.Fatal(err)
	}
	ledger := newReadLedger()
	prod := startSteadyProducer(ctx, c, topic)

	var running []*groupPeer
	// grows waits until member has read more records than now, failing
	// at once if a librdkafka member exited (refused by the group).
	grows := func(member string) {
		t.Helper()
		n := ledger.count(member)
		waitFor(t, member+" to read more records", func() bool {
			for _, p := range running {
				select {
				case <-p.done:
					t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.stderr.String())
				default:
				}
			}
			return ledger.count(member) > n
		})
	}
	start := func(name string) *groupPeer {
		p := peer.start(t, name, b.Addr(), group, topic, ledger)
		running = append(running, p)
		return p
	}
	// allRead waits until the group has read every record produced so
	// far; the producer is paused meanwhile.
	allRead := func() map[int32]int64 {
		t.Helper()
		ends := endOffsets(t, c, topic)
		deadline := time.Now().Add(45 * time.Second)
		for !ledger.covers(ends) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		return ends
	}
	stopPeer := func(p *groupPeer) {
		t.Helper()
		running = slices.DeleteFunc(running, func(q *groupPeer) bool { return q == p })
		if peer.quietStop {
			prod.pause()
			defer prod.resume()
			allRead()
		}
		p.stop(t)
	}
	name1, name2 := peer.name+"-1", peer.name+"-2"

	a := startWeirMember(ctx, c, "weir-a", topic, group, ledger)
	grows("weir-a")

	// A librdkafka member joins with its default assignors: the group
	// takes it in (no INCONSISTENT_GROUP_PROTOCOL), turning from
	// cooperative-sticky to range, and the two share the partitions.
	p1 := start(name1)
	grows(name1)
	grows("weir-a")
	grows(name1)

	// A second weir member joins the eager group, then the librdkafka
	// member leaves (the group returns to cooperative-sticky) and a new
	// one joins.
	bm := startWeirMember(ctx, c, "weir-b", topic, group, ledger)
	grows("weir-b")
	stopPeer(p1)
	grows("weir-a")
	grows("weir-b")
	p2 := start(name2)
	grows(name2)

	// The first weir member leaves; the others carry on.
	a.stop(t)
	grows(name2)
	grows("weir-b")

	prod.stop(t)
	ends := allRead()
	stopPeer(p2)
	bm.stop(t)

	for _, m := range []string{name1, name2} {
		if ps := ledger.partitions(m); len(ps) == 0 || len(ps) == parts {
			t.Errorf("%s read partitions %v; want a share of the %d", m, ps, parts)
		}
	}
	ledger.check(t, ends)
}

// TestEagerMemberJoiningACooperativeGroupReadsNothingTwice has a member
// that offers only range (as librdkafka's defaults do, but reacting as
// fast as kgo) join, leave and rejoin a group of weir consumers, which
// runs cooperative-sticky before and after, while records flow: the
// switches from cooperative to eager rebalancing and back read every
// record exactly once.
func TestEagerMemberJoiningACooperativeGroupReadsNothingTwice(t *testing.T) {
	b := startTestBroker(t)
	c := newTestClient(t, b.Addr())
	eager := newTestClient(t, b.Addr(), WithKgoOptions(kgo.Balancers(kgo.RangeBalancer())))
	ctx := testCtx(t)
	const topic, group, parts = "coop", "coop-group", 4
	if err := c.CreateTopic(ctx, topic, parts); err != nil {
		t.Fatal(err)
	}
	ledger := newReadLedger()
	prod := startSteadyProducer(ctx, c, topic)
	grows := func(member string) {
		t.Helper()
		n := ledger.count(member)
		waitFor(t, member+" to read more records", func() bool { return ledger.count(member) > n })
	}
	a := startWeirMember(ctx, c, "coop-a", topic, group, ledger)
	bm := startWeirMember(ctx, c, "coop-b", topic, group, ledger)
	grows("coop-a")
	grows("coop-b")
	for i := range 5 {
		name := fmt.Sprintf("eager-%d", i)
		e := startWeirMember(ctx, eager, name, topic, group, ledger)
		grows(name)
		grows("coop-a")
		e.stop(t)
		grows("coop-a")
		grows("coop-b")
	}
	prod.stop(t)
	ends := endOffsets(t, c, topic)
	waitFor(t, "the group to read every record", func() bool { return ledger.covers(ends) })
	a.stop(t)
	bm.stop(t)
	ledger.check(t, ends)
}
