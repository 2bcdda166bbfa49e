package metastore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// This file holds the fingerprint library (Store.CreateFingerprint and
// friends): the reference clips the fingerprint engine looks for.

// Fingerprint is one reference of the fingerprint library: a clip's raw
// Chromaprint fingerprint (the clip itself is not kept).
type Fingerprint struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	DurationMs int64     `json:"duration_ms"`
	Items      []uint32  `json:"items"`
	CreatedAt  time.Time `json:"created_at"`
}

// MaxFingerprintItems caps a fingerprint's length: an hour of audio at
// Chromaprint's 8 items a second.
const MaxFingerprintItems = 8 * 3600

const fingerprintSelect = `SELECT id, name, duration_ms, items, created_at FROM fingerprints`

// itemsCol scans a fingerprint's items: 4 bytes each, little-endian.
type itemsCol struct{ dst *[]uint32 }

func (c itemsCol) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok {
		if s, isString := src.(string); isString {
			b = []byte(s)
		} else {
			return fmt.Errorf("stored fingerprint has unexpected type %T", src)
		}
	}
	if len(b)%4 != 0 {
		return fmt.Errorf("stored fingerprint has %d bytes, not a whole number of 32-bit items", len(b))
	}
	items := make([]uint32, len(b)/4)
	for i := range items {
		items[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	*c.dst = items
	return nil
}

// itemsArg encodes items for the items column.
func itemsArg(items []uint32) []byte {
	b := make([]byte, 4*len(items))
	for i, v := range items {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

func fingerprintDest(f *Fingerprint) []any {
	return []any{&f.ID, &f.Name, &f.DurationMs, itemsCol{&f.Items}, timeCol{&f.CreatedAt}}
}

// CreateFingerprint implements Store.CreateFingerprint.
func (st *sqlStore) CreateFingerprint(ctx context.Context, f Fingerprint) (Fingerprint, error) {
	switch {
	case f.ID == "" || f.Name == "":
		return Fingerprint{}, fmt.Errorf("fingerprint without an id or a name: %w", ErrInvalid)
	case len(f.Items) == 0 || len(f.Items) > MaxFingerprintItems:
		return Fingerprint{}, fmt.Errorf("fingerprint %s has %d items, want 1 to %d: %w", f.ID, len(f.Items), MaxFingerprintItems, ErrInvalid)
	case f.DurationMs <= 0:
		return Fingerprint{}, fmt.Errorf("fingerprint %s has no duration: %w", f.ID, ErrInvalid)
	}
	f.CreatedAt = now()
	n, err := st.b.writer().exec(ctx, `INSERT INTO fingerprints (id, name, duration_ms, items, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		f.ID, f.Name, f.DurationMs, itemsArg(f.Items), st.timeArg(f.CreatedAt))
	if err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprint %s: %w", f.ID, err)
	}
	if n == 0 {
		return Fingerprint{}, fmt.Errorf("fingerprint %s: %w", f.ID, ErrExists)
	}
	return f, nil
}

// GetFingerprint implements Store.GetFingerprint.
func (st *sqlStore) GetFingerprint(ctx context.Context, id string) (Fingerprint, error) {
	var f Fingerprint
	found, err := queryOne(ctx, st.b.reader(), fingerprintSelect+` WHERE id = $1`, []any{id}, fingerprintDest(&f)...)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprint %s: %w", id, err)
	}
	if !found {
		return Fingerprint{}, fmt.Errorf("fingerprint %s: %w", id, ErrNotFound)
	}
	return f, nil
}

// ListFingerprints implements Store.ListFingerprints.
func (st *sqlStore) ListFingerprints(ctx context.Context) ([]Fingerprint, error) {
	rows, err := st.b.reader().query(ctx, fingerprintSelect+` ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list fingerprints: %w", err)
	}
	defer rows.Close()
	out := []Fingerprint{}
	for rows.Next() {
		var f Fingerprint
		if err := rows.Scan(fingerprintDest(&f)...); err != nil {
			return nil, fmt.Errorf("list fingerprints: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list fingerprints: %w", err)
	}
	return out, nil
}

// DeleteFingerprint implements Store.DeleteFingerprint.
func (st *sqlStore) DeleteFingerprint(ctx context.Context, id string) error {
	n, err := st.b.writer().exec(ctx, `DELETE FROM fingerprints WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete fingerprint %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("fingerprint %s: %w", id, ErrNotFound)
	}
	return nil
}
