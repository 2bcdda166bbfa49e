package metastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness tells the contract suite how to reach one backend.
type harness struct {
	// fresh returns the location (an Open URL) of a new, empty database.
	fresh func(t *testing.T) string
}

// open opens a store at loc and closes it when the test ends.
func (h harness) open(t *testing.T, loc string) Store {
	t.Helper()
	s, err := Open(context.Background(), loc)
	if err != nil {
		t.Fatalf("open %s: %v", loc, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// store opens a store on a fresh database.
func (h harness) store(t *testing.T) Store { return h.open(t, h.fresh(t)) }

// backendOf reaches the shared implementation behind a Store.
func backendOf(t *testing.T, s Store) *sqlStore {
	t.Helper()
	switch v := s.(type) {
	case *SQLite:
		return &v.sqlStore
	case *Postgres:
		return &v.sqlStore
	}
	t.Fatalf("unknown store type %T", s)
	return nil
}

type ledgerRow struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// ledger reads schema_migrations.
func ledger(t *testing.T, s Store) []ledgerRow {
	t.Helper()
	st := backendOf(t, s)
	rows, err := st.b.reader().query(context.Background(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []ledgerRow
	for rows.Next() {
		var r ledgerRow
		if err := rows.Scan(&r.Version, &r.Name, timeCol{&r.AppliedAt}); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonEqual(t *testing.T, got, want json.RawMessage) bool {
	t.Helper()
	if len(got) == 0 || len(want) == 0 {
		return len(got) == len(want)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("expected JSON %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// sameStream compares streams, JSON semantically.
func sameStream(t *testing.T, got, want Stream) {
	t.Helper()
	if !jsonEqual(t, got.Details, want.Details) {
		t.Errorf("stream %s details = %s, want %s", want.ID, got.Details, want.Details)
	}
	got.Details, want.Details = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stream %s:\n got %+v\nwant %+v", want.ID, got, want)
	}
}

func mustCreate(t *testing.T, s Store, st Stream) Stream {
	t.Helper()
	out, err := s.CreateStream(context.Background(), st)
	if err != nil {
		t.Fatalf("create stream %s: %v", st.ID, err)
	}
	return out
}

func wantErr(t *testing.T, err, target error, msg string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("error message = %q, want %q", err.Error(), msg)
	}
}

// runContract is the behaviour every Store implementation must show.
func runContract(t *testing.T, h harness) {
	runLeaseContract(t, h)
	runEngineContract(t, h)
	runFingerprintContract(t, h)
	runResultsContract(t, h)
	runSearchContract(t, h)
	runJobFilterContract(t, h)
	runWindowsContract(t, h)
	runAlertsContract(t, h)
	ctx := context.Background()
	base := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

	t.Run("CreateGetAndDuplicates", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		created := mustCreate(t, s, Stream{
			ID: "vod-1", Kind: KindVOD, Title: "Talk", SourceKey: "uploads/vod-1.mp4",
			Details:           json.RawMessage(`{"probe": {"width": 1920, "codec": "h264"}}`),
			VariantsGenerated: []string{"720p"},
			CreatedAt:         base,
		})
		if created.Version != 1 || created.Status != StatusUploaded {
			t.Fatalf("created version %d status %s, want 1 uploaded", created.Version, created.Status)
		}
		wantAt := base.UTC().Truncate(time.Microsecond)
		if !created.CreatedAt.Equal(wantAt) || created.CreatedAt.Location() != time.UTC {
			t.Fatalf("created_at = %v, want %v in UTC", created.CreatedAt, wantAt)
		}
		if got := created.StageTimes[StatusUploaded]; !got.Equal(wantAt) {
			t.Fatalf("stage time of uploaded = %v, want created_at %v", got, wantAt)
		}
		got, err := s.GetStream(ctx, "vod-1")
		if err != nil {
			t.Fatal(err)
		}
		sameStream(t, got, created)
		if got.CreatedAt.Nanosecond()%1000 != 0 || got.CreatedAt.Sub(base) > time.Microsecond {
			t.Fatalf("created_at kept as %v, want microsecond precision of %v", got.CreatedAt, base)
		}

		live := mustCreate(t, s, Stream{ID: "live-1", Kind: KindLive, PublishKey: "secret-1"})
		if live.Status != StatusCreated || live.CreatedAt.IsZero() || live.CreatedAt.Location() != time.UTC {
			t.Fatalf("live stream defaults: status %s created_at %v", live.Status, live.CreatedAt)
		}
		if live.VariantsGenerated == nil || len(live.VariantsGenerated) != 0 {
			t.Fatalf("variants_generated = %#v, want empty non-nil", live.VariantsGenerated)
		}
		byKey, err := s.GetStreamByPublishKey(ctx, "secret-1")
		if err != nil || byKey.ID != "live-1" {
			t.Fatalf("by publish key: %v %v", byKey.ID, err)
		}
		_, err = s.GetStreamByPublishKey(ctx, "nope")
		wantErr(t, err, ErrNotFound, "")
		// vod-1 has no key: the empty key must not find it.
		_, err = s.GetStreamByPublishKey(ctx, "")
		wantErr(t, err, ErrNotFound, "")

		_, err = s.CreateStream(ctx, Stream{ID: "vod-1", Kind: KindVOD})
		wantErr(t, err, ErrExists, "stream vod-1: already exists")
		_, err = s.CreateStream(ctx, Stream{ID: "live-2", Kind: KindLive, PublishKey: "secret-1"})
		wantErr(t, err, ErrExists, "")
		// Many streams may have no key.
		mustCreate(t, s, Stream{ID: "vod-2", Kind: KindVOD})

		_, err = s.GetStream(ctx, "vod-x")
		wantErr(t, err, ErrNotFound, "stream vod-x: not found")

		for _, bad := range []Stream{
			{Kind: KindVOD},
			{ID: "x", Kind: "podcast"},
			{ID: "x", Kind: KindVOD, Status: "melting"},
			{ID: "x", Kind: KindVOD, Details: json.RawMessage(`{"open": `)},
		} {
			_, err := s.CreateStream(ctx, bad)
			wantErr(t, err, ErrInvalid, "")
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SRTPassphraseIsKeptAsGiven", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		const pass = "correct-horse-battery"
		mustCreate(t, s, Stream{ID: "live-enc", Kind: KindLive, PublishKey: "key-enc", SRTPassphrase: pass})
		mustCreate(t, s, Stream{ID: "live-plain", Kind: KindLive, PublishKey: "key-plain"})
		byKey, err := s.GetStreamByPublishKey(ctx, "key-enc")
		if err != nil || byKey.SRTPassphrase != pass {
			t.Fatalf("by publish key: passphrase %q, %v; want %q", byKey.SRTPassphrase, err, pass)
		}
		plain, err := s.GetStream(ctx, "live-plain")
		if err != nil || plain.SRTPassphrase != "" {
			t.Fatalf("stream without a passphrase reads %q, %v", plain.SRTPassphrase, err)
		}
		// An update that does not touch it keeps it; a transition too.
		byKey.Title = "renamed"
		if _, err := s.UpdateStream(ctx, byKey); err != nil {
			t.Fatal(err)
		}
		moved, err := s.TransitionStatus(ctx, "live-enc", StatusLive, nil)
		if err != nil || moved.SRTPassphrase != pass {
			t.Fatalf("after update and transition: passphrase %q, %v", moved.SRTPassphrase, err)
		}
		// The stream list carries it too (the API never shows it).
		list, _, err := s.ListStreams(ctx, StreamFilter{Kind: KindLive, Limit: 10})
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %d streams, %v", len(list), err)
		}
		for _, bad := range []string{"short", strings.Repeat("x", MaxSRTPassphrase+1), "has a space in it", "tab\tinside-it"} {
			_, err := s.CreateStream(ctx, Stream{ID: "live-bad", Kind: KindLive, SRTPassphrase: bad})
			wantErr(t, err, ErrInvalid, "")
			if !strings.Contains(err.Error(), "srt passphrase") {
				t.Fatalf("error %q does not name the passphrase", err)
			}
		}
		if _, err := s.GetStream(ctx, "live-bad"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a stream with a bad passphrase was stored: %v", err)
		}
	})

	t.Run("ListStreamsPagesNewestFirstWithFilters", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		type spec struct {
			id     string
			kind   Kind
			status Status
			at     int // seconds after base; equal values tie on created_at
		}
		specs := []spec{
			{"a", KindVOD, StatusUploaded, 1},
			{"b", KindLive, StatusCreated, 2},
			{"c", KindVOD, StatusUploaded, 2},
			{"d", KindVOD, StatusReady, 2},
			{"e", KindLive, StatusLive, 3},
			{"f", KindVOD, StatusUploaded, 4},
			{"g", KindVOD, StatusUploaded, 5},
		}
		for _, sp := range specs {
			mustCreate(t, s, Stream{ID: sp.id, Kind: sp.kind, Status: sp.status,
				CreatedAt: base.Add(time.Duration(sp.at) * time.Second)})
		}
		collect := func(f StreamFilter) []string {
			t.Helper()
			var ids []string
			for pages := 0; ; pages++ {
				if pages > len(specs)+1 {
					t.Fatal("paging does not end")
				}
				page, next, err := s.ListStreams(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if f.Limit > 0 && len(page) > f.Limit {
					t.Fatalf("page of %d streams, limit %d", len(page), f.Limit)
				}
				for _, st := range page {
					ids = append(ids, st.ID)
				}
				if next == "" {
					return ids
				}
				f.After = next
			}
		}
		cases := []struct {
			name   string
			filter StreamFilter
			want   []string
		}{
			{"all in one page", StreamFilter{}, []string{"g", "f", "e", "d", "c", "b", "a"}},
			{"pages of three", StreamFilter{Limit: 3}, []string{"g", "f", "e", "d", "c", "b", "a"}},
			{"pages of one", StreamFilter{Limit: 1}, []string{"g", "f", "e", "d", "c", "b", "a"}},
			{"live only", StreamFilter{Kind: KindLive, Limit: 1}, []string{"e", "b"}},
			{"uploaded VOD", StreamFilter{Kind: KindVOD, Status: StatusUploaded, Limit: 2}, []string{"g", "f", "c", "a"}},
			{"no match", StreamFilter{Status: StatusFailed}, nil},
		}
		for _, c := range cases {
			if got := collect(c.filter); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			}
		}

		// A cursor stays valid while newer streams arrive.
		page, next, err := s.ListStreams(ctx, StreamFilter{Limit: 3})
		if err != nil || len(page) != 3 || next == "" {
			t.Fatalf("first page: %d streams, next %q, %v", len(page), next, err)
		}
		mustCreate(t, s, Stream{ID: "h", Kind: KindVOD, CreatedAt: base.Add(time.Hour)})
		rest := collect(StreamFilter{Limit: 3, After: next})
		if want := []string{"d", "c", "b", "a"}; !reflect.DeepEqual(rest, want) {
			t.Errorf("pages after a new stream: %v, want %v", rest, want)
		}

		for _, bad := range []StreamFilter{{After: "%%%"}, {After: "bm90LWEtY3Vyc29y"}, {Kind: "radio"}, {Status: "bogus"}} {
			_, _, err := s.ListStreams(ctx, bad)
			wantErr(t, err, ErrInvalid, "")
		}
	})

	t.Run("UpdateStreamComparesVersions", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		v1 := mustCreate(t, s, Stream{ID: "vod-1", Kind: KindVOD, Title: "one"})
		edit := v1
		edit.Title = "two"
		edit.Progress = 12.5
		edit.Details = json.RawMessage(`{"k": [1, 2]}`)
		edit.Kind = KindLive   // fixed at creation
		edit.CreatedAt = base  // fixed at creation
		edit.SegmentCount = 99 // derived
		v2, err := s.UpdateStream(ctx, edit)
		if err != nil {
			t.Fatal(err)
		}
		if v2.Version != 2 || v2.Title != "two" || v2.Progress != 12.5 || v2.Kind != KindVOD ||
			!v2.CreatedAt.Equal(v1.CreatedAt) || v2.SegmentCount != 0 || !jsonEqual(t, v2.Details, edit.Details) {
			t.Fatalf("after update: %+v", v2)
		}
		if v2.UpdatedAt.Before(v1.UpdatedAt) {
			t.Fatalf("updated_at went back: %v < %v", v2.UpdatedAt, v1.UpdatedAt)
		}
		stale := v1
		stale.Title = "stale"
		_, err = s.UpdateStream(ctx, stale)
		wantErr(t, err, ErrConflict, "")
		got, _ := s.GetStream(ctx, "vod-1")
		if got.Title != "two" || got.Version != 2 {
			t.Fatalf("stale write changed the row: %+v", got)
		}

		// Moving the status forward records the stage time; back is refused.
		fwd := got
		fwd.Status = StatusProcessing
		v3, err := s.UpdateStream(ctx, fwd)
		if err != nil {
			t.Fatal(err)
		}
		if v3.StageTimes[StatusProcessing].IsZero() {
			t.Fatal("status change by UpdateStream recorded no stage time")
		}
		back := v3
		back.Status = StatusUploaded
		_, err = s.UpdateStream(ctx, back)
		wantErr(t, err, ErrConflict, "stream vod-1: cannot move from processing to uploaded: conflict")

		_, err = s.UpdateStream(ctx, Stream{ID: "vod-x", Kind: KindVOD, Status: StatusUploaded, Version: 1})
		wantErr(t, err, ErrNotFound, "stream vod-x: not found")

		// Of writers holding the same version, exactly one wins.
		for round := range 5 {
			cur, err := s.GetStream(ctx, "vod-1")
			if err != nil {
				t.Fatal(err)
			}
			const writers = 6
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for w := range writers {
				wg.Go(func() {
					mine := cur
					mine.Title = fmt.Sprintf("round %d writer %d", round, w)
					_, errs[w] = s.UpdateStream(ctx, mine)
				})
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, ErrConflict):
					t.Fatalf("concurrent update: %v", err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d writers won, want exactly 1", round, wins)
			}
			after, _ := s.GetStream(ctx, "vod-1")
			if after.Version != cur.Version+1 {
				t.Fatalf("version %d after one winning write on %d", after.Version, cur.Version)
			}
		}
	})

	t.Run("TransitionStatusFollowsTheLifecycle", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		mustCreate(t, s, Stream{ID: "vod-1", Kind: KindVOD})
		mustCreate(t, s, Stream{ID: "live-1", Kind: KindLive})
		mustCreate(t, s, Stream{ID: "vod-2", Kind: KindVOD})
		steps := []struct {
			id      string
			to      Status
			mutate  func(*Stream)
			wantErr error
			msg     string
		}{
			{"vod-1", StatusProcessing, nil, nil, ""},
			{"vod-1", StatusTranscoding, func(s *Stream) { s.Progress = 10 }, nil, ""},
			{"vod-1", StatusProcessing, nil, ErrConflict, "stream vod-1: cannot move from transcoding to processing: conflict"},
			{"vod-1", StatusTranscoding, func(s *Stream) { s.Progress = 60 }, nil, ""},
			{"vod-1", StatusReady, func(s *Stream) { s.ManifestPath = "vod/vod-1/master.m3u8"; s.Progress = 100 }, nil, ""},
			{"vod-1", StatusProcessing, nil, ErrConflict, "stream vod-1: cannot move from ready to processing: conflict"},
			{"vod-1", StatusFailed, nil, ErrConflict, "stream vod-1: cannot move from ready to failed: conflict"},
			{"vod-1", StatusReady, nil, nil, ""},
			{"live-1", StatusLive, nil, nil, ""},
			{"live-1", StatusCreated, nil, ErrConflict, "stream live-1: cannot move from live to created: conflict"},
			{"live-1", StatusVOD, nil, nil, ""},
			{"live-1", StatusLive, nil, ErrConflict, "stream live-1: cannot move from vod to live: conflict"},
			{"vod-2", StatusProcessing, nil, nil, ""},
			{"vod-2", StatusFailed, func(s *Stream) { s.Error = "probe: no video stream" }, nil, ""},
			{"vod-2", StatusTranscoding, nil, ErrConflict, ""},
			{"vod-2", "exploded", nil, ErrInvalid, ""},
			{"vod-x", StatusProcessing, nil, ErrNotFound, "stream vod-x: not found"},
		}
		for i, st := range steps {
			before, _ := s.GetStream(ctx, st.id)
			got, err := s.TransitionStatus(ctx, st.id, st.to, st.mutate)
			if st.wantErr != nil {
				if !errors.Is(err, st.wantErr) || (st.msg != "" && err.Error() != st.msg) {
					t.Fatalf("step %d %s → %s: error %v, want %v %q", i, st.id, st.to, err, st.wantErr, st.msg)
				}
				after, _ := s.GetStream(ctx, st.id)
				sameStream(t, after, before)
				continue
			}
			if err != nil {
				t.Fatalf("step %d %s → %s: %v", i, st.id, st.to, err)
			}
			if got.Status != st.to {
				t.Fatalf("step %d: status %s, want %s", i, got.Status, st.to)
			}
			stored, _ := s.GetStream(ctx, st.id)
			sameStream(t, stored, got)
			changed := before.Status != st.to
			if changed || st.mutate != nil {
				if got.Version != before.Version+1 {
					t.Fatalf("step %d: version %d after %d", i, got.Version, before.Version)
				}
			} else if got.Version != before.Version {
				t.Fatalf("step %d: a no-op transition bumped the version to %d", i, got.Version)
			}
			at := got.StageTimes[st.to]
			if changed && (at.IsZero() || at.Before(before.UpdatedAt) || at.Location() != time.UTC) {
				t.Fatalf("step %d: stage time of %s = %v (previous write %v)", i, st.to, at, before.UpdatedAt)
			}
			if !changed && !at.Equal(before.StageTimes[st.to]) {
				t.Fatalf("step %d: staying in %s moved its stage time %v → %v", i, st.to, before.StageTimes[st.to], at)
			}
		}
		final, _ := s.GetStream(ctx, "vod-1")
		if final.Progress != 100 || final.ManifestPath != "vod/vod-1/master.m3u8" {
			t.Fatalf("mutations lost: %+v", final)
		}
		for _, status := range []Status{StatusUploaded, StatusProcessing, StatusTranscoding, StatusReady} {
			if final.StageTimes[status].IsZero() {
				t.Fatalf("no stage time for %s: %v", status, final.StageTimes)
			}
		}
		if !final.StageTimes[StatusProcessing].Before(final.StageTimes[StatusReady]) &&
			!final.StageTimes[StatusProcessing].Equal(final.StageTimes[StatusReady]) {
			t.Fatalf("stage times out of order: %v", final.StageTimes)
		}
		failed, _ := s.GetStream(ctx, "vod-2")
		if failed.Error != "probe: no video stream" {
			t.Fatalf("failed stream error = %q", failed.Error)
		}

		// mutate cannot rewrite identity or bookkeeping.
		mustCreate(t, s, Stream{ID: "vod-3", Kind: KindVOD})
		got, err := s.TransitionStatus(ctx, "vod-3", StatusProcessing, func(s *Stream) {
			s.ID, s.Kind, s.Version, s.Status, s.Title = "other", KindLive, 77, StatusReady, "renamed"
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "vod-3" || got.Kind != KindVOD || got.Version != 2 || got.Status != StatusProcessing || got.Title != "renamed" {
			t.Fatalf("mutate escaped its limits: %+v", got)
		}
	})

	t.Run("ConcurrentTransitionsNeverMoveBack", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		mustCreate(t, s, Stream{ID: "vod-1", Kind: KindVOD})
		order := []Status{StatusProcessing, StatusTranscoding, StatusReady}
		var wg sync.WaitGroup
		for w := range 9 {
			wg.Go(func() {
				_, err := s.TransitionStatus(ctx, "vod-1", order[w%3], func(s *Stream) { s.Gaps++ })
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Errorf("transition: %v", err)
				}
			})
		}
		wg.Wait()
		got, _ := s.GetStream(ctx, "vod-1")
		if got.Status != StatusReady {
			t.Fatalf("final status %s, want ready (some writer moved to it and nothing may leave it)", got.Status)
		}
		// Every successful transition bumped the version and the counter once.
		if got.Gaps != got.Version-1 {
			t.Fatalf("gaps %d after %d writes: a mutation was lost", got.Gaps, got.Version-1)
		}
	})

	t.Run("UpsertSegmentIsIdempotent", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		mustCreate(t, s, Stream{ID: "live-1", Kind: KindLive})
		pdt := base.Add(time.Minute) // nanoseconds: stored to the microsecond
		first := Segment{StreamID: "live-1", ChunkIndex: 3, Sequence: 3, Key: "live/live-1/3.ts",
			StartUS: 6_000_000, DurationUS: 2_000_000, Size: 1000, SHA256: "aa", ProgramDateTime: pdt}
		if err := s.UpsertSegment(ctx, first); err != nil {
			t.Fatal(err)
		}
		segs, err := s.ListSegments(ctx, "live-1", "", 0, 0)
		if err != nil || len(segs) != 1 {
			t.Fatalf("after first upsert: %v %v", segs, err)
		}
		createdAt := segs[0].CreatedAt
		second := first
		second.Size, second.SHA256, second.Discontinuity, second.DurationUS = 2000, "bb", true, 2_002_000
		second.ProgramDateTime = time.Time{}
		second.CreatedAt = base.Add(24 * time.Hour) // ignored on replace
		for range 2 {
			if err := s.UpsertSegment(ctx, second); err != nil {
				t.Fatal(err)
			}
		}
		segs, err = s.ListSegments(ctx, "live-1", "", 0, 0)
		if err != nil || len(segs) != 1 {
			t.Fatalf("after repeated upserts: %d rows, %v", len(segs), err)
		}
		want := second
		want.CreatedAt = createdAt
		if !reflect.DeepEqual(segs[0], want) {
			t.Fatalf("stored segment\n got %+v\nwant %+v", segs[0], want)
		}
		if err := s.UpsertSegment(ctx, first); err != nil {
			t.Fatal(err)
		}
		segs, _ = s.ListSegments(ctx, "live-1", "", 0, 0)
		if !segs[0].ProgramDateTime.Equal(pdt.Truncate(time.Microsecond)) || segs[0].ProgramDateTime.Location() != time.UTC {
			t.Fatalf("program date time = %v, want %v in UTC", segs[0].ProgramDateTime, pdt)
		}
		if got, _ := s.GetStream(ctx, "live-1"); got.SegmentCount != 1 {
			t.Fatalf("segment count %d, want 1", got.SegmentCount)
		}

		err = s.UpsertSegment(ctx, Segment{StreamID: "ghost", ChunkIndex: 0})
		wantErr(t, err, ErrNotFound, "")
		err = s.UpsertSegment(ctx, Segment{StreamID: "live-1", ChunkIndex: -1})
		wantErr(t, err, ErrInvalid, "")
		err = s.UpsertSegment(ctx, Segment{ChunkIndex: 1})
		wantErr(t, err, ErrInvalid, "")
	})

	t.Run("ListAndDeleteSegments", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		mustCreate(t, s, Stream{ID: "vod-1", Kind: KindVOD})
		for _, r := range []string{"720p", "360p"} {
			for _, i := range []int64{7, 2, 9, 0, 5, 1, 8, 3, 6, 4} {
				if err := s.UpsertSegment(ctx, Segment{StreamID: "vod-1", Rendition: r, ChunkIndex: i,
					Sequence: i, Key: fmt.Sprintf("vod/vod-1/%s/%d.m4s", r, i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		indexes := func(segs []Segment) []int64 {
			out := []int64{}
			for _, g := range segs {
				out = append(out, g.ChunkIndex)
			}
			return out
		}
		cases := []struct {
			rendition string
			from      int64
			limit     int
			want      []int64
		}{
			{"720p", 0, 0, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
			{"720p", 3, 4, []int64{3, 4, 5, 6}},
			{"720p", 8, 0, []int64{8, 9}},
			{"720p", 8, 5, []int64{8, 9}},
			{"720p", 10, 0, []int64{}},
			{"360p", 0, 2, []int64{0, 1}},
			{"1080p", 0, 0, []int64{}},
		}
		for _, c := range cases {
			segs, err := s.ListSegments(ctx, "vod-1", c.rendition, c.from, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if segs == nil {
				t.Fatalf("ListSegments(%s, %d, %d) = nil, want a non-nil slice", c.rendition, c.from, c.limit)
			}
			if got := indexes(segs); !reflect.DeepEqual(got, c.want) {
				t.Errorf("ListSegments(%s, %d, %d) = %v, want %v", c.rendition, c.from, c.limit, got, c.want)
			}
		}
		if got, _ := s.GetStream(ctx, "vod-1"); got.SegmentCount != 20 {
			t.Fatalf("segment count %d, want 20", got.SegmentCount)
		}
		if err := s.DeleteSegments(ctx, "vod-1", "720p", 5); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSegments(ctx, "vod-1", "720p", 100); err != nil {
			t.Fatal(err)
		}
		segs, _ := s.ListSegments(ctx, "vod-1", "720p", 0, 0)
		if got := indexes(segs); !reflect.DeepEqual(got, []int64{0, 1, 2, 3, 4}) {
			t.Fatalf("after delete from 5: %v", got)
		}
		segs, _ = s.ListSegments(ctx, "vod-1", "360p", 0, 0)
		if len(segs) != 10 {
			t.Fatalf("delete touched another rendition: %d left", len(segs))
		}
		got, _ := s.GetStream(ctx, "vod-1")
		if got.SegmentCount != 15 {
			t.Fatalf("segment count %d after deleting 5 of 20", got.SegmentCount)
		}
		list, _, _ := s.ListStreams(ctx, StreamFilter{})
		if len(list) != 1 || list[0].SegmentCount != 15 {
			t.Fatalf("ListStreams segment count: %+v", list)
		}
	})

	t.Run("ConcurrentUpsertsLoseNothing", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		mustCreate(t, s, Stream{ID: "live-1", Kind: KindLive})
		const workers, each = 12, 40
		var wg sync.WaitGroup
		errs := make(chan error, workers*each*2)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					// Every worker writes its own chunks and the shared ones.
					own := Segment{StreamID: "live-1", Rendition: "own", ChunkIndex: int64(w*each + i), Size: int64(w)}
					shared := Segment{StreamID: "live-1", Rendition: "shared", ChunkIndex: int64(i), Size: int64(w)}
					for _, g := range []Segment{own, shared} {
						if err := s.UpsertSegment(ctx, g); err != nil {
							errs <- err
						}
					}
					if i%10 == 0 {
						if _, err := s.GetStream(ctx, "live-1"); err != nil {
							errs <- err
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent upsert: %v", err)
		}
		own, _ := s.ListSegments(ctx, "live-1", "own", 0, 0)
		shared, _ := s.ListSegments(ctx, "live-1", "shared", 0, 0)
		if len(own) != workers*each || len(shared) != each {
			t.Fatalf("rows: own %d (want %d), shared %d (want %d)", len(own), workers*each, len(shared), each)
		}
		if got, _ := s.GetStream(ctx, "live-1"); got.SegmentCount != int64(workers*each+each) {
			t.Fatalf("segment count %d, want %d", got.SegmentCount, workers*each+each)
		}
	})

	t.Run("JobsCRUDAndConflicts", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		j, err := s.CreateJob(ctx, Job{ID: "job-1", Kind: "vod", StreamID: "vod-1",
			Spec: json.RawMessage(`{"tasks": [{"engine": "loudness"}]}`)})
		if err != nil {
			t.Fatal(err)
		}
		if j.Version != 1 || j.Status != JobPending || j.CreatedAt.IsZero() || j.CreatedAt.Location() != time.UTC {
			t.Fatalf("created job: %+v", j)
		}
		got, err := s.GetJob(ctx, "job-1")
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, got.Spec, j.Spec) || got.Result != nil {
			t.Fatalf("spec %s result %s", got.Spec, got.Result)
		}
		got.Spec, j.Spec = nil, nil
		if !reflect.DeepEqual(got, j) {
			t.Fatalf("get job\n got %+v\nwant %+v", got, j)
		}
		_, err = s.CreateJob(ctx, Job{ID: "job-1"})
		wantErr(t, err, ErrExists, "job job-1: already exists")
		_, err = s.GetJob(ctx, "job-x")
		wantErr(t, err, ErrNotFound, "job job-x: not found")
		_, err = s.CreateJob(ctx, Job{ID: "job-2", Status: "sleeping"})
		wantErr(t, err, ErrInvalid, "")
		_, err = s.CreateJob(ctx, Job{ID: "job-2", Spec: json.RawMessage(`nope`)})
		wantErr(t, err, ErrInvalid, "")

		run := got
		run.Status = JobRunning
		run.Result = json.RawMessage(`{"loudness": -23.1}`)
		v2, err := s.UpdateJob(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if v2.Version != 2 || v2.Status != JobRunning || !jsonEqual(t, v2.Result, run.Result) {
			t.Fatalf("updated job: %+v", v2)
		}
		_, err = s.UpdateJob(ctx, run) // still version 1
		wantErr(t, err, ErrConflict, "")
		_, err = s.UpdateJob(ctx, Job{ID: "job-x", Status: JobFailed, Version: 1})
		wantErr(t, err, ErrNotFound, "job job-x: not found")

		var wg sync.WaitGroup
		errs := make([]error, 5)
		for w := range errs {
			wg.Go(func() {
				mine := v2
				mine.Error = fmt.Sprintf("writer %d", w)
				_, errs[w] = s.UpdateJob(ctx, mine)
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else if !errors.Is(err, ErrConflict) {
				t.Fatal(err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent job writers won, want 1", wins)
		}

		for i := range 5 {
			status := JobPending
			if i%2 == 0 {
				status = JobComplete
			}
			if _, err := s.CreateJob(ctx, Job{ID: fmt.Sprintf("job-%d", i+10), Status: status,
				CreatedAt: base.Add(time.Duration(i) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		after := ""
		for {
			page, next, err := s.ListJobs(ctx, JobComplete, 2, after)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range page {
				ids = append(ids, j.ID)
			}
			if next == "" {
				break
			}
			after = next
		}
		if want := []string{"job-14", "job-12", "job-10"}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("complete jobs newest first: %v, want %v", ids, want)
		}
		all, next, err := s.ListJobs(ctx, "", 0, "")
		if err != nil || next != "" || len(all) != 6 || all[0].ID != "job-1" {
			t.Fatalf("all jobs: %d, next %q, first %v, %v", len(all), next, all, err)
		}
		_, _, err = s.ListJobs(ctx, "bogus", 0, "")
		wantErr(t, err, ErrInvalid, "")
	})

	t.Run("TasksCRUD", func(t *testing.T) {
		t.Parallel()
		s := h.store(t)
		for _, id := range []string{"job-1", "job-2"} {
			if _, err := s.CreateJob(ctx, Job{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		tasks := []Task{
			{ID: "t-b", JobID: "job-1", Name: "chunker", Engine: "chunk", CreatedAt: base.Add(2 * time.Second)},
			{ID: "t-a", JobID: "job-1", Name: "adapter", Engine: "adapter", CreatedAt: base.Add(time.Second),
				Payload: json.RawMessage(`{"url": "https://example.com/a.mp4", "isLiveStream": false}`)},
			{ID: "t-c", JobID: "job-1", Name: "loudness", Engine: "loudness", CreatedAt: base.Add(2 * time.Second)},
		}
		for _, task := range tasks {
			if err := s.UpsertTask(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ListTasks(ctx, "job-1")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, task := range got {
			ids = append(ids, task.ID)
			if task.Status != JobPending || task.JobID != "job-1" {
				t.Fatalf("task defaults: %+v", task)
			}
		}
		if want := []string{"t-a", "t-b", "t-c"}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("tasks in creation order: %v, want %v", ids, want)
		}
		if !jsonEqual(t, got[0].Payload, tasks[1].Payload) {
			t.Fatalf("payload %s", got[0].Payload)
		}

		done := Task{ID: "t-c", JobID: "job-1", Name: "loudness", Engine: "loudness", Status: JobComplete,
			Output: json.RawMessage(`{"integrated": -23}`)}
		if err := s.UpsertTask(ctx, done); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ListTasks(ctx, "job-1")
		if len(got) != 3 {
			t.Fatalf("upsert of an existing task added a row: %d tasks", len(got))
		}
		last := got[2]
		if last.ID != "t-c" || last.Status != JobComplete || !jsonEqual(t, last.Output, done.Output) ||
			!last.CreatedAt.Equal(base.Add(2*time.Second).Truncate(time.Microsecond)) || last.UpdatedAt.Before(last.CreatedAt) {
			t.Fatalf("replaced task: %+v", last)
		}

		err = s.UpsertTask(ctx, Task{ID: "t-a", JobID: "job-2"})
		wantErr(t, err, ErrConflict, "")
		err = s.UpsertTask(ctx, Task{ID: "t-z", JobID: "job-x"})
		wantErr(t, err, ErrNotFound, "")
		err = s.UpsertTask(ctx, Task{ID: "t-z", JobID: "job-1", Output: json.RawMessage(`{`)})
		wantErr(t, err, ErrInvalid, "")
		if none, err := s.ListTasks(ctx, "job-2"); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("tasks of a job without tasks: %v, %v", none, err)
		}
	})

	t.Run("ReopenKeepsDataAndDoesNotRerunMigrations", func(t *testing.T) {
		t.Parallel()
		loc := h.fresh(t)
		s1, err := Open(ctx, loc)
		if err != nil {
			t.Fatal(err)
		}
		want := ledger(t, s1)
		ms, err := loadMigrations(migrationFiles, "migrations/"+backendSQLite)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != len(ms) {
			t.Fatalf("ledger has %d migrations, %d exist", len(want), len(ms))
		}
		created := mustCreate(t, s1, Stream{ID: "vod-1", Kind: KindVOD, Details: json.RawMessage(`{"a": 1}`)})
		if err := s1.UpsertSegment(ctx, Segment{StreamID: "vod-1", Rendition: "720p", ChunkIndex: 0, Key: "k"}); err != nil {
			t.Fatal(err)
		}
		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := h.open(t, loc)
		got, err := s2.GetStream(ctx, "vod-1")
		if err != nil {
			t.Fatal(err)
		}
		created.SegmentCount = 1
		sameStream(t, got, created)
		if again := ledger(t, s2); !reflect.DeepEqual(again, want) {
			t.Fatalf("ledger changed on reopen:\n got %+v\nwant %+v", again, want)
		}

		// A database migrated by a newer weir is refused, not misread.
		st := backendOf(t, s2)
		if _, err := st.b.writer().exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			len(ms)+1, "from_the_future", st.timeArg(now())); err != nil {
			t.Fatal(err)
		}
		if s3, err := Open(ctx, loc); err == nil {
			s3.Close()
			t.Fatal("opened a database whose schema is newer than this binary")
		}
	})

	t.Run("ConcurrentOpensMigrateOnce", func(t *testing.T) {
		t.Parallel()
		loc := h.fresh(t)
		const openers = 4
		stores := make([]Store, openers)
		errs := make([]error, openers)
		var wg sync.WaitGroup
		for i := range openers {
			wg.Go(func() { stores[i], errs[i] = Open(ctx, loc) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("opener %d: %v", i, err)
			}
			t.Cleanup(func() { stores[i].Close() })
		}
		rows := ledger(t, stores[0])
		versions := []int{}
		for _, r := range rows {
			versions = append(versions, r.Version)
		}
		if !sort.IntsAreSorted(versions) || len(versions) == 0 || versions[0] != 1 || versions[len(versions)-1] != len(versions) {
			t.Fatalf("ledger versions %v: each migration should be recorded once", versions)
		}
	})
}
