package metastore

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
)

// runEngineContract is the external-engine part of the Store contract.
func runEngineContract(t *testing.T, h harness) {
	ctx := context.Background()

	t.Run("PutEngineCreatesThenReplaces", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		first := json.RawMessage(`{"name": "whisper", "engineMode": "chunk", "http": {"url": "http://127.0.0.1:8888"}}`)
		got, created, err := s.PutEngine(ctx, Engine{Name: "whisper", Manifest: first, Source: "api"})
		if err != nil || !created {
			t.Fatalf("PutEngine = %v, created %v", err, created)
		}
		if !jsonEqual(t, got.Manifest, first) || got.Source != "api" || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
			t.Fatalf("stored %+v", got)
		}
		second := json.RawMessage(`{"name": "whisper", "engineMode": "chunk", "kafka": {}}`)
		again, created, err := s.PutEngine(ctx, Engine{Name: "whisper", Manifest: second, Source: "file:/etc/weir/engines/whisper.yaml"})
		if err != nil || created {
			t.Fatalf("PutEngine again = %v, created %v", err, created)
		}
		if !jsonEqual(t, again.Manifest, second) || again.Source != "file:/etc/weir/engines/whisper.yaml" {
			t.Fatalf("replaced %+v", again)
		}
		if !again.CreatedAt.Equal(got.CreatedAt) || again.UpdatedAt.Before(got.UpdatedAt) {
			t.Fatalf("times: created %v then %v, updated %v then %v", got.CreatedAt, again.CreatedAt, got.UpdatedAt, again.UpdatedAt)
		}
		read, err := s.GetEngine(ctx, "whisper")
		if err != nil || !jsonEqual(t, read.Manifest, second) || !read.UpdatedAt.Equal(again.UpdatedAt) {
			t.Fatalf("GetEngine = %+v, %v", read, err)
		}
	})

	t.Run("ListEnginesSortsByNameAndDeleteRemoves", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		if none, err := s.ListEngines(ctx); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("ListEngines on an empty store = %v, %v", none, err)
		}
		for _, name := range []string{"ocr", "ab", "a-c", "b"} {
			if _, _, err := s.PutEngine(ctx, Engine{Name: name, Manifest: json.RawMessage(`{"name":"` + name + `"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListEngines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range list {
			names = append(names, e.Name)
		}
		if want := []string{"a-c", "ab", "b", "ocr"}; !equalStrings(names, want) {
			t.Fatalf("ListEngines = %v, want %v", names, want)
		}
		if err := s.DeleteEngine(ctx, "ab"); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetEngine(ctx, "ab")
		wantErr(t, err, ErrNotFound, "engine ab: not found")
		wantErr(t, s.DeleteEngine(ctx, "ab"), ErrNotFound, "engine ab: not found")
		if list, _ := s.ListEngines(ctx); len(list) != 3 {
			t.Fatalf("after delete: %v", list)
		}
	})

	t.Run("PutEngineRefusesWhatIsNotAManifest", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		for _, e := range []Engine{
			{Name: "", Manifest: json.RawMessage(`{}`)},
			{Name: "x"},
			{Name: "x", Manifest: json.RawMessage(`[1]`)},
			{Name: "x", Manifest: json.RawMessage(`{"name":`)},
		} {
			_, _, err := s.PutEngine(ctx, e)
			wantErr(t, err, ErrInvalid, "")
		}
		if list, _ := s.ListEngines(ctx); len(list) != 0 {
			t.Fatalf("a refused engine was stored: %v", list)
		}
	})

	t.Run("ConcurrentPutsCreateOnce", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		const writers = 6
		created := make([]bool, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				_, created[i], errs[i] = s.PutEngine(ctx, Engine{Name: "asr", Manifest: json.RawMessage(`{"name":"asr"}`)})
			})
		}
		wg.Wait()
		n := 0
		for i := range writers {
			if errs[i] != nil {
				t.Fatalf("writer %d: %v", i, errs[i])
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d writers created the engine, want 1", n)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
