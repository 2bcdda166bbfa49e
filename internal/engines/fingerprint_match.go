package engines

import (
	"cmp"
	"math/bits"
	"slices"
)

// This file finds the references of the fingerprint library in a stream's
// fingerprint as it grows. For each reference, every offset of the stream
// is scored by the bit error rate (BER) of the reference's items against
// the stream's items from that offset on; a run of offsets under the
// threshold is one occurrence, found at its lowest BER.

// FingerprintReference is one reference of the fingerprint library: a
// clip's raw Chromaprint fingerprint (fpcalc -raw, algorithm 2).
type FingerprintReference struct {
	ID         string
	Name       string
	DurationMs int64
	Items      []uint32
}

// fpMatch is one occurrence of a reference in the stream.
type fpMatch struct {
	ref             *FingerprintReference
	startMs, stopMs int64
	ber             float64
}

// fpRefState follows one reference along the stream.
type fpRefState struct {
	ref  *FingerprintReference
	next int64 // the next offset (stream item) to score
	// inRun: offsets under the threshold are being scored; best is the
	// lowest BER among them, at bestAt.
	inRun  bool
	bestAt int64
	best   float64
}

// earliest is the earliest stream item a match of this reference not yet
// reported could start at.
func (r *fpRefState) earliest() int64 {
	if r.inRun {
		return r.bestAt
	}
	return r.next
}

// fpMatcher holds a stream's fingerprint (the part any match may still
// use) and each reference's state.
type fpMatcher struct {
	threshold float64
	// maxRun ends a run that has not improved for this many offsets, or
	// a reference's length if that is longer: an occurrence is the best
	// alignment within that span.
	maxRun int64
	// base is the stream item items[0] is.
	base  int64
	items []uint32
	refs  []*fpRefState
}

// end is the stream item after the last one known.
func (m *fpMatcher) end() int64 { return m.base + int64(len(m.items)) }

// setReferences replaces the library: references already followed keep
// their state, new ones are scored from item from on (where the output's
// bound stands), removed ones are forgotten.
func (m *fpMatcher) setReferences(refs []FingerprintReference, from int64) {
	old := make(map[string]*fpRefState, len(m.refs))
	for _, r := range m.refs {
		old[r.ref.ID] = r
	}
	m.refs = m.refs[:0:0]
	for i := range refs {
		ref := refs[i]
		if len(ref.Items) == 0 {
			continue
		}
		if st, ok := old[ref.ID]; ok && slices.Equal(st.ref.Items, ref.Items) {
			st.ref = &ref
			m.refs = append(m.refs, st)
			continue
		}
		m.refs = append(m.refs, &fpRefState{ref: &ref, next: max(from, m.base)})
	}
}

// add appends stream items and returns the matches they confirm, in
// order of their start.
func (m *fpMatcher) add(items []uint32) []fpMatch {
	m.items = append(m.items, items...)
	var found []fpMatch
	for _, r := range m.refs {
		found = m.scan(r, found, false)
	}
	m.trim()
	slices.SortFunc(found, func(a, b fpMatch) int { return cmp.Compare(a.startMs, b.startMs) })
	return found
}

// finish reports the runs still open at the end of the stream.
func (m *fpMatcher) finish() []fpMatch {
	var found []fpMatch
	for _, r := range m.refs {
		found = m.scan(r, found, true)
	}
	slices.SortFunc(found, func(a, b fpMatch) int { return cmp.Compare(a.startMs, b.startMs) })
	return found
}

// scan scores r at every offset the stream now covers.
func (m *fpMatcher) scan(r *fpRefState, found []fpMatch, atEnd bool) []fpMatch {
	n := int64(len(r.ref.Items))
	for r.next+n <= m.end() {
		at := r.next
		r.next++
		ber := m.ber(r.ref.Items, at)
		switch {
		case ber < m.threshold && (!r.inRun || ber < r.best):
			r.inRun, r.bestAt, r.best = true, at, ber
		case r.inRun && at-r.bestAt >= max(m.maxRun, n):
			// Nothing better within a reference's length of the best
			// offset: a later, better alignment would have overlapped
			// it (a repetitive reference scores well shifted by its
			// period too), so only now is the occurrence known.
			found = append(found, m.confirm(r))
		}
	}
	if atEnd && r.inRun {
		found = append(found, m.confirm(r))
	}
	return found
}

// confirm reports r's run as a match and skips the stream items it
// covers: one reference's occurrences never overlap.
func (m *fpMatcher) confirm(r *fpRefState) fpMatch {
	start := fpItemMs(r.bestAt)
	stop := start + max(r.ref.DurationMs, fpItemMs(int64(len(r.ref.Items))))
	r.inRun = false
	r.next = max(r.next, fpItemAt(stop))
	return fpMatch{ref: r.ref, startMs: start, stopMs: stop, ber: r.best}
}

// ber is the bit error rate of ref against the stream from item at on.
func (m *fpMatcher) ber(ref []uint32, at int64) float64 {
	s := m.items[at-m.base:]
	errs := 0
	for i, v := range ref {
		errs += bits.OnesCount32(v ^ s[i])
	}
	return float64(errs) / float64(32*len(ref))
}

// earliestMs is the earliest a match not yet reported could start, in ms;
// with no references, the end of the known fingerprint.
func (m *fpMatcher) earliestMs() int64 {
	e := m.end()
	for _, r := range m.refs {
		e = min(e, r.earliest())
	}
	return fpItemMs(e)
}

// trim drops the stream items no reference can use any more.
func (m *fpMatcher) trim() {
	keep := m.end()
	for _, r := range m.refs {
		keep = min(keep, r.earliest())
	}
	if drop := keep - m.base; drop > 4096 || (drop > 0 && int(drop) == len(m.items)) {
		m.items = append(m.items[:0:0], m.items[drop:]...)
		m.base = keep
	}
}
