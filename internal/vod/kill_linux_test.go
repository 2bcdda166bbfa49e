package vod

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/metastore"
	"github.com/weir-media/weir/internal/objstore"
)

// helperEnv, when set, makes the test binary act as a worker process for
// TestWorkerKilledWithSIGKILL: it runs one job over the stores in the
// given directory and never returns.
const helperEnv = "WEIR_VOD_KILL_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		runKillHelper(dir)
		return
	}
	os.Exit(m.Run())
}

func runKillHelper(dir string) {
	meta, err := metastore.OpenSQLite(filepath.Join(dir, "weir.db"))
	if err != nil {
		panic(err)
	}
	objects, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		panic(err)
	}
	job, err := os.ReadFile(filepath.Join(dir, "job.json"))
	if err != nil {
		panic(err)
	}
	e := &env{meta: meta, objects: objects, dir: dir}
	cfg := e.config(nil)
	cfg.FFmpeg = filepath.Join(dir, "ffmpeg-realtime")
	w, err := NewWorker(cfg)
	if err != nil {
		panic(err)
	}
	w.Handle(context.Background(), job)
	select {} // the test kills us
}

// A worker process killed with SIGKILL takes its ffmpeg with it, and the
// redelivered job, in another process, finishes the title consistently.
func TestWorkerKilledWithSIGKILL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, job := e.upload(t, smallClip(t, "30"))
	os.WriteFile(filepath.Join(e.dir, "job.json"), job, 0o644)
	wrapper, err := os.ReadFile(slowFFmpeg(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.dir, "ffmpeg-realtime"), wrapper, 0o755)

	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+e.dir)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the helper's first segments", func() bool { return len(e.rows(t, id, "240p")) >= 2 })
	ffmpeg := childrenOf(helper.Process.Pid)
	if len(ffmpeg) == 0 {
		t.Fatal("no ffmpeg under the helper process")
	}
	helper.Process.Kill()
	helper.Wait()
	// An orphaned ffmpeg would go on reading its 30 s source in real time.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range ffmpeg {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("ffmpeg %d outlived its killed worker", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if st := e.stream(t, id); st.Status != metastore.StatusTranscoding {
		t.Fatalf("after the kill the stream is %s, want transcoding", st.Status)
	}

	if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if st := e.stream(t, id); st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s), want ready", st.Status, st.Error)
	}
	if rows := e.rows(t, id, "240p"); len(rows) != 30 {
		t.Errorf("%d rows, want 30", len(rows))
	}
	assertConsistent(t, e, id, []string{"240p"})
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		child, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procStat(child); ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	_, state := procStat(pid)
	return state != "" && state != "Z" && state != "X"
}

// procStat reads a process's parent pid and state from /proc/PID/stat.
func procStat(pid int) (ppid int, state string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, ""
	}
	// The command name is in parentheses and may contain spaces.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 2 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0]
}
