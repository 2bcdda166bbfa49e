package hlsresults

import (
	"errors"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// FuzzServePath: whatever path a client asks for below a stream with a
// finished stt job, Service answers it, leaves it to the object store or
// says it is not found; it never panics and never fails otherwise.
func FuzzServePath(f *testing.F) {
	fx := newFixture(f)
	const id = "vod-fuzz"
	fx.addTitle(id, encode(f, "mpegts", 3, 2, 0))
	fx.addJob("job-fuzz", id, metastore.JobComplete, "stt")
	fx.utter("job-fuzz", 100, 900, "fuzz")
	for _, p := range []string{"master.m3u8", "subs/360p/index.m3u8", "subs/360p/0.vtt", "meta/index.json", "meta/360p/1.json", "subs/360p/+1.vtt", "meta/360p/0x1.json"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		_, err := fx.svc.Serve(fx.ctx, id, path)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("%q: %v", path, err)
		}
	})
}
