package engines

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/results"
	"github.com/weir-media/weir/protocol"
)

// runChunkEngine runs the registered chunk engine name on one chunk, with
// opts parsed against its spec.
func runChunkEngine(t *testing.T, name string, c *engine.Chunk, opts map[string]any) (*protocol.Document, error) {
	t.Helper()
	reg, ok := engine.Default().Lookup(name)
	if !ok {
		t.Fatalf("engine %s is not registered", name)
	}
	o, err := reg.Spec.ParseOptions(opts)
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	eng, err := reg.Factory.(engine.ChunkFactory)()
	if err != nil {
		t.Fatal(err)
	}
	return eng.Process(context.Background(), c, o)
}

// routedChunk is a chunk a route makes of a parent's output: the document
// inline, the parent output's times.
func routedChunk(t *testing.T, outputType string, startMs, endMs int64, doc string) *engine.Chunk {
	t.Helper()
	return &engine.Chunk{Meta: protocol.MediaChunk{MimeType: engine.DocumentMimeType(outputType), StartOffsetMs: startMs, EndOffsetMs: endMs,
		Content: base64.StdEncoding.EncodeToString([]byte(doc)), ContentEncoding: protocol.ContentBase64, ChunkUUID: "c1"}}
}

// An utterance as stt writes it: the sentence series, then a series per
// word; times on the recording's timeline.
const sttUtterance = `{"series": [
  {"startTimeMs": 41040, "stopTimeMs": 42580, "tags": [{"key": "utterance", "value": "u8"}],
   "words": [{"word": "i would like a cup of coffee tomorrow morning", "confidence": 0.689, "bestPath": true, "utteranceLength": 9}]},
  {"startTimeMs": 41040, "stopTimeMs": 41210, "words": [{"word": "i", "confidence": 0.993, "bestPath": true}]},
  {"startTimeMs": 41740, "stopTimeMs": 41970, "words": [{"word": "cup", "confidence": 0.035, "bestPath": true}]}]}`

// TestKeywordsSpotsPhrasesInAnUtteranceAtItsTimes: whole words, any case,
// the utterance's times relative to the chunk; read back by
// results.Texts as keywords, which is what search and the console read.
func TestKeywordsSpotsPhrasesInAnUtteranceAtItsTimes(t *testing.T) {
	c := routedChunk(t, "transcript", 41040, 42580, sttUtterance)
	doc, err := runChunkEngine(t, "keywords", c, map[string]any{"keywords": []any{"Tomorrow  Morning", "coffee", "cup of tea", "of cof", "weather"}})
	if err != nil {
		t.Fatal(err)
	}
	if doc == nil || len(doc.Series) != 2 {
		t.Fatalf("want 2 keyword series, got %+v", doc)
	}
	for i, want := range []string{"tomorrow morning", "coffee"} {
		s := doc.Series[i]
		if s.StartTimeMs != 0 || s.StopTimeMs != 1540 {
			t.Errorf("%q at %d..%d, want the utterance's 0..1540 (relative to the chunk)", want, s.StartTimeMs, s.StopTimeMs)
		}
		if s.Object == nil || s.Object.Type != "keyword" || s.Object.Label != want || s.Object.Text != want ||
			len(s.Words) != 1 || s.Words[0].Word != want || s.Words[0].UtteranceLength != int64(len(strings.Fields(want))) {
			t.Errorf("series %d: %+v, object %+v", i, s, s.Object)
		}
	}
	// Moved onto the recording's timeline as a host does, it reads as two
	// keywords at the utterance's times.
	for i := range doc.Series {
		doc.Series[i].StartTimeMs += 41040
		doc.Series[i].StopTimeMs += 41040
	}
	texts := results.Texts(doc)
	if len(texts) != 2 || texts[0].Kind != results.KindKeyword || texts[0].StartMs != 41040 || texts[0].EndMs != 42580 || texts[0].Text != "tomorrow morning" {
		t.Fatalf("results.Texts: %+v", texts)
	}
}

// TestKeywordsReadsLinesOnScreenAndFindsNothingElsewhere: an OCR line is
// a text too; a document without a phrase, or without text, answers
// nothing found.
func TestKeywordsReadsLinesOnScreenAndFindsNothingElsewhere(t *testing.T) {
	line := `{"series":[{"startTimeMs":6000,"stopTimeMs":6000,"object":{"type":"text","text":"LIGHTHOUSE, tonight!"}}]}`
	doc, err := runChunkEngine(t, "keywords", routedChunk(t, "text", 6000, 6000, line), map[string]any{"keywords": []any{"lighthouse"}})
	if err != nil || doc == nil || len(doc.Series) != 1 || doc.Series[0].StartTimeMs != 0 || doc.Series[0].StopTimeMs != 0 ||
		doc.Series[0].Tags[0].Value != results.KindScreen {
		t.Fatalf("on-screen line: %+v, %v", doc, err)
	}
	for _, body := range []string{line, `{"series":[{"startTimeMs":1,"stopTimeMs":2,"tags":[{"key":"silence"}]}]}`, `{}`} {
		doc, err := runChunkEngine(t, "keywords", routedChunk(t, "text", 0, 10, body), map[string]any{"keywords": []any{"harbour"}})
		if err != nil || doc != nil {
			t.Errorf("%s: want nothing found, got %+v, %v", body, doc, err)
		}
	}
}

