package bus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-media/weir/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveWeirBinary()
	os.Exit(code)
}

// docsPath is docs/bus.md, from this package's directory.
const docsPath = "../../docs/bus.md"

// kcatSection is the heading of docs/bus.md's kcat examples.
const kcatSection = "Connecting with kcat"

// docBlock is one fenced sh block of a markdown file: the heading it is
// under and its commands, continuation lines joined.
type docBlock struct {
	heading  string
	commands []string
}

// shBlocks returns the fenced sh blocks of markdown.
func shBlocks(markdown string) []docBlock {
	var (
		blocks  []docBlock
		heading string
		cur     *docBlock
		pending string
	)
	sc := bufio.NewScanner(strings.NewReader(markdown))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &docBlock{heading: heading}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			if cont, ok := strings.CutSuffix(line, `\`); ok {
				pending += cont + "\\\n"
				continue
			}
			if cmd := strings.TrimSpace(pending + line); cmd != "" && !strings.HasPrefix(cmd, "#") {
				cur.commands = append(cur.commands, cmd)
			}
			pending = ""
		}
	}
	return blocks
}

func TestShBlocksJoinsContinuationLines(t *testing.T) {
	md := "# A\n\n```go\nx := 1\n```\n\n## B\n\n```sh\n# a comment\none -a \\\n   -b   # c\n\ntwo\n```\n"
	got := shBlocks(md)
	want := []docBlock{{heading: "B", commands: []string{"one -a \\\n   -b   # c", "two"}}}
	if len(got) != 1 || got[0].heading != want[0].heading || !slices.Equal(got[0].commands, want[0].commands) {
		t.Errorf("shBlocks = %q, want %q", got, want)
	}
}

// docsEnv is the layout the docs' commands run in: a directory holding
// weir-data (the default --data) whose embedded broker runs with
// authentication, and weir on PATH.
type docsEnv struct {
	dir    string
	broker *Broker
	su     *Client // weir's superuser
	env    []string
	// streamID replaces <id> in the commands.
	streamID string
}

func newDocsEnv(t *testing.T) *docsEnv {
	t.Helper()
	requireKcat(t)
	weir := testenv.WeirBinary(t)
	dir := t.TempDir()
	b := startTestBroker(t, WithDataDir(filepath.Join(dir, "weir-data", "kafka")), WithAuthentication())
	e := &docsEnv{
		dir:      dir,
		broker:   b,
		su:       newTestClient(t, b.Addr(), WithSASL(b.Superuser())),
		env:      append(os.Environ(), "PATH="+filepath.Dir(weir)+string(os.PathListSeparator)+os.Getenv("PATH")),
		streamID: "doc1",
	}
	// A stream topic as weir's ingest writes it.
	produceKeyed(t, e.su, "stream_"+e.streamID, [2]string{"stream_init", `{"type":"stream_init"}`}, [2]string{"raw_stream", "frame-0"})
	return e
}

func produceKeyed(t *testing.T, c *Client, topic string, kvs ...[2]string) {
	t.Helper()
	var recs []*Record
	for _, kv := range kvs {
		recs = append(recs, &Record{Topic: topic, Key: []byte(kv[0]), Value: []byte(kv[1])})
	}
	if err := c.Produce(testCtx(t), recs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// placeholders matches what docs write for a value of the reader's.
var placeholders = regexp.MustCompile(`<[a-zA-Z_-]+>`)

// expand replaces the docs' placeholders with this environment's values.
func (e *docsEnv) expand(t *testing.T, cmd string) string {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, "<id>", e.streamID)
	if p := placeholders.FindString(cmd); p != "" {
		t.Fatalf("docs/bus.md command %q has a placeholder %s this test cannot fill: teach docsEnv.expand", cmd, p)
	}
	return cmd
}

func (e *docsEnv) command(ctx context.Context, cmd string) *exec.Cmd {
	c := exec.CommandContext(ctx, "bash", "-c", cmd)
	c.Dir = e.dir
	c.Env = e.env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	return c
}

// run runs cmd to its end and returns its stdout, failing on an error.
func (e *docsEnv) run(t *testing.T, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := e.command(ctx, cmd)
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", cmd, err, out.String(), stderr.String())
	}
	return out.String()
}

// lockedBuffer is a bytes.Buffer safe for a process to write while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runConsumer starts cmd, a consumer that runs until interrupted, calls
// poke every 300 ms until done reports true, then interrupts it as Ctrl-C
// would, waits for it to exit cleanly and returns its stdout (kcat
// writes to a pipe in blocks, flushed as it exits).
func (e *docsEnv) runConsumer(t *testing.T, cmd string, done func() bool, poke func()) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := e.command(ctx, cmd)
	var out, stderr lockedBuffer
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	deadline := time.After(60 * time.Second)
	for !done() {
		poke()
		select {
		case err := <-exited:
			t.Fatalf("%s exited early: %v\n%s%s", cmd, err, out.String(), stderr.String())
		case <-deadline:
			cancel()
			<-exited
			t.Fatalf("%s: timed out after 60 s:\n%s%s", cmd, out.String(), stderr.String())
		case <-time.After(300 * time.Millisecond):
		}
	}
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%s, interrupted: %v\n%s", cmd, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of SIGINT:\n%s", cmd, stderr.String())
	}
	return out.String()
}

