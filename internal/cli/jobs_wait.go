package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/weir-media/weir/internal/jobs"
)

// jobProgress draws a job's per-engine progress: on a terminal, one bar
// per engine redrawn in place; otherwise a plain line for each engine
// whose counts changed. Status changes are lines of their own either way.
type jobProgress struct {
	w      io.Writer
	tty    bool
	drawn  int               // bar lines on screen below the cursor's line
	last   map[string]string // plain mode: the last line printed per engine
	status string
	width  int // of the engine name column
}

func newJobProgress(w io.Writer) *jobProgress {
	return &jobProgress{w: w, tty: vodIsTerminal(w), last: map[string]string{}}
}

// update shows v: its status when it changed, then the engines.
func (p *jobProgress) update(v jobs.View) {
	for _, e := range v.Engines {
		p.width = max(p.width, len(e.Name))
	}
	p.clear()
	if v.Status != p.status {
		p.status = v.Status
		line := fmt.Sprintf("  [%s] ● %s", time.Now().Local().Format("15:04:05"), v.Status)
		if v.Error != "" && v.Done() {
			line += ": " + v.Error
		}
		fmt.Fprintln(p.w, line)
	}
	for _, e := range v.Engines {
		if p.tty {
			fmt.Fprintln(p.w, p.bar(e))
			continue
		}
		if line := p.plain(e); line != p.last[e.Name] {
			p.last[e.Name] = line
			fmt.Fprintln(p.w, line)
		}
	}
	if p.tty {
		p.drawn = len(v.Engines)
	}
}

// clear moves a terminal's cursor back over the bars drawn last and
// blanks them, so the next update draws in their place.
func (p *jobProgress) clear() {
	if !p.tty || p.drawn == 0 {
		return
	}
	fmt.Fprintf(p.w, "\033[%dA", p.drawn)
	for range p.drawn {
		fmt.Fprint(p.w, "\r\033[K\n")
	}
	fmt.Fprintf(p.w, "\033[%dA", p.drawn)
	p.drawn = 0
}

// bar is an engine's progress bar: the share of chunks answered, then
// done/total, dropped and failed.
func (p *jobProgress) bar(e jobs.EngineProgress) string {
	const width = 24
	filled := 0
	if e.Total > 0 {
		filled = int(e.Finished() * width / e.Total)
	}
	return fmt.Sprintf("  %-*s [%s%s] %s", p.width, e.Name, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), counts(e))
}

// plain is an engine's progress as a log line.
func (p *jobProgress) plain(e jobs.EngineProgress) string {
	return fmt.Sprintf("  %s: %s", e.Name, counts(e))
}

func counts(e jobs.EngineProgress) string {
	s := fmt.Sprintf("%d/%d done, %d dropped, %d failed", e.Done, e.Total, e.Dropped, e.Failed)
	if e.Sent > 0 {
		s += fmt.Sprintf(", %d in flight", e.Sent)
	}
	if e.Ignored > 0 {
		s += fmt.Sprintf(", %d ignored", e.Ignored)
	}
	return s
}

// waitForJob polls job id until it ends, drawing its progress. A job that
// fails or is cancelled is an error with exit status 1.
func waitForJob(ctx context.Context, c *vodClient, id string, interval time.Duration, out io.Writer) error {
	fmt.Fprintf(out, "Watching %s:\n", id)
	p := newJobProgress(out)
	for {
		var v jobs.View
		if _, err := c.get(ctx, "/jobs/"+url.PathEscape(id), &v); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped watching %s; the job goes on on the server", id)
			}
			return err
		}
		p.update(v)
		if v.Done() {
			return jobEnded(out, v)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped watching %s; the job goes on on the server", id)
		case <-time.After(interval):
		}
	}
}

// jobEnded says how the job ended; only a complete job is a success.
func jobEnded(out io.Writer, v jobs.View) error {
	var failed int64
	for _, e := range v.Engines {
		failed += e.Failed
	}
	switch v.Status {
	case "complete":
		note := ""
		if failed > 0 {
			note = fmt.Sprintf(" (%d chunks failed; the results are partial)", failed)
		}
		fmt.Fprintf(out, "\nJob %s complete%s. Its results: weir jobs results %s\n", v.ID, note, v.ID)
		return nil
	case "cancelled":
		return &exitError{code: 1, err: fmt.Errorf("job %s was cancelled; its results so far: weir jobs results %s", v.ID, v.ID)}
	}
	reason := v.Error
	if reason == "" {
		reason = "no reason recorded"
	}
	return &exitError{code: 1, err: fmt.Errorf("job %s failed: %s", v.ID, reason)}
}
