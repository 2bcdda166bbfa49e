package engine

import "testing"

// TestDocumentMimeTypes: a routed document's MIME type names its output
// type and reads back; a spec lists the outputs it reads and accepts
// their chunks.
func TestDocumentMimeTypes(t *testing.T) {
	if got := DocumentMimeType("transcript"); got != "application/vnd.vtn.transcript+json" {
		t.Fatalf("DocumentMimeType: %s", got)
	}
	for in, want := range map[string]string{
		"application/vnd.vtn.transcript+json": "transcript", " Application/VND.vtn.Text+JSON ": "text",
		"application/vnd.vtn.+json": "", "application/json": "", "application/vnd.vtn.a b+json": "", "video/mp4": "",
	} {
		if got, ok := DocumentOutputType(in); got != want || ok != (want != "") {
			t.Errorf("DocumentOutputType(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	s := Spec{Inputs: []string{"image/*", DocumentMimeType("transcript"), DocumentMimeType("text")}}
	if got := s.ReadsOutputs(); len(got) != 2 || got[0] != "transcript" || got[1] != "text" {
		t.Fatalf("ReadsOutputs: %v", got)
	}
	if !s.Accepts(DocumentMimeType("text")) || s.Accepts(DocumentMimeType("tag")) {
		t.Fatal("Accepts of a routed document")
	}
}
