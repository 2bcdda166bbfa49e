package jobs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/testenv"
	"github.com/weir-media/weir/protocol"
)

// liveMixSeconds is how long the stream of BenchmarkLiveEnginesTogether
// lasts.
const liveMixSeconds = 60

// liveMixEngines are the built-in engines the benchmark runs together,
// with their options; an engine this weir lacks (fingerprint, while it is
// being written) is left out.
var liveMixEngines = []struct {
	name string
	opts string
}{
	{"loudness", `{}`},
	{"silence", `{}`},
	{"black", `{}`},
	{"scenes", `{}`},
	{"stt", `{}`},
	{"fingerprint", `{}`},
	{"ocr", `{"frame_interval": "2s"}`},
}

// BenchmarkLiveEnginesTogether answers "which built-in engines together
// keep up with a live 720p30 stream?": a liveMixSeconds H.264 + AAC
// stream (five sources cut together, a black and a silent stretch,
// drawtext captions, espeak-ng speech over low noise), encoded beforehand,
// is fed at real time (ffmpeg -re, stream copy) into a live stream topic,
// and one job runs every engine of liveMixEngines on it plus the trivial
// chunk engine on 2 s video chunks. Per stream engine it reports how long
// after the stream's last byte its end (its pseudo-chunk's
// chunk_processed_status) came ("<engine>-lag-s"), and the largest
// distance, past the first liveMixWarmUp of media, between the wall clock
// of a heartbeat and the live edge of the bound it carried
// ("<engine>-bound-lag-s": how far behind live the engine was at worst);
// for the chunk engine, the chunks flow control dropped; and the CPU the
// process and its children used over the run, in cores ("cpu-cores"). The
// log has a table per run, with more figures and each child program's CPU
// (sampled from /proc, so approximate for short-lived ones).
func BenchmarkLiveEnginesTogether(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg", "ffprobe", "espeak-ng")
	reg := engine.NewRegistry()
	var engineList []string
	for _, e := range liveMixEngines {
		r, ok := engine.Default().Lookup(e.name)
		if !ok {
			b.Logf("engine %s is not built into this weir: left out", e.name)
			continue
		}
		if err := reg.Register(r.Spec, r.Factory); err != nil {
			b.Fatal(err)
		}
		engineList = append(engineList, fmt.Sprintf(`{"name": %q, "options": %s}`, e.name, e.opts))
	}
	if err := reg.Register(trivialSpec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return trivialChunk{}, nil })); err != nil {
		b.Fatal(err)
	}
	engineList = append(engineList, `{"name": "trivial", "policy": {"max_in_flight": 2, "max_backlog": 4}}`)
	clip := makeLiveMix(b)
	rig := newLiveRig(b, reg)
	n := 0
	for b.Loop() {
		n++
		runLiveMix(b, rig, clip, fmt.Sprintf("stream_mix%d", n), strings.Join(engineList, ", ")).report(b)
	}
}

// liveMixRun is what one run of the mix measured.
type liveMixRun struct {
	engines  map[string]*engineLag
	dropped  int           // chunks of the chunk engine flow control dropped
	chunks   int           // chunks of the chunk engine in all
	self     time.Duration // CPU of this process: broker, runner, tee, chunk engine
	cpu      time.Duration // and of its children, the feeder left out
	wall     time.Duration
	children map[string]time.Duration // child program → CPU, from /proc
}

// engineLag is how far behind live one stream engine was.
type engineLag struct {
	results  int
	end      time.Duration // its end after the stream's end
	last     time.Duration // its last result after the stream's end
	boundMax time.Duration // largest wall − (live edge of its bound)
	boundP50 time.Duration
	// steadyMax is boundMax once the first liveMixWarmUp of media has
	// gone by (ffmpeg's probe of the input holds the start back).
	steadyMax  time.Duration
	boundFinal time.Duration // of its last heartbeat with a bound
	outMax     time.Duration // largest wall − (live edge of a result's end)
	bounds     []time.Duration
	steady     []time.Duration
	failed     string
}

