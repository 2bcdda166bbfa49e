package live

import (
	"bytes"
	"context"
	"testing"
)

// objectMatches finds the first byte at which an object read back differs
// from what was written, an object cut short, or one that runs on.
func TestObjectMatchesFindsTheFirstDifference(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 20000) // 200,000 bytes: several reads
	flip := bytes.Clone(data)
	flip[150001] ^= 1
	for _, tc := range []struct {
		name   string
		stored []byte
		diff   int64
	}{
		{"identical", data, -1},
		{"one bit flipped", flip, 150001},
		{"cut short", data[:len(data)-1], int64(len(data) - 1)},
		{"runs on", append(bytes.Clone(data), 'x'), int64(len(data))},
		{"empty", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			ctx := context.Background()
			if _, err := st.Put(ctx, "k", bytes.NewReader(tc.stored), int64(len(tc.stored)), contentTypeTS); err != nil {
				t.Fatal(err)
			}
			n, diff, err := objectMatches(ctx, st, "k", data)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(tc.stored)) || diff != tc.diff {
				t.Errorf("objectMatches = size %d, first difference %d; want %d, %d", n, diff, len(tc.stored), tc.diff)
			}
		})
	}
}
