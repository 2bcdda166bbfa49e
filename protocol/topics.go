package protocol

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
)

// Topic names. Every topic weir creates is named "<kind>_<id>" by
// TopicName: the kind says what the topic carries, the id which stream,
// engine, job or component it belongs to. Kinds never share a prefix, so
// a stream id can never produce the name of a control topic, and
// `kcat -L | grep '^stream_'` lists exactly the streams. Stream topics keep
// Veritone's own scheme ("stream_00000015"), so task payloads and adapters
// written for Veritone name them the same way. The names use '_' and never
// '.', because Kafka refuses a topic whose name equals an existing one's
// once '.' and '_' are treated alike, and weir's ids may contain '.'.
// docs/bus.md lists every topic with its writers and readers.
type TopicKind string

// The topic kinds.
const (
	// KindStream: one media stream (stream_init, raw_stream...,
	// stream_eof, engine_heartbeat) on one partition, named by stream id.
	KindStream TopicKind = "stream"
	// KindChunk: one engine's media_chunk work, named by engine id.
	KindChunk TopicKind = "chunk"
	// KindResults: one job's engine_output and chunk_processed_status,
	// named by job id.
	KindResults TopicKind = "results"
	// KindWindows: one job's result_window messages, the aggregator's
	// output, named by job id.
	KindWindows TopicKind = "windows"
	// KindControl: weir's control messages for one component (the VOD
	// workers, the live controllers), named by the component.
	KindControl TopicKind = "control"
	// KindDeadLetter: records of one topic that a consumer could not
	// handle, named by that topic (DeadLetterTopic).
	KindDeadLetter TopicKind = "dlq"
	// KindRendition: one transcoded rendition of a live stream's ABR
	// ladder (the same messages as a stream topic), named by stream id
	// and rung name (RenditionTopic).
	KindRendition TopicKind = "rendition"
)

// weir's control topics, ControlTopic of their component. Their messages
// are JSON, keyed by stream id (see control.go).
const (
	// TopicVODJobs carries a VODJob for every accepted upload or URL
	// import, read by the VOD workers.
	TopicVODJobs = "control_vod"
	// TopicLiveControl carries LiveControl messages (start, end), read by
	// the live controllers.
	TopicLiveControl = "control_live"
	// TopicJobs carries a JobRun for every job the API accepts, read by
	// the job runners (the chunker role) and, in a group of their own,
	// the alert evaluators (the alerts role).
	TopicJobs = "control_jobs"
)

// TopicAlerts carries an Alert (alert.go) for every alert a rule raises
// and for its resolution, keyed by rule id: the same JSON a rule's
// webhooks receive. It is the one topic weir writes outside the
// "<kind>_<id>" scheme, named as the product contract names it; no kind's prefix can produce it (and Kafka's
// '.'/'_' collision would need a topic called "weir_alerts", which weir
// never creates).
const TopicAlerts = "weir.alerts"

// The names earlier versions of weir gave the control topics. weir's
// consumers read them too, in the same consumer groups, so messages queued
// before an upgrade are still handled; nothing writes them any more.
//
// Deprecated: kept for upgrades only; they will be dropped.
const (
	LegacyTopicVODJobs     = "weir.vod.jobs"
	LegacyTopicLiveControl = "weir.live.control"
)

// Consumer group names: "weir_<role>" for a role of weir's processes,
// "weir_engine_<engineID>" for the instances of an engine.
const (
	// GroupVOD is RoleGroup("vod"): the VOD workers sharing TopicVODJobs.
	GroupVOD = "weir_vod"
	// GroupLiveControl is RoleGroup("live-control"): the live controllers
	// sharing TopicLiveControl.
	GroupLiveControl = "weir_live-control"
	// GroupPackager is RoleGroup("packager"): the live packagers reading
	// stream topics.
	GroupPackager = "weir_packager"
	// GroupChunker is RoleGroup("chunker"): the job runners sharing
	// TopicJobs.
	GroupChunker = "weir_chunker"
	// GroupAlerts is RoleGroup("alerts"): the alert evaluators sharing
	// TopicJobs, each evaluating the rules over the jobs it gets.
	GroupAlerts = "weir_alerts"
	// GroupLiveLadder is RoleGroup("liveladder"): the live transcoders
	// reading stream topics to make their ABR ladders.
	GroupLiveLadder = "weir_liveladder"
)

// JobGroup is the consumer group in which a job's runner reads the job's
// results topic, "weir_job_<jobID>": its committed offsets let a runner
// that takes the job over go on where the last one stopped.
func JobGroup(jobID string) string { return sanitized(groupPrefix+"job_", jobID) }

const (
	groupPrefix = "weir_"
	// maxTopicLen is Kafka's limit on a topic name's length.
	maxTopicLen = 249
)

// TopicName returns "<kind>_<id>" as a legal Kafka topic name: characters
// Kafka does not allow (anything outside [a-zA-Z0-9._-]) become '_', and a
// name too long for Kafka's 249 characters is cut and ends in a hash of the
// whole id, so any id gives a valid, distinct name. Ids weir generates
// (UUIDs, "live-…", "vod-…") pass through unchanged.
func TopicName(kind TopicKind, id string) string { return sanitized(string(kind)+"_", id) }

