package engine

import (
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-media/weir/protocol"
)

func readChunk(t *testing.T, c *Chunk) (string, error) {
	t.Helper()
	r, err := c.Open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

func TestChunkOpenReadsEveryForm(t *testing.T) {
	bin := []byte{0xff, 0xd8, 0xff, 0x00, 'J', 'F', 'I', 'F'}
	path := filepath.Join(t.TempDir(), "chunk.bin")
	if err := os.WriteFile(path, []byte("from the file"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		chunk Chunk
		want  string
	}{
		{"text", Chunk{Meta: protocol.MediaChunk{Content: "hello"}}, "hello"},
		{"base64", Chunk{Meta: protocol.MediaChunk{Content: base64.StdEncoding.EncodeToString(bin), ContentEncoding: protocol.ContentBase64}}, string(bin)},
		{"file wins over content", Chunk{Meta: protocol.MediaChunk{Content: "aGVsbG8=", ContentEncoding: protocol.ContentBase64}, Path: path}, "from the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readChunk(t, &tc.chunk)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Open read %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChunkOpenRefusesBadBase64(t *testing.T) {
	c := &Chunk{Meta: protocol.MediaChunk{ChunkUUID: "c-1", Content: "not base64!", ContentEncoding: protocol.ContentBase64}}
	_, err := readChunk(t, c)
	if err == nil || !strings.Contains(err.Error(), "c-1") {
		t.Fatalf("Open of bad base64: err %v, want one naming the chunk", err)
	}
}
