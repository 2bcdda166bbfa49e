package alerts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/testenv"
)

// docsPath is docs/alerts.md, from this package's directory.
const docsPath = "../../docs/alerts.md"

// docBlock returns the first fenced block of lang after the line holding
// after, in docs/alerts.md.
func docBlock(t *testing.T, after, lang string) string {
	t.Helper()
	raw, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, after)
	if i < 0 {
		t.Fatalf("docs/alerts.md has no %q", after)
	}
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(doc[i:])
	if m == nil {
		t.Fatalf("docs/alerts.md has no %s block after %q", lang, after)
	}
	return m[1]
}

// signed is a request as weir sends it, and tampered copies of it.
type signedCase struct {
	name, timestamp, signature string
	body                       []byte
	ok                         bool
}

func signedCases() (secret string, cases []signedCase) {
	secret = "whsec_docs-test-0123456789"
	body := []byte(`{"event_id":"al-1:raised","alert_id":"al-1","event":"raised"}`)
	now := time.Now()
	ts := fmt.Sprint(now.Unix())
	sig := Sign(secret, now, body)
	old := now.Add(-10 * time.Minute)
	return secret, []signedCase{
		{"as sent", ts, sig, body, true},
		{"with a second, rotated signature", ts, "v1=00ff, " + sig, body, true},
		{"body changed", ts, sig, append([]byte(nil), append(body[:len(body)-1], ' ', '}')...), false},
		{"another secret", ts, Sign("whsec_other-secret-0000", now, body), body, false},
		{"timestamp changed", fmt.Sprint(now.Unix() + 1), sig, body, false},
		{"replayed ten minutes later", fmt.Sprint(old.Unix()), Sign(secret, old, body), body, false},
		{"timestamp not a number", "soon", sig, body, false},
	}
}

// TestDocsVerifySnippetsAcceptWhatWeirSigns runs the Python and Go
// verification snippets of docs/alerts.md against requests signed by
// Sign, and tampered ones; alerts.Verify must agree with them.
func TestDocsVerifySnippetsAcceptWhatWeirSigns(t *testing.T) {
	secret, cases := signedCases()
	for _, c := range cases {
		if err := Verify(secret, c.timestamp, c.signature, c.body, time.Now(), 5*time.Minute); (err == nil) != c.ok {
			t.Errorf("alerts.Verify, %s: %v, want ok %v", c.name, err, c.ok)
		}
	}

	t.Run("python", func(t *testing.T) {
		testenv.RequireTool(t, "python3")
		var drive strings.Builder
		drive.WriteString(docBlock(t, "In Python", "python"))
		drive.WriteString("\nimport sys\nresults = []\n")
		for _, c := range cases {
			fmt.Fprintf(&drive, "results.append(verify(%q, %q, %q, %s))\n", secret, c.timestamp, c.signature, pyBytes(c.body))
		}
		drive.WriteString("print(' '.join('1' if r else '0' for r in results))\n")
		out, err := exec.Command("python3", "-c", drive.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("python3: %v\n%s", err, out)
		}
		checkVerdicts(t, cases, string(out))
	})

	t.Run("go", func(t *testing.T) {
		testenv.RequireTool(t, "go")
		dir := t.TempDir()
		write := func(name, text string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("go.mod", "module weirhook\n\ngo 1.22\n")
		write("verify.go", docBlock(t, "In Go", "go"))
		var main strings.Builder
		main.WriteString("package weirhook\n\nimport (\n\t\"fmt\"\n\t\"testing\"\n\t\"time\"\n)\n\nfunc TestVerdicts(t *testing.T) {\n")
		for _, c := range cases {
			fmt.Fprintf(&main, "\tfmt.Print(Verify(%q, %q, %q, []byte(%q), time.Now()) == nil, \" \")\n", secret, c.timestamp, c.signature, c.body)
		}
		main.WriteString("\tfmt.Println()\n}\n")
		write("verify_test.go", main.String())
		cmd := exec.Command("go", "test", "-count=1", "-v", "./...")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go test of the snippet: %v\n%s", err, out)
		}
		line := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "true") || strings.HasPrefix(l, "false") {
				line = strings.NewReplacer("true", "1", "false", "0").Replace(l)
			}
		}
		checkVerdicts(t, cases, line)
	})
}

func pyBytes(b []byte) string {
	var s strings.Builder
	s.WriteString("b'")
	for _, c := range b {
		fmt.Fprintf(&s, "\\x%02x", c)
	}
	s.WriteString("'")
	return s.String()
}

func checkVerdicts(t *testing.T, cases []signedCase, out string) {
	t.Helper()
	got := strings.Fields(out)
	if len(got) != len(cases) {
		t.Fatalf("verdicts %q, want %d", out, len(cases))
	}
	for i, c := range cases {
		if (got[i] == "1") != c.ok {
			t.Errorf("%s: verdict %s, want ok %v", c.name, got[i], c.ok)
		}
	}
}
