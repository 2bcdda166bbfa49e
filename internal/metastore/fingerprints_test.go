package metastore

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
)

// runFingerprintContract is the fingerprint library's part of the Store
// contract.
func runFingerprintContract(t *testing.T, h harness) {
	ctx := context.Background()

	t.Run("FingerprintsCreateListGetDelete", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		if list, err := s.ListFingerprints(ctx); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("empty library: %v, %v (want an empty, non-nil list)", list, err)
		}
		// Items span the whole uint32 range, as Chromaprint's do.
		items := []uint32{0, 1, math.MaxUint32, 0x80000000, 3728641732, 12345}
		a, err := s.CreateFingerprint(ctx, Fingerprint{ID: "fp-a", Name: "station jingle", DurationMs: 10000, Items: items})
		if err != nil || a.CreatedAt.IsZero() {
			t.Fatalf("CreateFingerprint = %+v, %v", a, err)
		}
		b, err := s.CreateFingerprint(ctx, Fingerprint{ID: "fp-b", Name: "ad", DurationMs: 30000, Items: []uint32{7}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateFingerprint(ctx, Fingerprint{ID: "fp-a", Name: "again", DurationMs: 1, Items: items})
		wantErr(t, err, ErrExists, "fingerprint fp-a: already exists")
		got, err := s.GetFingerprint(ctx, "fp-a")
		if err != nil || got.Name != "station jingle" || got.DurationMs != 10000 || !slices.Equal(got.Items, items) || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("GetFingerprint = %+v, %v", got, err)
		}
		list, err := s.ListFingerprints(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "fp-a" || list[1].ID != "fp-b" || !slices.Equal(list[1].Items, b.Items) {
			t.Fatalf("ListFingerprints = %+v, %v", list, err)
		}
		if err := s.DeleteFingerprint(ctx, "fp-a"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, s.DeleteFingerprint(ctx, "fp-a"), ErrNotFound, "fingerprint fp-a: not found")
		_, err = s.GetFingerprint(ctx, "fp-a")
		wantErr(t, err, ErrNotFound, "fingerprint fp-a: not found")
		if list, _ := s.ListFingerprints(ctx); len(list) != 1 || list[0].ID != "fp-b" {
			t.Fatalf("after delete: %+v", list)
		}
	})

	t.Run("FingerprintsRefuseWhatIsMissing", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		for name, f := range map[string]Fingerprint{
			"no id":       {Name: "x", DurationMs: 1, Items: []uint32{1}},
			"no name":     {ID: "fp-x", DurationMs: 1, Items: []uint32{1}},
			"no items":    {ID: "fp-x", Name: "x", DurationMs: 1},
			"no duration": {ID: "fp-x", Name: "x", Items: []uint32{1}},
			"too long":    {ID: "fp-x", Name: "x", DurationMs: 1, Items: make([]uint32, MaxFingerprintItems+1)},
		} {
			if _, err := s.CreateFingerprint(ctx, f); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: got %v, want ErrInvalid", name, err)
			}
		}
	})
}
