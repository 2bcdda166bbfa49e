package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-media/weir/protocol"
)

// messiFace is where messi5.jpg's face is, as fractions of the frame
// (x0, y0, x1, y1): found once with the engine's defaults and checked by
// eye.
var messiFace = [4]float64{0.445, 0.181, 0.600, 0.430}

// startFaces starts faces_engine.py on a free port and returns its base
// URL once GET /ready answers 200.
func startFaces(t *testing.T) string {
	t.Helper()
	python := requirePython(t, "cv2", "numpy")
	addr := make(chan string, 1)
	p := startEngine(t, nil, func(line string) {
		if _, u, ok := strings.Cut(line, "listening on "); ok {
			select {
			case addr <- u:
			default:
			}
		}
	}, python, filepath.Join("faces-http", "faces_engine.py"), "--listen", "127.0.0.1:0")
	var base string
	select {
	case base = <-addr:
	case <-p.done:
		t.Fatalf("faces_engine.py exited before listening: %v\n%s", p.err, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("faces_engine.py did not say where it listens within 30 s:\n%s", p.output())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/ready: not 200 within 30 s (last: %v %v)", base, resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// toolkitRequest builds a Veritone engine toolkit /process request: the
// chunk in field "chunk" and its metadata in the other fields.
func toolkitRequest(t *testing.T, chunk []byte, fields map[string]string) (string, []byte) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, name := range []string{"chunkMimeType", "startOffsetMS", "endOffsetMS", "width", "height",
		"chunkIndex", "chunkUUID", "taskId", "jobId", "payload"} {
		if v, ok := fields[name]; ok {
			if err := w.WriteField(name, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if chunk != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="chunk"; filename="chunk"`)
		h.Set("Content-Type", fields["chunkMimeType"])
		part, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		part.Write(chunk)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), body.Bytes()
}

func post(t *testing.T, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", url, err)
	}
	return resp.StatusCode, b
}

func frameFields(start, end int64, payload string) map[string]string {
	return map[string]string{
		"chunkMimeType": "image/jpeg", "startOffsetMS": strconv.FormatInt(start, 10),
		"endOffsetMS": strconv.FormatInt(end, 10), "width": "548", "height": "342",
		"chunkIndex": "7", "chunkUUID": "9a4c2e1b-0000-4000-8000-000000000007",
		"taskId": "job-test-faces", "jobId": "job-test", "payload": payload,
	}
}

// processDoc posts a /process request and decodes and validates its
// answer, which must be 200, as a vtn-standard document.
func processDoc(t *testing.T, base, contentType string, req []byte) *protocol.Document {
	t.Helper()
	status, body := post(t, base+"/process", contentType, req)
	if status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", status, body)
	}
	var doc protocol.Document
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("answer is not a vtn-standard document: %v: %s", err, body)
	}
	if err := doc.Validate(); err != nil {
		t.Fatalf("answer: %v: %s", err, body)
	}
	return &doc
}

func overlap(a, b [4]float64) float64 {
	w := min(a[2], b[2]) - max(a[0], b[0])
	h := min(a[3], b[3]) - max(a[1], b[1])
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	return inter / ((a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter)
}

func TestFacesHTTPEngineFindsMessisFace(t *testing.T) {
	messi := opencvSample(t, "messi5.jpg")
	// A frame of messi5.jpg looped into a clip, as weir's chunker would cut it.
	frame := frameAt(t, messi, 1500*time.Millisecond, "-loop", "1", "-t", "3")
	frame = frameAt(t, writeTemp(t, "messi.jpg", frame), 0) // re-encoded once more: a frame, not the original file
	base := startFaces(t)

	ct, body := toolkitRequest(t, frame, frameFields(61000, 62000, `{"min_neighbors": 5}`))
	doc := processDoc(t, base, ct, body)
	best := 0.0
	for i, s := range doc.Series {
		what := fmt.Sprintf("series[%d]", i)
		if s.StartTimeMs != 0 || s.StopTimeMs != 1000 {
			t.Errorf("%s: %d..%d ms, want 0..1000 (relative to the chunk's start)", what, s.StartTimeMs, s.StopTimeMs)
		}
		if s.Object == nil || s.Object.Type != "face" || s.Object.Label != "face" {
			t.Errorf("%s: object %+v, want a face", what, s.Object)
			continue
		}
		x0, y0, x1, y1 := checkPoly(t, what, s.Object.BoundingPoly)
		best = max(best, overlap([4]float64{x0, y0, x1, y1}, messiFace))
	}
	if len(doc.Series) == 0 || best < 0.5 {
		t.Errorf("found %d faces, the best overlapping messi's face (%v) by %.2f (IoU), want at least 0.5:\n%+v",
			len(doc.Series), messiFace, best, doc.Series)
	}

	t.Run("options from the payload are applied", func(t *testing.T) {
		ct, body := toolkitRequest(t, frame, frameFields(0, 100, `{"min_size": 300}`))
		if doc := processDoc(t, base, ct, body); len(doc.Series) != 0 {
			t.Errorf("min_size 300 in a 548x342 frame: %d faces, want none", len(doc.Series))
		}
	})

	t.Run("a chunked request body", func(t *testing.T) {
		ct, body := toolkitRequest(t, frame, frameFields(61000, 62000, ""))
		// A reader of unknown length makes net/http send the body chunked,
		// as a client streaming a large chunk would.
		resp, err := http.Post(base+"/process", ct, io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var d protocol.Document
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &d) != nil || len(d.Series) != len(doc.Series) {
			t.Errorf("chunked request: status %d %s, want 200 with %d faces", resp.StatusCode, b, len(doc.Series))
		}
	})

	t.Run("concurrent requests get the same answer", func(t *testing.T) {
		ct, body := toolkitRequest(t, frame, frameFields(61000, 62000, ""))
		var wg sync.WaitGroup
		answers := make([]int, 4)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(base+"/process", ct, bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var d protocol.Document
				if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&d) != nil {
					t.Errorf("concurrent request %d: status %d", i, resp.StatusCode)
				}
				answers[i] = len(d.Series)
			}()
		}
		wg.Wait()
		for i, n := range answers {
			if n != len(doc.Series) {
				t.Errorf("concurrent request %d found %d faces, the single one %d", i, n, len(doc.Series))
			}
		}
	})
}

func TestFacesHTTPEngineIgnoresWhatItDoesNotReadAndRefusesMalformedRequests(t *testing.T) {
	base := startFaces(t)
	png := []byte("\x89PNG\r\n\x1a\nnot really")
	jpeg := frameAt(t, opencvSample(t, "messi5.jpg"), 0)

	for _, c := range []struct {
		name, mime string
		chunk      []byte
	}{{"png", "image/png", png}, {"text", "text/plain", []byte("caption")}, {"wav", "audio/wav", []byte("RIFF")}} {
		fields := frameFields(0, 40, "")
		fields["chunkMimeType"] = c.mime
		ct, body := toolkitRequest(t, c.chunk, fields)
		if status, b := post(t, base+"/process", ct, body); status != http.StatusNoContent || len(b) != 0 {
			t.Errorf("%s chunk: status %d %q, want 204 and no body", c.name, status, b)
		}
	}

	noChunk := func() (string, []byte) { return toolkitRequest(t, nil, frameFields(0, 40, "")) }
	badPayload := func() (string, []byte) { return toolkitRequest(t, jpeg, frameFields(0, 40, `{"min_size": `)) }
	arrayPayload := func() (string, []byte) { return toolkitRequest(t, jpeg, frameFields(0, 40, `[5]`)) }
	badOption := func() (string, []byte) {
		return toolkitRequest(t, jpeg, frameFields(0, 40, `{"scale_factor": "1.2"}`))
	}
	badOffset := func() (string, []byte) {
		f := frameFields(0, 40, "")
		f["startOffsetMS"] = "soon"
		return toolkitRequest(t, jpeg, f)
	}
	backwards := func() (string, []byte) { return toolkitRequest(t, jpeg, frameFields(500, 100, "")) }
	notJPEG := func() (string, []byte) { return toolkitRequest(t, []byte("no image here"), frameFields(0, 40, "")) }
	// A 45-megapixel frame in a few hundred KiB: over the engine's limit.
	huge := func() (string, []byte) {
		return toolkitRequest(t, frameAt(t, "color=c=gray:s=9000x5000", 0, "-f", "lavfi"), frameFields(0, 40, ""))
	}
	raw := func(ct, body string) func() (string, []byte) {
		return func() (string, []byte) { return ct, []byte(body) }
	}
	for _, c := range []struct {
		name  string
		req   func() (string, []byte)
		wants string
	}{
		{"no chunk field", noChunk, "field chunk"},
		{"payload not JSON", badPayload, "payload"},
		{"payload not an object", arrayPayload, "payload"},
		{"option of the wrong type", badOption, "scale_factor"},
		{"offset not a number", badOffset, "startOffsetMS"},
		{"offsets backwards", backwards, "endOffsetMS"},
		{"chunk not a JPEG", notJPEG, "not a decodable"},
		{"chunk of 45 megapixels", huge, "MAX_IMAGE_PIXELS"},
		{"JSON body", raw("application/json", `{"chunk": "x"}`), "multipart/form-data"},
		{"multipart without boundary", raw("multipart/form-data", "--x\r\n\r\n"), "multipart"},
		{"multipart garbage", raw("multipart/form-data; boundary=zz", "garbage"), "multipart"},
	} {
		ct, body := c.req()
		status, b := post(t, base+"/process", ct, body)
		var answer struct{ Error string }
		if status != http.StatusBadRequest || json.Unmarshal(b, &answer) != nil || !strings.Contains(answer.Error, c.wants) {
			t.Errorf("%s: status %d %s, want 400 with an error naming %q", c.name, status, b, c.wants)
		}
	}

	// The engine is still well after all that.
	ct, body := toolkitRequest(t, jpeg, frameFields(0, 40, ""))
	if doc := processDoc(t, base, ct, body); len(doc.Series) == 0 {
		t.Errorf("after the bad requests, messi5.jpg has no face")
	}
	if resp, err := http.Get(base + "/process"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /process: %v %v, want 405", resp, err)
	}
	if resp, err := http.Get(base + "/nope"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %v %v, want 404", resp, err)
	}
}