// docsCheck runs the docs' commands that match and checks what they did.
type docsCheck struct {
	what  string
	match *regexp.Regexp
	check func(t *testing.T, e *docsEnv, cmd string, m []string)
}

// docsKcatChecks know every kind of command in the kcat section.
var docsKcatChecks = []docsCheck{
	{"kcat -L | grep", regexp.MustCompile(`^kcat -F weir-data/kafka/kcat\.conf -L \| grep `), checkKcatListGrep},
	{"kcat -L", regexp.MustCompile(`^kcat -F weir-data/kafka/kcat\.conf -L(\s+#.*)?$`), checkKcatList},
	{"kcat -C", regexp.MustCompile(`^kcat -F weir-data/kafka/kcat\.conf -C -t (\S+) `), checkKcatDump},
	{"kcat -P", regexp.MustCompile(`^echo '([^:']+):([^']*)' \| kcat -F weir-data/kafka/kcat\.conf -P -t (\S+) -K: -z (\w+)$`), checkKcatProduce},
	{"kcat -G", regexp.MustCompile(`^kcat -F (\S+) -G (\S+) .*?(\S+)(\s+#.*)?$`), checkKcatGroup},
}

// docsUsersChecks know every kind of weir bus users command.
var docsUsersChecks = []docsCheck{
	{"users add > file", regexp.MustCompile(`^weir bus users add (\S+) .*> (\S+)`), checkUsersAddToFile},
	{"users add --password-file", regexp.MustCompile(`^weir bus users add (\S+) .*--password-file (\S+)`), checkUsersAddWithPassword},
	{"users list", regexp.MustCompile(`^weir bus users list(\s+#.*)?$`), checkUsersList},
	{"users remove", regexp.MustCompile(`^weir bus users remove (\S+)(\s+#.*)?$`), checkUsersRemove},
}

func checkKcatList(t *testing.T, e *docsEnv, cmd string, _ []string) {
	out := e.run(t, cmd)
	for _, want := range []string{"1 brokers:", "at " + e.broker.Addr(), `topic "stream_` + e.streamID + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("%s printed no %q:\n%s", cmd, want, out)
		}
	}
}

func checkKcatListGrep(t *testing.T, e *docsEnv, cmd string, _ []string) {
	produceKeyed(t, e.su, "control_"+e.streamID, [2]string{"k", "not a stream"})
	out := e.run(t, cmd)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"stream_`+e.streamID+`"`) }) {
		t.Errorf("%s did not list stream_%s:\n%s", cmd, e.streamID, out)
	}
	for _, l := range lines {
		if !strings.Contains(l, `topic "stream_`) {
			t.Errorf("%s printed %q, not a stream topic", cmd, l)
		}
	}
}

func checkKcatDump(t *testing.T, e *docsEnv, cmd string, m []string) {
	if m[1] != "stream_"+e.streamID {
		t.Fatalf("%s dumps %s, not the stream topic", cmd, m[1])
	}
	out := e.run(t, cmd)
	want := "stream_init 0 {\"type\":\"stream_init\"}\nraw_stream 1 frame-0\n"
	if out != want {
		t.Errorf("%s printed %q, want %q", cmd, out, want)
	}
}

