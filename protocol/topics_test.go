package protocol

import (
	"regexp"
	"strings"
	"testing"
)

func TestTopicNamesFollowTheScheme(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"stream topic", StreamTopic("00000015"), "stream_00000015"},
		{"stream topic of a uuid", StreamTopic("3f2c9d8e-1a2b-4c3d-8e9f-001122334455"), "stream_3f2c9d8e-1a2b-4c3d-8e9f-001122334455"},
		{"illegal characters become underscores", StreamTopic("live/cam 1:é"), "stream_live_cam_1___"},
		{"chunk topic", ChunkTopic("ocr"), "chunk_ocr"},
		{"results topic", ResultsTopic("job-7"), "results_job-7"},
		{"windows topic", WindowsTopic("job-7"), "windows_job-7"},
		{"engine group", EngineGroup("ocr"), "weir_engine_ocr"},
		{"role group", RoleGroup("packager"), "weir_packager"},
		{"control topic", ControlTopic("vod"), "control_vod"},
		{"vod job topic", ControlTopic("vod"), TopicVODJobs},
		{"live control topic", ControlTopic("live"), TopicLiveControl},
		{"vod group", RoleGroup("vod"), GroupVOD},
		{"live control group", RoleGroup("live-control"), GroupLiveControl},
		{"packager group", RoleGroup("packager"), GroupPackager},
		{"alerts group", RoleGroup("alerts"), GroupAlerts},
		{"live ladder group", RoleGroup("liveladder"), GroupLiveLadder},
		{"rendition topic", RenditionTopic("live-54390fa40812", "480p"), "rendition_live-54390fa40812.480p"},
		{"the alerts topic is legal", func() string {
			if ValidateTopic(TopicAlerts) != nil {
				return "illegal"
			}
			return TopicAlerts
		}(), "weir.alerts"},
		{"every kind has its prefix", TopicName(KindResults, "j"), "results_j"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
	t.Run("too long ids are shortened and stay distinct", func(t *testing.T) {
		a, b := StreamTopic(long+"a"), StreamTopic(long+"b")
		if len(a) != maxTopicLen || len(b) != maxTopicLen {
			t.Errorf("lengths %d and %d, want %d", len(a), len(b), maxTopicLen)
		}
		if a == b {
			t.Errorf("two long ids differing at the end share the topic %q", a)
		}
		if err := ValidateTopic(a); err != nil {
			t.Error(err)
		}
	})
}

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{"stream_1", true},
		{"a.b-c_D9", true},
		{strings.Repeat("t", 249), true},
		{"", false},
		{".", false},
		{"..", false},
		{"...", true},
		{strings.Repeat("t", 250), false},
		{"with space", false},
		{"slash/", false},
		{"ünï", false},
	} {
		if err := ValidateTopic(tc.topic); (err == nil) != tc.ok {
			t.Errorf("ValidateTopic(%.30q) = %v, want ok=%v", tc.topic, err, tc.ok)
		}
	}
}

// FuzzStreamTopic checks that every id, whatever its bytes, maps to a legal
// topic name, and ids that are already legal map to prefix+id.
func FuzzStreamTopic(f *testing.F) {
	for _, s := range []string{"00000015", "a/b", "", strings.Repeat("é", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		name := StreamTopic(id)
		if err := ValidateTopic(name); err != nil {
			t.Fatalf("StreamTopic(%q) = %q: %v", id, name, err)
		}
		if ValidateTopic(id) == nil && len(string(KindStream)+"_")+len(id) <= maxTopicLen && name != string(KindStream)+"_"+id {
			t.Fatalf("StreamTopic(%q) = %q, want it unchanged behind the prefix", id, name)
		}
	})
}

func TestRenditionOf(t *testing.T) {
	for _, tc := range []struct {
		topic, id, name string
		ok              bool
	}{
		{RenditionTopic("live-1", "480p"), "live-1", "480p", true},
		{RenditionTopic("a.b", "360p"), "a.b", "360p", true},
		{"rendition_x.", "", "", false},
		{"rendition_.480p", "", "", false},
		{"rendition_noname", "", "", false},
		{StreamTopic("live-1"), "", "", false},
		{"", "", "", false},
	} {
		id, name, ok := RenditionOf(tc.topic)
		if id != tc.id || name != tc.name || ok != tc.ok {
			t.Errorf("RenditionOf(%q) = %q, %q, %v; want %q, %q, %v", tc.topic, id, name, ok, tc.id, tc.name, tc.ok)
		}
	}
	// A rendition topic is never read as a stream topic, nor the reverse.
	if _, ok := StreamIDOf(RenditionTopic("live-1", "480p")); ok {
		t.Error("a rendition topic reads as a stream topic")
	}
	if ok, _ := regexp.MatchString("^(?:"+StreamTopicPattern+")$", RenditionTopic("live-1", "480p")); ok {
		t.Error("StreamTopicPattern matches a rendition topic")
	}
	if ok, _ := regexp.MatchString("^(?:"+RenditionTopicPattern+")$", RenditionTopic("live-1", "480p")); !ok {
		t.Error("RenditionTopicPattern does not match a rendition topic")
	}
}

func FuzzRenditionOf(f *testing.F) {
	for _, s := range []string{"rendition_live-1.480p", "rendition_a.b.c", "rendition_", "stream_x", "rendition_..", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		id, name, ok := RenditionOf(topic)
		if !ok {
			return
		}
		if id == "" || name == "" || strings.Contains(name, ".") {
			t.Fatalf("RenditionOf(%q) = %q, %q", topic, id, name)
		}
		if got := "rendition_" + id + "." + name; got != topic {
			t.Fatalf("RenditionOf(%q) = %q, %q, which rebuild %q", topic, id, name, got)
		}
	})
}
