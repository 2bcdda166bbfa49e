package api

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/weir-media/weir/internal/testenv"
)

// A 64 MiB data dir, filled up: uploads are refused with 507 saying why,
// /ready names the object store, and both recover once space is freed.
func TestAFullDiskGivesUploads507AndFailsReadinessUntilSpaceReturns(t *testing.T) {
	dir := testenv.SmallDisk(t, 64)
	e := newEnv(t, dir)
	filler := testenv.FillDisk(t, dir, 1<<20)

	body, ct := multipartBody(t, "big.ts", bytes.Repeat([]byte{0x47}, 2<<20), "")
	rec := e.do(http.MethodPost, "/vod/upload", body, "Content-Type", ct)
	wantProblem(t, rec, http.StatusInsufficientStorage, "could not store upload: no space left on device")
	if keys := e.objectKeys(); len(keys) != 0 {
		t.Errorf("the refused upload left objects %v", keys)
	}

	rec = e.do(http.MethodGet, "/ready", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/ready on a full disk: %d %s, want 503", rec.Code, rec.Body)
	}
	ready := decode[ReadyResponse](t, rec)
	if len(ready.Failed) != 1 || ready.Failed[0] != "objects" || !strings.Contains(ready.Checks["objects"].Error, "no space left on device") {
		t.Fatalf("/ready on a full disk: failed %v, objects %+v; want objects failing with no space left on device", ready.Failed, ready.Checks["objects"])
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if rec := e.do(http.MethodGet, "/ready", nil); rec.Code != http.StatusOK {
		t.Fatalf("/ready once space is freed: %d %s", rec.Code, rec.Body)
	}
	body, ct = multipartBody(t, "big.ts", bytes.Repeat([]byte{0x47}, 2<<20), "")
	if rec := e.do(http.MethodPost, "/vod/upload", body, "Content-Type", ct); rec.Code != http.StatusAccepted {
		t.Fatalf("upload once space is freed: %d %s", rec.Code, rec.Body)
	}
}
