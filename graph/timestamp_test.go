package graph

import (
	"slices"
	"testing"
)

func TestSpecialTimestampsAreOrderedLikeMediaPipe(t *testing.T) {
	order := []Timestamp{Unset, Unstarted, PreStream, Min, -1, 0, 1, Max, PostStream, OneOverPostStream, Done}
	if !slices.IsSorted(order) {
		t.Fatalf("special timestamps out of order: %v", order)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("%v should be below %v", order[i-1], order[i])
		}
	}
}

func TestTimestampPredicates(t *testing.T) {
	tests := []struct {
		ts                        Timestamp
		special, range_, inStream bool
		name                      string
	}{
		{Unset, true, false, false, "Unset"},
		{Unstarted, true, false, false, "Unstarted"},
		{PreStream, true, false, true, "PreStream"},
		{Min, false, true, true, "Min"},
		{0, false, true, true, "0"},
		{-42, false, true, true, "-42"},
		{Max, false, true, true, "Max"},
		{PostStream, true, false, true, "PostStream"},
		{OneOverPostStream, true, false, false, "OneOverPostStream"},
		{Done, true, false, false, "Done"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ts.IsSpecial(); got != tt.special {
				t.Errorf("IsSpecial = %v", got)
			}
			if got := tt.ts.IsRangeValue(); got != tt.range_ {
				t.Errorf("IsRangeValue = %v", got)
			}
			if got := tt.ts.IsAllowedInStream(); got != tt.inStream {
				t.Errorf("IsAllowedInStream = %v", got)
			}
			if got := tt.ts.String(); got != tt.name {
				t.Errorf("String = %q", got)
			}
		})
	}
}

func TestNextAndPreviousAllowedInStream(t *testing.T) {
	tests := []struct {
		ts, next, prev Timestamp
	}{
		{1, 2, 0},
		{-5, -4, -6},
		{Min, Min + 1, Unstarted},
		{Max, OneOverPostStream, Max - 1},
		{PreStream, OneOverPostStream, Unstarted},
		{PostStream, OneOverPostStream, Unstarted},
		// MediaPipe's Timestamp::PreviousAllowedInStream gives Max for
		// everything above Max.
		{OneOverPostStream, OneOverPostStream, Max},
		{Done, Done, Max},
	}
	for _, tt := range tests {
		if got := tt.ts.NextAllowedInStream(); got != tt.next {
			t.Errorf("%v.NextAllowedInStream() = %v, want %v", tt.ts, got, tt.next)
		}
		if got := tt.ts.PreviousAllowedInStream(); got != tt.prev {
			t.Errorf("%v.PreviousAllowedInStream() = %v, want %v", tt.ts, got, tt.prev)
		}
	}
}

func TestTimestampAddSaturatesInsideTheRange(t *testing.T) {
	tests := []struct {
		ts   Timestamp
		d    int64
		want Timestamp
	}{
		{10, 5, 15},
		{10, -20, -10},
		{Max - 1, 10, Max},
		{Min + 1, -10, Min},
		{PreStream, 10, PreStream},
		{PostStream, -10, PostStream},
		{Done, 1, Done},
	}
	for _, tt := range tests {
		if got := tt.ts.Add(tt.d); got != tt.want {
			t.Errorf("%v.Add(%d) = %v, want %v", tt.ts, tt.d, got, tt.want)
		}
	}
}

func TestPacketEmptinessAndTypedAccess(t *testing.T) {
	p := MakePacket("hello", 7)
	if p.IsEmpty() || p.Timestamp() != 7 {
		t.Fatalf("packet = %v", p)
	}
	if s, ok := As[string](p); !ok || s != "hello" {
		t.Errorf("As[string] = %q, %v", s, ok)
	}
	if _, ok := As[int](p); ok {
		t.Error("As[int] on a string packet should fail")
	}
	if q := p.At(9); q.Timestamp() != 9 || p.Timestamp() != 7 {
		t.Errorf("At must copy: %v %v", p, q)
	}
	if e := MakePacket(nil, 3); !e.IsEmpty() || e.String() != "Packet(empty @3)" {
		t.Errorf("nil value should make an empty packet: %v", e)
	}
}
