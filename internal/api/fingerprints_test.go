package api

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// fingerprintClip writes seconds of a melody as WAV and returns its bytes.
func fingerprintClip(t *testing.T, seconds string) []byte {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg", "fpcalc")
	out := filepath.Join(t.TempDir(), "clip.wav")
	expr := "aevalsrc='0.3*sin(2*PI*523.25*pow(2,mod(floor(t*4)*floor(t*4)*7+floor(t*4)*3,17)/12)*t)':s=44100:d=" + seconds
	if b, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", expr, out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fingerprintForm is a POST /fingerprints body: a name (skipped when
// empty) and a file part.
func fingerprintForm(t *testing.T, name, filename string, data []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if name != "" {
		if err := mw.WriteField("name", name); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestFingerprintLibraryAddListGetDelete(t *testing.T) {
	e := newEnv(t, "")
	body, ct := fingerprintForm(t, "station jingle", "jingle.wav", fingerprintClip(t, "10"))
	rec := e.do("POST", "/fingerprints", body, "Content-Type", ct)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	fp := decode[FingerprintInfo](t, rec)
	if !strings.HasPrefix(fp.ID, "fp-") || fp.Name != "station jingle" || fp.DurationMs < 9950 || fp.DurationMs > 10050 ||
		fp.Items < 50 || fp.CreatedAt.IsZero() || len(fp.Fingerprint) != 0 || rec.Header().Get("Location") != "/fingerprints/"+fp.ID {
		t.Fatalf("created %+v, Location %q", fp, rec.Header().Get("Location"))
	}
	// Without a name, the file's name is the reference's.
	body, ct = fingerprintForm(t, "", "Morning Show Intro.wav", fingerprintClip(t, "6"))
	rec = e.do("POST", "/fingerprints", body, "Content-Type", ct)
	if rec.Code != http.StatusCreated || decode[FingerprintInfo](t, rec).Name != "Morning Show Intro" {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}

	list := decode[FingerprintList](t, e.do("GET", "/fingerprints", nil))
	if len(list.Items) != 2 || list.Items[0].ID != fp.ID || list.Items[1].Name != "Morning Show Intro" || len(list.Items[0].Fingerprint) != 0 {
		t.Fatalf("list %+v", list)
	}
	rec = e.do("GET", "/fingerprints/"+fp.ID, nil)
	got := decode[FingerprintInfo](t, rec)
	if rec.Code != http.StatusOK || got.Name != fp.Name || len(got.Fingerprint) != fp.Items {
		t.Fatalf("get: status %d, %+v", rec.Code, got)
	}
	stored, err := e.meta.GetFingerprint(t.Context(), fp.ID)
	if err != nil || len(stored.Items) != fp.Items {
		t.Fatalf("stored %+v, %v", stored, err)
	}

	if rec := e.do("DELETE", "/fingerprints/"+fp.ID, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: status %d: %s", rec.Code, rec.Body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		rec := e.do(m, "/fingerprints/"+fp.ID, nil)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "fingerprint "+fp.ID+" not found") {
			t.Errorf("%s after delete: status %d: %s", m, rec.Code, rec.Body)
		}
	}
}

func TestFingerprintLibraryRefusesBadClips(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name   string
		data   []byte
		status int
		says   string
	}{
		{"text", []byte(strings.Repeat("this is not a clip ", 500)), http.StatusUnprocessableEntity, "not a usable audio clip"},
		{"too short", fingerprintClip(t, "2"), http.StatusUnprocessableEntity, "too short"},
		{"empty", nil, http.StatusUnprocessableEntity, "body.file"},
		{"too large", make([]byte, MaxFingerprintClipBytes+1), http.StatusRequestEntityTooLarge, "larger than this server's limit"},
	}
	for _, c := range cases {
		body, ct := fingerprintForm(t, "x", "clip.wav", c.data)
		rec := e.do("POST", "/fingerprints", body, "Content-Type", ct)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.says) {
			t.Errorf("%s: status %d %s, want %d saying %q", c.name, rec.Code, rec.Body, c.status, c.says)
		}
	}
	rec := e.do("POST", "/fingerprints", strings.NewReader(`{"name": "x"}`), "Content-Type", "application/json")
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: status %d: %s", rec.Code, rec.Body)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("name", "no file")
	mw.Close()
	rec = e.do("POST", "/fingerprints", &buf, "Content-Type", mw.FormDataContentType())
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `part named \"file\"`) {
		t.Errorf("no file: status %d: %s", rec.Code, rec.Body)
	}
	if list := decode[FingerprintList](t, e.do("GET", "/fingerprints", nil)); len(list.Items) != 0 {
		t.Errorf("refused clips were stored: %+v", list)
	}
}

func TestFingerprintLibraryNeedsTheToken(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.APIToken = "s3cret" })
	body, ct := fingerprintForm(t, "x", "clip.wav", []byte("x"))
	if rec := e.do("POST", "/fingerprints", body, "Content-Type", ct); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST without the token: status %d", rec.Code)
	}
	if rec := e.do("DELETE", "/fingerprints/fp-000000000000", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("DELETE without the token: status %d", rec.Code)
	}
	if rec := e.do("GET", "/fingerprints", nil); rec.Code != http.StatusOK {
		t.Errorf("GET stays open: status %d", rec.Code)
	}
}

func TestFingerprintRoutesAreInTheOpenAPIDocument(t *testing.T) {
	e := newEnv(t, "")
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(e.do("GET", "/openapi.json", nil).Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for path, methods := range map[string][]string{"/fingerprints": {"get", "post"}, "/fingerprints/{id}": {"get", "delete"}} {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("OpenAPI lacks %s %s", strings.ToUpper(m), path)
			}
		}
	}
	if !strings.Contains(string(doc.Paths["/fingerprints"]["post"]), "multipart/form-data") {
		t.Errorf("POST /fingerprints does not describe its multipart body")
	}
}