func checkKcatProduce(t *testing.T, e *docsEnv, cmd string, m []string) {
	key, value, topic, codec := m[1], m[2], m[3], m[4]
	e.run(t, cmd)
	hook := &batchCodecs{}
	c := newTestClient(t, e.broker.Addr(), WithSASL(e.broker.Superuser()), WithKgoOptions(kgo.WithHooks(hook)))
	recs, err := c.ReadAll(testCtx(t), topic, 0)
	if err != nil {
		t.Fatalf("read %s after %s: %v", topic, cmd, err)
	}
	if len(recs) != 1 || string(recs[0].Key) != key || string(recs[0].Value) != value {
		t.Fatalf("%s wrote %v, want one record %s:%s", cmd, recs, key, value)
	}
	// One short record is sent uncompressed: librdkafka keeps a batch
	// as it is when compressing would not make it smaller. The same
	// command with compressible records stores them compressed.
	long := strings.Replace(cmd, value, strings.Repeat(value, 200), 1)
	e.run(t, long)
	want := map[string]uint8{"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
	if _, err := c.ReadAll(testCtx(t), topic, 1); err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if last := hook.batches[len(hook.batches)-1]; last.CompressionType != want {
		t.Errorf("%s stored its batch with codec %d, want %d (%s)", long, last.CompressionType, want, codec)
	}
}

// checkKcatGroup runs a kcat group member, producing records for it,
// until its group has committed a position (librdkafka commits every 5 s),
// then stops it as Ctrl-C does: it must have printed the last record
// committed.
func checkKcatGroup(t *testing.T, e *docsEnv, cmd string, m []string) {
	conf, group, topic := m[1], m[2], m[3]
	if _, err := os.Stat(filepath.Join(e.dir, conf)); err != nil {
		t.Fatalf("%s needs %s, which the docs create earlier: %v", cmd, conf, err)
	}
	committed := func() int64 {
		offsets, err := e.su.Admin().FetchOffsets(testCtx(t), group)
		if err != nil {
			return -1 // the group may not exist yet
		}
		o, ok := offsets.Lookup(topic, 0)
		if !ok || o.Err != nil {
			return -1
		}
		return o.At
	}
	n := 0
	out := e.runConsumer(t, cmd, func() bool { return committed() > 0 }, func() {
		n++
		produceKeyed(t, e.su, topic, [2]string{"k", fmt.Sprintf("doc-marker-%s-%d", group, n)})
	})
	at := committed()
	recs, err := e.su.ReadAll(testCtx(t), topic, at-1)
	if err != nil || len(recs) == 0 {
		t.Fatalf("read %s at %d: %v", topic, at-1, err)
	}
	if !strings.Contains(out, string(recs[0].Value)+"\n") {
		t.Errorf("%s committed offset %d but did not print the record before it, %q:\n%s", cmd, at, recs[0].Value, out)
	}
}

func checkUsersAddToFile(t *testing.T, e *docsEnv, cmd string, m []string) {
	user, file := m[1], m[2]
	e.run(t, cmd)
	props, err := os.ReadFile(filepath.Join(e.dir, file))
	if err != nil {
		t.Fatalf("%s wrote no %s: %v", cmd, file, err)
	}
	for _, want := range []string{"bootstrap.servers=" + e.broker.Addr(), "sasl.username=" + user, "sasl.password="} {
		if !strings.Contains(string(props), want+"") {
			t.Errorf("%s wrote %s without %q:\n%s", cmd, file, want, props)
		}
	}
}

func checkUsersAddWithPassword(t *testing.T, e *docsEnv, cmd string, m []string) {
	user, file := m[1], m[2]
	const password = "a password from a file"
	if err := os.WriteFile(filepath.Join(e.dir, file), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.run(t, cmd)
	c := newTestClient(t, e.broker.Addr(), WithSASL(Credentials{Mechanism: MechanismSCRAMSHA256, User: user, Password: password}))
	if err := c.Ping(testCtx(t)); err != nil {
		t.Errorf("after %s, %s cannot log in with the file's password: %v", cmd, user, err)
	}
}

func checkUsersList(t *testing.T, e *docsEnv, cmd string, _ []string) {
	out := e.run(t, cmd)
	users, err := e.su.Users(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if !strings.Contains(out, u.Name) {
			t.Errorf("%s does not list user %s:\n%s", cmd, u.Name, out)
		}
	}
}

func checkUsersRemove(t *testing.T, e *docsEnv, cmd string, m []string) {
	e.run(t, cmd)
	users, err := e.su.Users(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(users, func(u User) bool { return u.Name == m[1] }) {
		t.Errorf("after %s, user %s still exists", cmd, m[1])
	}
}

// TestDocsBusExamplesRun runs every command of docs/bus.md's sh blocks
// (weir bus users, and the kcat examples) against an embedded broker with
// authentication, from a directory laid out as the docs assume, and checks
// what each printed and did: the docs cannot drift from what works. Users
// are added first, since the kcat examples log in as one; list and remove
// run last.
func TestDocsBusExamplesRun(t *testing.T) {
	md, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	var kcatCmds, usersCmds []string
	for _, b := range shBlocks(string(md)) {
		switch {
		case b.heading == kcatSection:
			kcatCmds = append(kcatCmds, b.commands...)
		case len(b.commands) > 0 && strings.HasPrefix(b.commands[0], "weir bus users "):
			usersCmds = append(usersCmds, b.commands...)
		default:
			t.Errorf("docs/bus.md has an sh block under %q this test does not run: %q", b.heading, b.commands)
		}
	}
	if len(kcatCmds) < 5 || len(usersCmds) < 4 {
		t.Fatalf("found %d kcat and %d weir bus users commands in docs/bus.md; the sections moved?", len(kcatCmds), len(usersCmds))
	}

	e := newDocsEnv(t)
	type step struct {
		cmd   string
		check docsCheck
		m     []string
	}
	classify := func(cmds []string, checks []docsCheck) []step {
		var steps []step
		for _, cmd := range cmds {
			cmd = e.expand(t, cmd)
			i := slices.IndexFunc(checks, func(c docsCheck) bool { return c.match.MatchString(cmd) })
			if i < 0 {
				t.Errorf("docs/bus.md command %q is not one this test knows how to check: add a docsCheck", cmd)
				continue
			}
			steps = append(steps, step{cmd, checks[i], checks[i].match.FindStringSubmatch(cmd)})
		}
		return steps
	}
	users := classify(usersCmds, docsUsersChecks)
	kcats := classify(kcatCmds, docsKcatChecks)
	isAdd := func(s step) bool { return strings.HasPrefix(s.check.what, "users add") }
	var order []step
	order = append(order, slices.DeleteFunc(slices.Clone(users), func(s step) bool { return !isAdd(s) })...)
	order = append(order, kcats...)
	order = append(order, slices.DeleteFunc(slices.Clone(users), isAdd)...)
	for _, s := range order {
		if !t.Run(s.check.what, func(t *testing.T) { s.check.check(t, e, s.cmd, s.m) }) {
			t.Logf("failed: %s", s.cmd)
		}
	}
}

// goBlocks returns the fenced go blocks of markdown.
func goBlocks(markdown string) []string {
	var (
		blocks []string
		cur    *strings.Builder
	)
	for _, line := range strings.Split(markdown, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// docExamplePrelude wraps a go block of statements that use the bus
// package from outside, with the names the docs leave to the reader: data
// (the data dir) and log (a *slog.Logger).
const docExamplePrelude = `package doccheck

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-media/weir/internal/bus"
)

var (
	_ = context.Background
	_ = filepath.Join
	_ = prometheus.DefaultRegisterer
	_ = bus.ParseBrokers
)

func docExample(data string, log *slog.Logger) {
	var err error
`

// TestDocsBusGoExamplesCompile compiles docs/bus.md's go blocks against
// the bus package, with the go command's -overlay (nothing is written into
// the source tree): statement blocks as a function of a package importing
// bus, and the Bus interface as a declaration inside package bus that
// must have exactly bus.Bus's methods.
func TestDocsBusGoExamplesCompile(t *testing.T) {
	testenv.RequireTool(t, "go")
	md, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	overlay := map[string]string{}
	add := func(pkgDir, name, src string) {
		tmp := filepath.Join(dir, fmt.Sprintf("%d-%s", len(overlay), name))
		if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		abs, err := filepath.Abs(filepath.Join(pkgDir, name))
		if err != nil {
			t.Fatal(err)
		}
		overlay[abs] = tmp
	}
	var pkgs []string
	for i, block := range goBlocks(string(md)) {
		switch {
		case strings.HasPrefix(block, "type Bus interface {"):
			decl := strings.Replace(block, "type Bus interface", "type docBus interface", 1)
			add(".", "zz_docs_bus_gen.go", "package bus\n\nimport \"context\"\n\n"+decl+
				"\n// The docs' interface and the real one have the same methods.\nvar (\n\t_ docBus = Bus(nil)\n\t_ Bus = docBus(nil)\n)\n")
			pkgs = append(pkgs, ".")
		case strings.Contains(block, "bus."):
			add("zz_docs_example", fmt.Sprintf("example%d.go", i),
				strings.Replace(docExamplePrelude, "docExample(", fmt.Sprintf("docExample%d(", i), 1)+block+"\t_ = err\n}\n")
			if !slices.Contains(pkgs, "./zz_docs_example") {
				pkgs = append(pkgs, "./zz_docs_example")
			}
		default:
			t.Errorf("docs/bus.md go block %d is neither a Bus interface nor statements using bus: teach this test\n%s", i, block)
		}
	}
	if len(pkgs) < 2 {
		t.Fatalf("found the go blocks for %v in docs/bus.md; the examples moved?", pkgs)
	}
	var js strings.Builder
	js.WriteString(`{"Replace":{`)
	first := true
	for path, tmp := range overlay {
		if !first {
			js.WriteString(",")
		}
		first = false
		fmt.Fprintf(&js, "%q:%q", path, tmp)
	}
	js.WriteString("}}")
	ovPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovPath, []byte(js.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "-overlay", ovPath}, pkgs...)
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		t.Errorf("docs/bus.md's go examples do not compile: %v\n%s", err, out)
	}
}
