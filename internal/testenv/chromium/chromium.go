//go:build unix

package chromium

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Path finds Debian's Chromium. A browser test fails, not skips, without
// it: `make test` installs it.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed (looked for chromium and /usr/bin/chromium): `make test` installs it (scripts/deps.sh test runs apt-get install chromium)")
	return ""
}

// Browser is a running headless Chromium and a DevTools connection to it.
type Browser struct {
	t    testing.TB
	cmd  *exec.Cmd
	conn *websocket.Conn

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	logs    []string // page console output, exceptions, browser log entries
	urls    []string // every URL a tab with the network domain enabled requested
	stderr  []string // the last lines Chromium printed
	closed  chan struct{}
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// Start starts Chromium with a throwaway profile and connects to it,
// adding flags to its command line. Everything is torn down when the test
// ends.
func Start(t testing.TB, ctx context.Context, flags ...string) *Browser {
	t.Helper()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--mute-audio",
		"--autoplay-policy=no-user-gesture-required",
		"--user-data-dir=" + t.TempDir(),
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--window-size=1280,900"}, flags...)
	cmd := exec.Command(Path(t), append(args, "about:blank")...)
	// Its own process group, so the renderer and GPU helpers go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	b := &Browser{t: t, cmd: cmd, pending: map[int64]chan cdpMessage{}, closed: make(chan struct{})}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		if b.conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.call(cctx, "", "Browser.close", nil, nil)
			cancel()
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		// Whatever is left of the group (a helper that outlived the
		// browser, or a browser that ignored Browser.close).
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if b.conn != nil {
			b.conn.CloseNow()
		}
	})

	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := devtoolsURL.FindStringSubmatch(line); m != nil {
				select {
				case wsURL <- m[1]:
				default:
				}
			}
			b.mu.Lock()
			b.stderr = append(b.stderr, line)
			if len(b.stderr) > 40 {
				b.stderr = b.stderr[len(b.stderr)-40:]
			}
			b.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()
	var u string
	select {
	case u = <-wsURL:
	case <-exited:
		t.Fatalf("chromium exited before it listened for DevTools:\n%s", b.LastStderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium printed no DevTools address within 30s:\n%s", b.LastStderr())
	}
	conn, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("connecting to chromium's DevTools at %s: %v", u, err)
	}
	conn.SetReadLimit(128 << 20) // screenshots arrive base64-encoded in one message
	b.conn = conn
	go b.read()
	return b
}

// LastStderr is the last lines Chromium printed.
func (b *Browser) LastStderr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.stderr, "\n")
}

// PageLog is what the page printed and threw so far.
func (b *Browser) PageLog() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.logs) == 0 {
		return "(nothing)"
	}
	return strings.Join(b.logs, "\n")
}

// Logf adds a line to the page log.
func (b *Browser) Logf(format string, args ...any) {
	b.mu.Lock()
	b.logs = append(b.logs, fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

// read dispatches replies to their callers and records events.
func (b *Browser) read() {
	defer close(b.closed)
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			return
		}
		var msg cdpMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			continue
		}
		if msg.ID != 0 {
			b.mu.Lock()
			ch := b.pending[msg.ID]
			delete(b.pending, msg.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- msg
			}
			continue
		}
		b.event(msg)
	}
}

