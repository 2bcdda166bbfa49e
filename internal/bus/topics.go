package bus

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
)

// Topic and group names weir uses. docs/bus.md explains who produces and
// who consumes each one.
const (
	// streamPrefix etc. prefix per-entity topic names.
	streamPrefix  = "stream_"
	chunkPrefix   = "chunk_"
	resultsPrefix = "results_"
	groupPrefix   = "weir_"

	// maxTopicLen is Kafka's limit on a topic name's length.
	maxTopicLen = 249
)

// StreamTopic names the topic of one stream: stream_init, raw_stream...,
// stream_eof and engine_heartbeat messages, in that order, on a single
// partition (Veritone's "stream_00000015" scheme). Characters Kafka does
// not allow in topic names are replaced with '_', and an id too long for a
// topic name is shortened with a hash suffix, so any id gives a valid name;
// ids weir generates pass through unchanged.
func StreamTopic(streamID string) string { return topicName(streamPrefix, streamID) }

// ChunkTopic names the work topic of one engine: media_chunk messages keyed
// by taskId, consumed by the engine's group (EngineGroup), one partition
// per unit of parallelism. Characters are sanitized as in StreamTopic.
func ChunkTopic(engineID string) string { return topicName(chunkPrefix, engineID) }

// ResultsTopic names the topic where a job's engines write engine_output and
// chunk_processed_status messages keyed by taskId, read by the job's
// aggregator. Characters are sanitized as in StreamTopic.
func ResultsTopic(jobID string) string { return topicName(resultsPrefix, jobID) }

// EngineGroup names the consumer group whose members share an engine's
// ChunkTopic. Group names have no character restrictions in Kafka; the
// same sanitizing as for topics keeps them readable in tools.
func EngineGroup(engineID string) string { return topicName(groupPrefix+"engine_", engineID) }

// RoleGroup names the consumer group of a weir role ("packager",
// "transcoder", "aggregator"...): processes running the same role share the
// role's topics' partitions.
func RoleGroup(role string) string { return topicName(groupPrefix, role) }

// topicName joins prefix and id into a legal topic name.
func topicName(prefix, id string) string {
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
// from users (`weir consume --topic`) before asking a broker.
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

// DefaultKafkaPort is the port ParseBrokers adds to a host given without
// one.
const DefaultKafkaPort = 9092

// ParseBrokers parses a comma-separated broker list, as given to --kafka
// ("kafka1:9092,kafka2:9092"). Spaces around entries are ignored; a host
// without a port gets DefaultKafkaPort; IPv6 hosts need brackets
// ("[::1]:9092"). It fails on an empty list, an empty entry, or a port that
// is not a number from 1 to 65535.
func ParseBrokers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("broker list is empty")
	}
	parts := strings.Split(s, ",")
	brokers := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("broker list %q: entry %d is empty", s, i+1)
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			// No port (or a bare IPv6 address, which is ambiguous
			// without brackets and rejected below).
			if strings.Contains(p, ":") && !strings.HasPrefix(p, "[") {
				return nil, fmt.Errorf("broker %q: %w", p, err)
			}
			host, port = strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"), strconv.Itoa(DefaultKafkaPort)
		}
		if host == "" {
			return nil, fmt.Errorf("broker %q: no host", p)
		}
		if !validHost(host) {
			return nil, fmt.Errorf("broker %q: invalid host %q", p, host)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("broker %q: port %q is not a number from 1 to 65535", p, port)
		}
		brokers = append(brokers, net.JoinHostPort(host, strconv.Itoa(n)))
	}
	return brokers, nil
}

// validHost accepts host names and IP addresses (IPv6 with its zone):
// letters, digits and ".-_:%".
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '%') {
			return false
		}
	}
	return true
}