// runLiveMix runs one job of engines on the mix fed at real time into
// topic.
func runLiveMix(b *testing.B, rig *liveRig, clip, topic, engineList string) liveMixRun {
	b.Helper()
	ctx := rig.ctx
	req, err := ParseRequest(strings.NewReader(fmt.Sprintf(`{"source": {"topic": %q}, "chunking": {"duration": "2s"},
		"engines": [%s]}`, topic, engineList)))
	if err != nil {
		b.Fatal(err)
	}
	v, err := rig.svc.Create(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	sampler := startChildSampler()
	self0, cpu0 := processCPU()
	w := openLiveStream(b, ctx, rig.bus, topic)
	t0, feeder := publishRealTime(b, ctx, w, "-re", "-i", "file:"+clip, "-map", "0", "-c", "copy",
		"-flush_packets", "1", "-f", "mpegts", "pipe:1")
	streamEnd := time.Now()
	if err := w.Close(ctx, false); err != nil {
		b.Fatal(err)
	}
	waitJobComplete(b, ctx, rig.meta, v.ID)
	self1, cpu1 := processCPU()
	out := liveMixRun{wall: time.Since(t0), self: self1 - self0,
		cpu: cpu1 - cpu0 - feeder.UserTime() - feeder.SystemTime(), children: sampler.stop()}
	out.engines = readEngineLags(b, ctx, rig.bus, v.ID, t0, streamEnd)
	chunks, err := rig.meta.ListJobChunks(ctx, v.ID, trivialSpec.Name)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range chunks {
		out.chunks++
		if c.State == metastore.ChunkDropped {
			out.dropped++
		}
	}
	return out
}

// readEngineLags reads the job's results topic to its end and measures
// each stream engine against the live edge: media time t reached the
// broker at t0 + t, and the stream ended at streamEnd.
func readEngineLags(b *testing.B, ctx context.Context, bb bus.Bus, jobID string, t0, streamEnd time.Time) map[string]*engineLag {
	b.Helper()
	lags := map[string]*engineLag{}
	of := func(name string) *engineLag {
		if lags[name] == nil {
			lags[name] = &engineLag{}
		}
		return lags[name]
	}
	behind := func(wallMs, mediaMs int64) time.Duration {
		return time.UnixMilli(wallMs).Sub(t0.Add(time.Duration(mediaMs) * time.Millisecond))
	}
	err := bb.Consume(ctx, bus.ConsumeOptions{Topics: []string{protocol.ResultsTopic(jobID)}, FromBeginning: true,
		UntilEOF: true, MaxRecordBytes: protocol.MaxChunkSize + 64<<10,
		Handler: func(_ context.Context, rec *bus.Record) error {
			msg, err := protocol.Decode(rec.Key, rec.Value)
			if err != nil {
				return nil
			}
			switch m := msg.(type) {
			case *protocol.EngineOutput:
				name, ok := streamEngineOf(jobID, m.ChunkUUID)
				if !ok {
					return nil
				}
				l := of(name)
				l.results++
				l.last = time.UnixMilli(m.TimestampUTC).Sub(streamEnd)
				l.outMax = max(l.outMax, behind(m.TimestampUTC, m.EndOffsetMs))
			case *protocol.EngineHeartbeat:
				if m.TimestampBoundMs != nil && m.Status == protocol.HeartbeatRunning {
					l := of(m.EngineID)
					lag := behind(m.TimestampUTC, *m.TimestampBoundMs)
					l.bounds = append(l.bounds, lag)
					if *m.TimestampBoundMs >= liveMixWarmUp.Milliseconds() {
						l.steady = append(l.steady, lag)
					}
				}
			case *protocol.ChunkProcessedStatus:
				if name, ok := streamEngineOf(jobID, m.ChunkUUID); ok {
					l := of(name)
					l.end = time.UnixMilli(m.TimestampUTC).Sub(streamEnd)
					if m.Status != protocol.ChunkSuccess {
						l.failed = string(m.Status) + ": " + m.ErrorMsg
					}
				}
			}
			return nil
		}})
	if err != nil {
		b.Fatalf("read the results: %v", err)
	}
	for _, l := range lags {
		if len(l.bounds) > 0 {
			l.boundMax = slices.Max(l.bounds)
			l.boundP50 = time.Duration(percentileMs(l.bounds, 0.5) * float64(time.Millisecond))
			l.boundFinal = l.bounds[len(l.bounds)-1]
		}
		if len(l.steady) > 0 {
			l.steadyMax = slices.Max(l.steady)
		}
	}
	return lags
}

// streamEngineOf names the stream engine whose pseudo-chunk uuid is.
func streamEngineOf(jobID, uuid string) (string, bool) {
	rest, ok := strings.CutPrefix(uuid, jobID+"/")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/stream")
}

// report logs the run as a table and reports its figures.
func (r liveMixRun) report(b *testing.B) {
	names := make([]string, 0, len(r.engines))
	for name := range r.engines {
		names = append(names, name)
	}
	slices.Sort(names)
	sec := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) }
	var tab strings.Builder
	fmt.Fprintf(&tab, "%-9s %7s %6s %9s | bound lag: %4s %4s %10s %5s | %s\n", "engine", "results", "end", "last res",
		"p50", "max", "max >10 s", "final", "result lag max")
	for _, name := range names {
		l := r.engines[name]
		fmt.Fprintf(&tab, "%-9s %7d %6s %9s |            %4s %4s %10s %5s | %s %s\n", name, l.results, sec(l.end), sec(l.last),
			sec(l.boundP50), sec(l.boundMax), sec(l.steadyMax), sec(l.boundFinal), sec(l.outMax), l.failed)
		b.ReportMetric(l.end.Seconds(), name+"-lag-s")
		b.ReportMetric(l.steadyMax.Seconds(), name+"-bound-lag-s")
	}
	fmt.Fprintf(&tab, "(seconds; end and last res: after the stream's last byte; bound lag: wall clock of a heartbeat − live edge of its bound)\n")
	fmt.Fprintf(&tab, "trivial (2 s chunks): %d chunks, %d dropped\n", r.chunks, r.dropped)
	cores := r.cpu.Seconds() / r.wall.Seconds()
	fmt.Fprintf(&tab, "CPU over %s s: %s s = %.2f cores; weir's own process %s s (%.2f cores), its children (feeder left out) %.2f cores, of which sampled:\n",
		sec(r.wall), sec(r.cpu), cores, sec(r.self), r.self.Seconds()/r.wall.Seconds(), (r.cpu-r.self).Seconds()/r.wall.Seconds())
	progs := make([]string, 0, len(r.children))
	for p := range r.children {
		progs = append(progs, p)
	}
	slices.SortFunc(progs, func(x, y string) int { return int(r.children[y] - r.children[x]) })
	for _, p := range progs {
		fmt.Fprintf(&tab, "  %-28s %6s s  %.2f cores\n", p, sec(r.children[p]), r.children[p].Seconds()/r.wall.Seconds())
	}
	b.Logf("live %d s 720p30 stream, engines together:\n%s", liveMixSeconds, tab.String())
	b.ReportMetric(float64(r.dropped), "trivial-dropped")
	b.ReportMetric(cores, "cpu-cores")
}

