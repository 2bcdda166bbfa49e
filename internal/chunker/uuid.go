package chunker

import (
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// chunkNamespace is the fixed namespace of chunk UUIDs. Changing it renames
// every chunk ever made, so it never changes.
var chunkNamespace = uuid.MustParse("6f1c3f0e-8a4b-4d59-9c1e-2b7d5e0a9c41")

// UUID names chunk index of the given kind of a job: a name-based UUID
// (version 5, SHA-1) of "jobID/kind/index" in a fixed namespace, so every
// run over the same job names its chunks the same way.
func UUID(jobID string, kind Kind, index int64) string {
	name := jobID + "/" + string(kind) + "/" + strconv.FormatInt(index, 10)
	return uuid.NewSHA1(chunkNamespace, []byte(name)).String()
}

// KindFor maps an engine's input MIME patterns (engine Spec.Inputs) to the
// chunk kind it reads: image/* gives frames, audio/* audio chunks, video/*
// and */* video chunks. The first pattern that maps wins; parameters after
// ";" are ignored. ok is false when no pattern maps to a kind.
func KindFor(inputs []string) (kind Kind, ok bool) {
	for _, in := range inputs {
		mt, _, _ := strings.Cut(in, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		major, _, _ := strings.Cut(mt, "/")
		switch major {
		case "image":
			return KindFrame, true
		case "audio":
			return KindAudio, true
		case "video", "*":
			return KindVideo, true
		}
	}
	return "", false
}
