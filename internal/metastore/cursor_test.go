package metastore

import (
	"errors"
	"testing"
	"time"
)

func TestCursorRoundTrips(t *testing.T) {
	cases := []pageCursor{
		{time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "vod-1"},
		{time.UnixMicro(0).UTC(), "a,b,c"},
		{time.UnixMicro(-1).UTC(), "ünïcode id"},
	}
	for _, c := range cases {
		got, err := decodeCursor(encodeCursor(c))
		if err != nil || !got.createdAt.Equal(c.createdAt) || got.id != c.id {
			t.Errorf("round trip of %+v gave %+v, %v", c, got, err)
		}
	}
}

func TestDecodeCursorRejectsForeignTokens(t *testing.T) {
	for _, token := range []string{"", "!!", "bm8tY29tbWE", "LHgK", "MTIzLA", "YWJjLGlk"} {
		if _, err := decodeCursor(token); !errors.Is(err, ErrInvalid) {
			t.Errorf("decodeCursor(%q) = %v, want ErrInvalid", token, err)
		}
	}
}

func TestPageSizeDefaultsAndCaps(t *testing.T) {
	for in, want := range map[int]int{-5: 50, 0: 50, 1: 1, 50: 50, 999: 999, 1000: 1000, 1001: 1000, 1 << 30: 1000} {
		if got := pageSize(in); got != want {
			t.Errorf("pageSize(%d) = %d, want %d", in, got, want)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(pageCursor{time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), "vod-1"}))
	f.Add("MTIzLA")
	f.Add("")
	f.Add("LTkyMjMzNzIwMzY4NTQ3NzU4MDgsaWQ")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := decodeCursor(token)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("decodeCursor(%q) error %v is not ErrInvalid", token, err)
			}
			return
		}
		if c.id == "" {
			t.Fatalf("decodeCursor(%q) accepted an empty id", token)
		}
		again, err := decodeCursor(encodeCursor(c))
		if err != nil || !again.createdAt.Equal(c.createdAt) || again.id != c.id {
			t.Fatalf("re-encoding %+v gave %+v, %v", c, again, err)
		}
	})
}

func FuzzDecodeResultCursor(f *testing.F) {
	f.Add(encodeResultCursor(Result{StartMs: 1500, EndMs: 2500, Engine: "people", ChunkUUID: "0b1c-uuid"}))
	f.Add("e30")
	f.Add("")
	f.Add("W10")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := decodeResultCursor(token)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("decodeResultCursor(%q) error %v is not ErrInvalid", token, err)
			}
			return
		}
		if c.Engine == "" || c.ChunkUUID == "" {
			t.Fatalf("decodeResultCursor(%q) accepted %+v", token, c)
		}
		again, err := decodeResultCursor(encodeResultCursor(Result{StartMs: c.StartMs, EndMs: c.EndMs, Engine: c.Engine, ChunkUUID: c.ChunkUUID}))
		if err != nil || again != c {
			t.Fatalf("re-encoding %+v gave %+v, %v", c, again, err)
		}
	})
}
