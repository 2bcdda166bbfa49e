package engine

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/weir-media/weir/protocol"
)

// collector keeps what an Emitter hands over.
type collector struct {
	mu     sync.Mutex
	pieces []Piece
	bounds []int64
}

func (c *collector) emitter(opts ...EmitterOption) *Emitter {
	opts = append(opts, OnBound(func(ms int64) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.bounds = append(c.bounds, ms)
		return nil
	}))
	return NewEmitter(func(p Piece) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.pieces = append(c.pieces, p)
		return nil
	}, opts...)
}

func tagged(start, stop int64) *protocol.Document {
	return &protocol.Document{Series: []protocol.Series{{StartTimeMs: start, StopTimeMs: stop, Tags: []protocol.Tag{{Key: "k"}}}}}
}

func TestEmitterShiftsPiecesAndBoundsByTheOffset(t *testing.T) {
	var c collector
	e := c.emitter(WithOffset(10000))
	doc := tagged(100, 400)
	if err := e.Emit(0, 500, doc); err != nil {
		t.Fatal(err)
	}
	if err := e.Bound(2000); err != nil {
		t.Fatal(err)
	}
	if len(c.pieces) != 1 {
		t.Fatalf("pieces = %v", c.pieces)
	}
	p := c.pieces[0]
	if p.StartMs != 10000 || p.EndMs != 10500 || p.Doc.Series[0].StartTimeMs != 10100 || p.Doc.Series[0].StopTimeMs != 10400 {
		t.Errorf("piece = %d-%d series %+v", p.StartMs, p.EndMs, p.Doc.Series[0])
	}
	if doc.Series[0].StartTimeMs != 100 {
		t.Errorf("the engine's document was changed: %+v", doc.Series[0])
	}
	if !reflect.DeepEqual(c.bounds, []int64{10500, 12000}) {
		t.Errorf("bounds = %v", c.bounds)
	}
	if e.BoundMs() != 2000 {
		t.Errorf("BoundMs = %d", e.BoundMs())
	}
}

func TestEmitterRefusesOutputOutOfTimeOrder(t *testing.T) {
	tests := []struct {
		name         string
		start, end   int64
		doc          *protocol.Document
		says         string
		notErrTiming bool
	}{
		{"starts before the previous piece ended", 900, 1500, tagged(900, 1000), "starts before 1000 ms", false},
		{"ends before it starts", 2000, 1500, tagged(2000, 2000), "want 0 <= start <= end", false},
		{"negative start", -5, 1500, tagged(0, 10), "want 0 <= start <= end", false},
		{"series before the piece", 1000, 2000, tagged(900, 1500), "series[0] [900, 1500] is not within the piece", false},
		{"series after the piece", 1000, 2000, tagged(1500, 2500), "series[0] [1500, 2500]", false},
		{"series ending before it starts", 1000, 2000, tagged(1500, 1200), "series[0] [1500, 1200]", false},
		{"no document", 1000, 2000, nil, "nil document", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			e := c.emitter()
			if err := e.Emit(0, 1000, tagged(0, 1000)); err != nil {
				t.Fatal(err)
			}
			err := e.Emit(tt.start, tt.end, tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Emit = %v, want an error saying %q", err, tt.says)
			}
			if errors.Is(err, ErrTiming) == tt.notErrTiming {
				t.Errorf("errors.Is(%v, ErrTiming) = %v", err, !tt.notErrTiming)
			}
			if len(c.pieces) != 1 || e.BoundMs() != 1000 {
				t.Errorf("a refused piece reached the host or moved the bound: %d pieces, bound %d", len(c.pieces), e.BoundMs())
			}
		})
	}
}

func TestEmitterAllowsTouchingAndInstantPieces(t *testing.T) {
	var c collector
	e := c.emitter()
	for _, r := range [][2]int64{{0, 1000}, {1000, 1000}, {1000, 1000}, {1000, 3000}} {
		if err := e.Emit(r[0], r[1], tagged(r[0], r[1])); err != nil {
			t.Fatalf("Emit %v: %v", r, err)
		}
	}
	if len(c.pieces) != 4 || !reflect.DeepEqual(c.bounds, []int64{1000, 3000}) {
		t.Errorf("pieces %d, bounds %v", len(c.pieces), c.bounds)
	}
}

func TestBoundOnlyMovesForward(t *testing.T) {
	var c collector
	e := c.emitter()
	if err := e.Bound(500); err != nil {
		t.Fatal(err)
	}
	if err := e.Bound(500); err != nil {
		t.Fatalf("repeating the bound: %v", err)
	}
	if err := e.Bound(400); !errors.Is(err, ErrTiming) {
		t.Fatalf("moving the bound back = %v", err)
	}
	if err := e.Emit(100, 600, tagged(100, 600)); !errors.Is(err, ErrTiming) {
		t.Fatalf("a piece before the bound = %v", err)
	}
	if !reflect.DeepEqual(c.bounds, []int64{500}) {
		t.Errorf("bounds = %v", c.bounds)
	}
}

func TestEmitterReturnsTheHostsError(t *testing.T) {
	full := errors.New("results topic unavailable")
	e := NewEmitter(func(Piece) error { return full })
	if err := e.Emit(0, 10, tagged(0, 10)); !errors.Is(err, full) {
		t.Fatalf("Emit = %v", err)
	}
	if e.BoundMs() != 0 {
		t.Errorf("a piece the host refused moved the bound to %d", e.BoundMs())
	}
	gone := errors.New("heartbeat failed")
	e = NewEmitter(func(Piece) error { return nil }, OnBound(func(int64) error { return gone }))
	if err := e.Bound(10); !errors.Is(err, gone) {
		t.Fatalf("Bound = %v", err)
	}
}

func TestEmitterKeepsOneOrderAcrossGoroutines(t *testing.T) {
	var c collector
	e := c.emitter()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				at := int64(i*4+g) * 10
				e.Emit(at, at+10, tagged(at, at+10)) // some are refused: later pieces got in first
			}
		})
	}
	wg.Wait()
	for i := 1; i < len(c.pieces); i++ {
		if c.pieces[i].StartMs < c.pieces[i-1].EndMs {
			t.Fatalf("piece %d [%d, %d] overlaps the previous one [%d, %d]", i,
				c.pieces[i].StartMs, c.pieces[i].EndMs, c.pieces[i-1].StartMs, c.pieces[i-1].EndMs)
		}
	}
}

func TestShiftCopiesTheSeries(t *testing.T) {
	doc := &protocol.Document{Tags: []protocol.Tag{{Key: "file"}}, Series: []protocol.Series{{StartTimeMs: 0, StopTimeMs: 40}, {StartTimeMs: 40, StopTimeMs: 80}}}
	out := Shift(doc, 4000)
	if out.Series[0].StartTimeMs != 4000 || out.Series[1].StopTimeMs != 4080 || len(out.Tags) != 1 {
		t.Errorf("Shift = %+v", out)
	}
	if doc.Series[1].StopTimeMs != 80 {
		t.Errorf("input changed: %+v", doc.Series)
	}
	if Shift(nil, 5) != nil {
		t.Error("Shift(nil) is not nil")
	}
}
