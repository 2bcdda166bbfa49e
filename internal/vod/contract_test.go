package vod_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/weir-media/weir/internal/api"
	"github.com/weir-media/weir/internal/vod"
	"github.com/weir-media/weir/protocol"
)

// The worker reads what the API writes: same topic, group naming and job
// fields.
func TestJobContractMatchesTheAPI(t *testing.T) {
	if vod.Topic != api.TopicVODJobs {
		t.Errorf("vod.Topic %q, api.TopicVODJobs %q", vod.Topic, api.TopicVODJobs)
	}
	if vod.ConsumerGroup != protocol.RoleGroup("vod") {
		t.Errorf("ConsumerGroup %q, want protocol.RoleGroup(\"vod\") = %q", vod.ConsumerGroup, protocol.RoleGroup("vod"))
	}
	sent := api.VODJob{StreamID: "vod-1", SourceKey: "vod-1/source/a.mp4", SourceURL: "https://x/a.mp4", Title: "A", SubmittedAt: time.Unix(1700000000, 0).UTC()}
	raw, _ := json.Marshal(sent)
	var got vod.Job
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.StreamID != sent.StreamID || got.SourceKey != sent.SourceKey || got.SourceURL != sent.SourceURL || got.Title != sent.Title || !got.SubmittedAt.Equal(sent.SubmittedAt) {
		t.Errorf("api.VODJob %+v decoded as %+v", sent, got)
	}
}
