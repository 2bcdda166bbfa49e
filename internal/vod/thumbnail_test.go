package vod

import (
	"context"
	"testing"

	"github.com/weir-media/weir/internal/metastore"
)

// An MPEG-TS clip whose only key frame is its first (libx264's defaults on
// a clip shorter than 250 frames, as in the README tour) still gets a
// thumbnail: seeking the input would land between key frames there and
// ffmpeg would write nothing.
func TestThumbnailOfAClipWithOneKeyFrame(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clip := makeClip(t, t.TempDir(), "clip.ts",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "9", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac")
	id, job := e.upload(t, clip)
	if err := e.worker(t, e.config(t)).Handle(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	st := e.stream(t, id)
	if st.Status != metastore.StatusReady {
		t.Fatalf("status %s (%s)", st.Status, st.Error)
	}
	if !e.exists(id + "/thumb.jpg") {
		t.Fatal("no thumbnail for a clip whose only key frame is at 0 s")
	}
	if metastore.DetailRaw(st.Details, "thumbnail") == nil {
		t.Fatal("the title's details do not name its thumbnail")
	}
}
