package protocol

import (
	"os"
	"path/filepath"
	"testing"
)

func benchDecode(b *testing.B, key, file string) {
	value, err := os.ReadFile(filepath.Join("testdata", "golden", file))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode([]byte(key), value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRawStream(b *testing.B) { benchDecode(b, "raw_stream", "raw_stream.bin") }
func BenchmarkDecodeMediaChunk(b *testing.B) {
	benchDecode(b, "t", "media_chunk_cache.json")
}
func BenchmarkDecodeEngineOutput(b *testing.B) {
	benchDecode(b, "t", "engine_output_transcript.json")
}

func BenchmarkStreamReaderRaw(b *testing.B) {
	data := make([]byte, DefaultChunkSize)
	var r StreamReader
	r.Check(&StreamInit{ChunkSize: DefaultChunkSize})
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := r.Next([]byte("raw_stream"), data); err != nil {
			b.Fatal(err)
		}
	}
}