// liveMixWarmUp is the start of the stream after which an engine's bound
// lag counts as steady.
const liveMixWarmUp = 10 * time.Second

// processCPU is the CPU time this process has used, and that of this
// process and its waited-for children together.
func processCPU() (self, all time.Duration) {
	var mine, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &mine)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	self = tv(mine.Utime) + tv(mine.Stime)
	return self, self + tv(children.Utime) + tv(children.Stime)
}

// childSampler notes, every 200 ms, the CPU each child process of this
// one has used, by program (ffmpeg by what it runs).
type childSampler struct {
	stopc chan struct{}
	done  chan map[string]time.Duration
}

func startChildSampler() *childSampler {
	s := &childSampler{stopc: make(chan struct{}), done: make(chan map[string]time.Duration)}
	go func() {
		seen := map[int]procCPU{}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			sampleChildren(seen)
			select {
			case <-s.stopc:
				byProg := map[string]time.Duration{}
				for _, p := range seen {
					byProg[p.label] += p.cpu
				}
				s.done <- byProg
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *childSampler) stop() map[string]time.Duration {
	close(s.stopc)
	return <-s.done
}

// procCPU is a child's label and the CPU it had used when last seen.
type procCPU struct {
	label string
	cpu   time.Duration
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// sampleChildren updates seen with this process's children.
func sampleChildren(seen map[int]procCPU) {
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid ... utime(12) stime(13).
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		pid, _ := strconv.Atoi(filepath.Base(d))
		p, ok := seen[pid]
		if !ok {
			cmdline, _ := os.ReadFile(d + "/cmdline")
			p.label = childLabel(strings.Split(string(cmdline), "\x00"))
		}
		p.cpu = time.Duration(ut+st) * clockTick
		seen[pid] = p
	}
}

// childLabel names a child process by program, and an ffmpeg by the
// engine or part of weir its arguments show it serves.
func childLabel(argv []string) string {
	if len(argv) == 0 || argv[0] == "" {
		return "(ended before it was seen)"
	}
	prog := filepath.Base(argv[0])
	if prog != "ffmpeg" {
		return prog
	}
	line := strings.Join(argv, " ")
	for _, k := range []struct{ needle, label string }{
		{"ebur128", "loudness"}, {"silencedetect", "silence"}, {"blackdetect", "black"}, {"freezedetect", "black"},
		{"[cuts]", "scenes"}, {"image2pipe", "ocr"}, {"chromaprint", "fingerprint"}, {"s16le", "stt or fingerprint"},
		{"-re ", "feeder"},
	} {
		if strings.Contains(line, k.needle) {
			return "ffmpeg (" + k.label + ")"
		}
	}
	return "ffmpeg (chunker or other)"
}

// liveMixCaptions are the captions drawn on the mix: text, start and end
// in seconds.
var liveMixCaptions = []struct {
	text       string
	start, end float64
}{
	{"Weir live benchmark", 1, 9},
	{"Breaking news from the river", 15, 23},
	{"Weather tomorrow sunny and warm", 25, 33},
	{"Markets close higher again", 40, 50},
	{"Sports scores follow", 51, 59},
}

// liveMixSpeech are the sentences spoken in the mix and when they start
// (seconds): none in the silent stretch (44 to 48 s).
var liveMixSpeech = []struct {
	text  string
	start float64
}{
	{"the quick brown fox jumps over the lazy dog", 2},
	{"we will meet at the station at nine in the morning", 9},
	{"please call me back when you get this message", 17},
	{"the weather will be cold and windy tomorrow", 26},
	{"she sells sea shells by the sea shore", 36},
	{"turn left at the next corner and keep going", 50},
}

// makeLiveMix encodes the benchmark's stream into a file: 720p30 H.264
// (a key frame every 2 s) and AAC in MPEG-TS. Video: testsrc2 (0-14 s),
// SMPTE HD bars (14-24 s, still), gradients (24-34 s), black (34-38 s),
// testsrc (38-60 s), with captions. Audio: pink noise at about -40 dBFS
// with speech, silent from 44 to 48 s.
func makeLiveMix(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	args := []string{"-hide_banner", "-loglevel", "error", "-y"}
	for _, src := range []string{"testsrc2=s=1280x720:r=30:d=14", "smptehdbars=s=1280x720:r=30:d=10",
		"gradients=s=1280x720:r=30:d=10", "color=c=black:s=1280x720:r=30:d=4", "testsrc=s=1280x720:r=30:d=22",
		fmt.Sprintf("anoisesrc=color=pink:amplitude=0.02:sample_rate=48000:d=%d", liveMixSeconds)} {
		args = append(args, "-f", "lavfi", "-i", src)
	}
	var graph []string
	mix := "[5:a]"
	for i, s := range liveMixSpeech {
		wav := filepath.Join(dir, fmt.Sprintf("s%d.wav", i))
		if out, err := exec.Command("espeak-ng", "-v", "en-us+klatt", "-w", wav, s.text).CombinedOutput(); err != nil {
			b.Fatalf("espeak-ng: %v: %s", err, out)
		}
		args = append(args, "-i", wav)
		ms := int(s.start * 1000)
		graph = append(graph, fmt.Sprintf("[%d:a]aresample=48000,adelay=%d:all=1[sp%d]", 6+i, ms, i))
		mix += fmt.Sprintf("[sp%d]", i)
	}
	graph = append(graph, fmt.Sprintf("%samix=inputs=%d:normalize=0:duration=first,volume=0:enable='between(t,44,48)'[a]",
		mix, len(liveMixSpeech)+1))
	video := "[0:v][1:v][2:v][3:v][4:v]concat=n=5:v=1:a=0,format=yuv420p"
	for _, c := range liveMixCaptions {
		video += fmt.Sprintf(",drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:text='%s':fontsize=44:"+
			"fontcolor=white:box=1:boxcolor=black@0.7:boxborderw=10:x=80:y=600:enable='between(t,%g,%g)'", c.text, c.start, c.end)
	}
	graph = append(graph, video+"[v]")
	clip := filepath.Join(dir, "mix.ts")
	args = append(args, "-filter_complex", strings.Join(graph, ";"), "-map", "[v]", "-map", "[a]",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-t", fmt.Sprint(liveMixSeconds), "-f", "mpegts", clip)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		b.Fatalf("make the mix: %v: %s", err, out)
	}
	return clip
}