func (b *Browser) event(msg cdpMessage) {
	switch msg.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		json.Unmarshal(msg.Params, &p)
		var parts []string
		for _, a := range p.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		b.Logf("console.%s: %s", p.Type, strings.Join(parts, " "))
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				URL       string `json:"url"`
				Line      int    `json:"lineNumber"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		json.Unmarshal(msg.Params, &p)
		b.Logf("exception: %s %s (%s:%d)", p.Details.Text, p.Details.Exception.Description, p.Details.URL, p.Details.Line)
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level, Source, Text, URL string
			} `json:"entry"`
		}
		json.Unmarshal(msg.Params, &p)
		b.Logf("log %s %s: %s %s", p.Entry.Level, p.Entry.Source, p.Entry.Text, p.Entry.URL)
	case "Network.requestWillBeSent":
		var p struct {
			Request struct {
				URL string `json:"url"`
			} `json:"request"`
		}
		json.Unmarshal(msg.Params, &p)
		b.mu.Lock()
		b.urls = append(b.urls, p.Request.URL)
		b.mu.Unlock()
	case "Page.javascriptDialogOpening":
		// The console confirms before ending a stream; say yes.
		var p struct {
			Message string `json:"message"`
		}
		json.Unmarshal(msg.Params, &p)
		b.Logf("dialog: %s", p.Message)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b.call(ctx, msg.SessionID, "Page.handleJavaScriptDialog", map[string]any{"accept": true}, nil)
		}()
	}
}

// call sends one command and decodes its result into result (when not nil).
func (b *Browser) call(ctx context.Context, sessionID, method string, params, result any) error {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	var raw json.RawMessage
	if params != nil {
		var err error
		if raw, err = json.Marshal(params); err != nil {
			return err
		}
	}
	out, err := json.Marshal(cdpMessage{ID: id, Method: method, Params: raw, SessionID: sessionID})
	if err != nil {
		return err
	}
	if err := b.conn.Write(ctx, websocket.MessageText, out); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case msg := <-ch:
		if msg.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, msg.Error.Message, msg.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(msg.Result, result)
		}
		return nil
	case <-b.closed:
		return fmt.Errorf("%s: the DevTools connection closed", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Tab is one page target, attached with a flat session.
type Tab struct {
	b       *Browser
	session string
}

// NewTab opens a blank 1280×900 tab with the runtime, page and log domains
// enabled.
func (b *Browser) NewTab(ctx context.Context) *Tab {
	b.t.Helper()
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		b.t.Fatal(err)
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		b.t.Fatal(err)
	}
	tb := &Tab{b: b, session: attached.SessionID}
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := b.call(ctx, tb.session, m, nil, nil); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := b.call(ctx, tb.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		b.t.Fatal(err)
	}
	return tb
}

// Resize sets the tab's viewport to width×height CSS pixels.
func (tb *Tab) Resize(ctx context.Context, width, height int) {
	tb.b.t.Helper()
	if err := tb.b.call(ctx, tb.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		tb.b.t.Fatal(err)
	}
}

// Navigate loads url in the tab.
func (tb *Tab) Navigate(ctx context.Context, url string) {
	tb.b.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	if err := tb.b.call(ctx, tb.session, "Page.navigate", map[string]any{"url": url}, &res); err != nil {
		tb.b.t.Fatal(err)
	}
	if res.ErrorText != "" {
		tb.b.t.Fatalf("navigating to %s: %s", url, res.ErrorText)
	}
}

// Eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its JSON-serialisable value into out.
func (tb *Tab) Eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := tb.b.call(ctx, tb.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true, "userGesture": true,
	}, &res)
	if err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("evaluating %q: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// WaitFor evaluates expr (which returns a JSON value decoded into out) every
// 200 ms until done(out) holds or the timeout passes; it fails the test with
// the last value and the page's log on timeout.
func (tb *Tab) WaitFor(ctx context.Context, what string, timeout time.Duration, expr string, out any, done func() bool) {
	tb.b.t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		lastErr = tb.Eval(ctx, expr, out)
		if lastErr == nil && done() {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			last, _ := json.Marshal(out)
			tb.b.t.Fatalf("%s: not within %s (last value %s, error %v)\npage log:\n%s", what, timeout, last, lastErr, tb.b.PageLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// RecordRequests makes the browser note every URL this tab requests (see
// Browser.Requested).
func (tb *Tab) RecordRequests(ctx context.Context) {
	tb.b.t.Helper()
	if err := tb.b.call(ctx, tb.session, "Network.enable", nil, nil); err != nil {
		tb.b.t.Fatal(err)
	}
}

// Requested is every URL requested so far by tabs that record requests.
func (b *Browser) Requested() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}

// SetFiles puts files into the file input selector names, as the user's
// file picker would.
func (tb *Tab) SetFiles(ctx context.Context, selector string, files ...string) {
	tb.b.t.Helper()
	var doc struct {
		Root struct {
			NodeID int64 `json:"nodeId"`
		} `json:"root"`
	}
	if err := tb.b.call(ctx, tb.session, "DOM.getDocument", nil, &doc); err != nil {
		tb.b.t.Fatal(err)
	}
	var found struct {
		NodeID int64 `json:"nodeId"`
	}
	if err := tb.b.call(ctx, tb.session, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &found); err != nil {
		tb.b.t.Fatal(err)
	}
	if found.NodeID == 0 {
		tb.b.t.Fatalf("no element matches %s", selector)
	}
	if err := tb.b.call(ctx, tb.session, "DOM.setFileInputFiles", map[string]any{"nodeId": found.NodeID, "files": files}, nil); err != nil {
		tb.b.t.Fatal(err)
	}
}

// Screenshot captures the viewport as PNG into path and returns it.
func (tb *Tab) Screenshot(ctx context.Context, path string) []byte {
	tb.b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	if err := tb.b.call(ctx, tb.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &res); err != nil {
		tb.b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		tb.b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.b.t.Fatal(err)
	}
	return png
}

// T is the test the browser belongs to (so wrappers can call T().Helper()).
func (b *Browser) T() testing.TB { return b.t }

// T is the test the tab's browser belongs to.
func (tb *Tab) T() testing.TB { return tb.b.t }