// StreamTopic names the topic of one stream: stream_init, raw_stream...,
// stream_eof and engine_heartbeat messages, in that order, on a single
// partition.
func StreamTopic(streamID string) string { return TopicName(KindStream, streamID) }

// StreamTopicPattern is a regular expression matching the whole name of
// every stream topic, for consumers that read all streams (the live
// packager subscribes with it).
const StreamTopicPattern = `stream_.+`

// StreamIDOf returns the stream id in a stream topic's name, and false when
// topic is not a stream topic. For an id StreamTopic had to sanitize it
// returns the sanitized form; ids weir generates come back unchanged.
func StreamIDOf(topic string) (string, bool) {
	id, ok := strings.CutPrefix(topic, string(KindStream)+"_")
	return id, ok && id != ""
}

// RenditionTopic names the topic of one rung of a live stream's ABR
// ladder, "rendition_<streamID>.<name>": the live transcoder writes the
// rung's MPEG-TS there as stream_init, raw_stream..., stream_eof and the
// end marker, exactly as on a stream topic, and the live packager packages
// it as the stream's rendition name. Rung names ("480p") never contain '.',
// so the last '.' separates them from the stream id (RenditionOf).
func RenditionTopic(streamID, name string) string {
	return TopicName(KindRendition, streamID+"."+name)
}

// RenditionTopicPattern is a regular expression matching the whole name of
// every rendition topic (the live packager subscribes with it too).
const RenditionTopicPattern = `rendition_.+`

// RenditionOf returns the stream id and rung name in a rendition topic's
// name, and false when topic is not one.
func RenditionOf(topic string) (streamID, name string, ok bool) {
	rest, ok := strings.CutPrefix(topic, string(KindRendition)+"_")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// ChunkTopic names the work topic of one engine: media_chunk messages keyed
// by taskId, consumed by the engine's group (EngineGroup), one partition
// per unit of parallelism.
func ChunkTopic(engineID string) string { return TopicName(KindChunk, engineID) }

// ResultsTopic names the topic where a job's engines write what they make
// of its chunks: engine_output and chunk_processed_status keyed by taskId,
// and engine_heartbeat keyed by engineInstanceId. An engine finds the job
// in the jobId of the media_chunk it answers, so it writes to
// ResultsTopic(chunk.JobID). The job's runner reads it.
func ResultsTopic(jobID string) string { return TopicName(KindResults, jobID) }

// WindowsTopic names the topic where a job's aggregator writes a
// result_window for every window of the job, in order, keyed by jobId:
// "windows_<jobID>". Alert rules and other consumers of merged results
// read it.
func WindowsTopic(jobID string) string { return TopicName(KindWindows, jobID) }

// ControlTopic names the topic of weir's control messages for a component
// ("vod" gives TopicVODJobs, "live" TopicLiveControl).
func ControlTopic(component string) string { return TopicName(KindControl, component) }

// DeadLetterTopic names the topic where consumers of topic put the records
// they cannot handle (too large, malformed, a handler panic), with the
// reason and origin in the HeaderDeadLetter* headers: "dlq_<topic>".
func DeadLetterTopic(topic string) string { return TopicName(KindDeadLetter, topic) }

// EngineGroup names the consumer group whose members share an engine's
// ChunkTopic. Group names have no character restrictions in Kafka; the
// same sanitizing as for topics keeps them readable in tools.
func EngineGroup(engineID string) string { return sanitized(groupPrefix+"engine_", engineID) }

// RoleGroup names the consumer group of a weir role ("packager", "vod",
// "aggregator"...): processes running the same role share the role's
// topics' partitions.
func RoleGroup(role string) string { return sanitized(groupPrefix, role) }

// sanitized joins prefix and id into a legal topic name.
func sanitized(prefix, id string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(id))
	b.WriteString(prefix)
	for i := 0; i < len(id); i++ {
		if c := id[i]; legalTopicByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) <= maxTopicLen {
		return name
	}
	// Keep the name recognisable and unique: a prefix of it plus a hash
	// of the whole id.
	h := fnv.New64a()
	h.Write([]byte(id))
	suffix := fmt.Sprintf("_%016x", h.Sum64())
	return name[:maxTopicLen-len(suffix)] + suffix
}

func legalTopicByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ValidateTopic reports whether name is a legal Kafka topic name: 1 to 249
// characters from [a-zA-Z0-9._-], and neither "." nor "..". Use it on names
// from users (`weir consume --topic`, a task payload's
// streamOutKafkaTopic) before asking a broker.
func ValidateTopic(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > maxTopicLen:
		return fmt.Errorf("topic name %.20q... is %d characters long, more than %d", name, len(name), maxTopicLen)
	}
	for i := 0; i < len(name); i++ {
		if !legalTopicByte(name[i]) {
			return fmt.Errorf("topic name %q: character %q at %d is not one of [a-zA-Z0-9._-]", name, name[i], i)
		}
	}
	return nil
}
