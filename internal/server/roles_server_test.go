package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func getJSON(t *testing.T, url string) (int, map[string]any, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return resp.StatusCode, m, string(body)
}

// Roles split one weir into processes that share a broker: a broker-only
// process serves operations endpoints and nothing else, and an API process
// pointed at it with --kafka serves the API and starts no broker, no RTMP
// and no pipelines of its own.
func TestRolesSplitAProcess(t *testing.T) {
	dir := t.TempDir()
	bcfg := testConfig(dir + "/broker")
	bcfg.Roles = "broker"
	broker := start(t, bcfg)
	defer broker.stop(t)
	if broker.rtmp != nil || broker.packager != nil || broker.vod != nil || broker.control != nil {
		t.Fatal("a broker-only process started ingest or pipelines")
	}
	base := "http://" + broker.HTTPAddr()
	if code, _, body := getJSON(t, base+"/health"); code != http.StatusOK {
		t.Fatalf("broker /health: %d %s", code, body)
	}
	if code, m, body := getJSON(t, base+"/ready"); code != http.StatusOK || m["status"] != "ready" {
		t.Fatalf("broker /ready: %d %s", code, body)
	}
	code, _, body := getJSON(t, base+"/vod/x/metadata")
	if code != http.StatusNotFound || !strings.Contains(body, "api role") {
		t.Fatalf("broker-only process answered an API route: %d %s", code, body)
	}

	acfg := testConfig(dir + "/api")
	acfg.Roles = "api"
	acfg.Kafka = strings.Join(broker.Brokers(), ",")
	acfg.KafkaCredentials = filepath.Join(dir, "broker", "kafka", "credentials")
	acfg.Metadata = "sqlite:" + dir + "/shared.db"
	api := start(t, acfg)
	defer api.stop(t)
	if api.broker != nil || api.rtmp != nil || api.packager != nil || api.vod != nil {
		t.Fatal("an api-only process started a broker, ingest or pipelines")
	}
	code, m, body := getJSON(t, "http://"+api.HTTPAddr()+"/streams/nope/metadata")
	if code != http.StatusNotFound || m["detail"] == nil {
		t.Fatalf("api process: %d %s, want a 404 problem about the stream", code, body)
	}
}

func TestRolesNeedABroker(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		roles, kafka, want string
	}{
		{"api,vod", "", "has no broker role"},
		{"broker,api", "127.0.0.1:9", "cannot be combined with --kafka"},
		{"api,nonsense", "", `unknown role "nonsense"`},
	} {
		cfg := testConfig(t.TempDir())
		cfg.Roles, cfg.Kafka = tc.roles, tc.kafka
		srv, err := Start(context.Background(), cfg, log)
		if err == nil || srv != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--roles %s --kafka %q: Start = %v, %v; want an error containing %q", tc.roles, tc.kafka, srv, err, tc.want)
		}
	}
}