// TestKeywordsRefusesBadInput: a chunk that is not a document is ignored;
// a malformed document or keywords without a word fail naming why.
func TestKeywordsRefusesBadInput(t *testing.T) {
	media := &engine.Chunk{Meta: protocol.MediaChunk{MimeType: "video/mp2t", EndOffsetMs: 1000, Content: "x"}}
	if _, err := runChunkEngine(t, "keywords", media, map[string]any{"keywords": []any{"a"}}); !errors.Is(err, engine.ErrIgnored) {
		t.Errorf("a media chunk: %v, want ErrIgnored", err)
	}
	if _, err := runChunkEngine(t, "keywords", routedChunk(t, "transcript", 0, 1, `{"series": 3}`), map[string]any{"keywords": []any{"a"}}); err == nil ||
		!strings.Contains(err.Error(), "not a vtn-standard document") {
		t.Errorf("a malformed document: %v", err)
	}
	if _, err := runChunkEngine(t, "keywords", routedChunk(t, "transcript", 0, 1, `{}`), map[string]any{"keywords": []any{"ok", "?!"}}); err == nil ||
		!strings.Contains(err.Error(), `keywords[1]: "?!" has no word`) {
		t.Errorf("a keyword without a word: %v", err)
	}
	reg, _ := engine.Default().Lookup("keywords")
	if _, err := reg.Spec.ParseOptions(nil); err == nil {
		t.Error("keywords is required, but no options parsed")
	}
}

// FuzzKeywords: any document and phrase list is answered or refused,
// never a panic, and every series found lies within the chunk.
func FuzzKeywords(f *testing.F) {
	f.Add(sttUtterance, "coffee", int64(41040), int64(1540))
	f.Add(`{"series":[{"startTimeMs":6000,"stopTimeMs":6000,"object":{"type":"text","text":"LIGHTHOUSE"}}]}`, "lighthouse", int64(6000), int64(0))
	f.Add(`{"series":[{"startTimeMs":-5,"stopTimeMs":99999,"words":[{"word":"a b"}]}]}`, "a b", int64(0), int64(10))
	f.Fuzz(func(t *testing.T, body, phrase string, start, dur int64) {
		if start < 0 || dur < 0 || start > 1<<40 || dur > 1<<40 {
			return
		}
		var doc protocol.Document
		if json.Unmarshal([]byte(body), &doc) != nil {
			return
		}
		phrases, err := keyPhrases([]string{phrase})
		if err != nil {
			return
		}
		out := spotKeywords(&doc, phrases, start, dur)
		if out == nil {
			return
		}
		for _, s := range out.Series {
			if s.StartTimeMs < 0 || s.StopTimeMs < s.StartTimeMs || s.StopTimeMs > dur {
				t.Fatalf("series %d..%d outside the chunk 0..%d", s.StartTimeMs, s.StopTimeMs, dur)
			}
		}
	})
}

// TestOCRFrameReadsTheTextOfAStillFrame: a JPEG frame with a drawn line,
// as a chunk routed from a scene change (an instant), is read as one line
// of type text with its words and box.
func TestOCRFrameReadsTheTextOfAStillFrame(t *testing.T) {
	jpg := makeMediaTB(t, "frame.jpg", "-f", "lavfi", "-i", "color=c=0x203040:s=1280x720:d=1",
		"-vf", "drawtext=fontfile="+fontDir+"DejaVuSans.ttf:text='Lighthouse keepers meet':fontsize=56:fontcolor=white:x=200:y=300",
		"-frames:v", "1", "-q:v", "2")
	data, err := os.ReadFile(jpg)
	if err != nil {
		t.Fatal(err)
	}
	c := &engine.Chunk{Path: jpg, Meta: protocol.MediaChunk{MimeType: "image/jpeg", StartOffsetMs: 7040, EndOffsetMs: 7040, ChunkUUID: "f1"}}
	doc, err := runChunkEngine(t, "ocr-frame", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if doc == nil || len(doc.Series) != 1 {
		t.Fatalf("want one line, got %+v", doc)
	}
	s := doc.Series[0]
	if s.StartTimeMs != 0 || s.StopTimeMs != 0 || s.Object == nil || s.Object.Type != "text" ||
		!strings.EqualFold(s.Object.Text, "Lighthouse keepers meet") || len(s.Words) != 3 || len(s.Object.BoundingPoly) != 4 {
		t.Fatalf("line: %+v object %+v", s, s.Object)
	}
	if x := s.Object.BoundingPoly[0].X; x < 0.1 || x > 0.2 {
		t.Errorf("the line's box starts at x=%g, drawn at 200/1280", x)
	}
	// The same picture inline, as a small routed frame travels.
	inline := &engine.Chunk{Meta: protocol.MediaChunk{MimeType: "image/jpeg", Content: base64.StdEncoding.EncodeToString(data),
		ContentEncoding: protocol.ContentBase64, StartOffsetMs: 1000, EndOffsetMs: 2000}}
	if doc, err := runChunkEngine(t, "ocr-frame", inline, map[string]any{"psm": 11}); err != nil || doc == nil || doc.Series[0].StopTimeMs != 1000 {
		t.Fatalf("inline: %+v, %v", doc, err)
	}
	// Not a picture: ignored, with the reason.
	bad := &engine.Chunk{Meta: protocol.MediaChunk{MimeType: "image/jpeg", Content: "not a picture", EndOffsetMs: 1}}
	if _, err := runChunkEngine(t, "ocr-frame", bad, nil); !errors.Is(err, engine.ErrIgnored) || !strings.Contains(err.Error(), "not a JPEG or PNG") {
		t.Fatalf("garbage: %v", err)
	}
}

// FuzzDecodeFrame: any bytes are decoded into a frame or refused, never a
// panic or a frame larger than the limit.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte("\xff\xd8\xff\xe0"))
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			return
		}
		if fr.width*fr.height > maxFramePixels || len(fr.pgm) < fr.width*fr.height {
			t.Fatalf("frame %dx%d with %d bytes", fr.width, fr.height, len(fr.pgm))
		}
	})
}
