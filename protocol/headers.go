package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// weir's Kafka record headers. Veritone's protocol uses none; weir adds
// these to records it writes, and engines may ignore them. Header names
// start with "weir-"; values are UTF-8 text.
const (
	// HeaderReceivedAt is on every raw_stream record written by a live
	// ingest (RTMP, SRT and pulled sources): when weir received the
	// earliest byte the record carries, as decimal microseconds since the
	// Unix epoch ("1700000000123456"). The live packager measures its
	// publish latency and stamps EXT-X-PROGRAM-DATE-TIME from it. Write it
	// with FormatReceivedAt, read it with ParseReceivedAt.
	HeaderReceivedAt = "weir-received-at-us"

	// HeaderLiveEnd marks an engine_heartbeat on a stream topic as the end
	// of a live stream: the live packager that reaches it finishes the
	// stream (EXT-X-ENDLIST) after every record before it. Its value is
	// the reason, as a JSON string ("\"ended on request\""). Write it with
	// FormatLiveEnd, read it with ParseLiveEnd. Other readers of the
	// topic see an ordinary DONE heartbeat.
	HeaderLiveEnd = "weir-live-end"

	// HeaderPublishToken is on every record a live ingest writes to a
	// stream topic (RTMP, SRT and pulled sources): the fencing token of
	// the stream's publish lease the writer held ("publish/{id}", which an
	// RTMP or SRT publisher holds, and a pull too while it writes), as a
	// decimal integer. Tokens
	// grow every time the stream passes to another publisher, so the live
	// packager drops records carrying a token below one it has seen: a
	// publisher that lost the stream cannot write into it. Write it with
	// FormatPublishToken, read it with ParsePublishToken. Records without
	// it (external adapters) are not fenced.
	HeaderPublishToken = "weir-publish-token"
)

// Headers of a dead letter (a record on DeadLetterTopic(topic)): where the
// record came from and why no consumer could handle it. The dead letter
// keeps the original key, value (cut at 64 KiB) and headers.
const (
	HeaderDeadLetterTopic     = "weir-dlq-topic"     // the topic the record was on
	HeaderDeadLetterPartition = "weir-dlq-partition" // its partition, decimal
	HeaderDeadLetterOffset    = "weir-dlq-offset"    // its offset, decimal
	HeaderDeadLetterGroup     = "weir-dlq-group"     // the consumer group that gave up on it
	HeaderDeadLetterReason    = "weir-dlq-reason"    // why, UTF-8 text of at most 1 KiB and a cut marker
	HeaderDeadLetterSize      = "weir-dlq-size"      // the original value's size, decimal, when the value was cut
)

// FormatPublishToken returns the HeaderPublishToken value for token.
func FormatPublishToken(token int64) []byte { return strconv.AppendInt(nil, token, 10) }

// ParsePublishToken reads a HeaderPublishToken value: a positive decimal
// integer.
func ParsePublishToken(v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("header %s: want a positive decimal integer, got %s", HeaderPublishToken, quoteKey(v))
	}
	return n, nil
}

// FormatReceivedAt returns the HeaderReceivedAt value for t.
func FormatReceivedAt(t time.Time) []byte {
	return strconv.AppendInt(nil, t.UnixMicro(), 10)
}

// ParseReceivedAt reads a HeaderReceivedAt value: a positive decimal count
// of microseconds since the Unix epoch.
func ParseReceivedAt(v []byte) (time.Time, error) {
	us, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || us <= 0 {
		return time.Time{}, fmt.Errorf("header %s: want positive decimal microseconds since the Unix epoch, got %s", HeaderReceivedAt, quoteKey(v))
	}
	return time.UnixMicro(us), nil
}

// FormatLiveEnd returns the HeaderLiveEnd value giving reason.
func FormatLiveEnd(reason string) []byte {
	v, _ := json.Marshal(reason) // a string always encodes
	return v
}

// ParseLiveEnd reads a HeaderLiveEnd value: a JSON string.
func ParseLiveEnd(v []byte) (string, error) {
	var reason string
	if err := json.Unmarshal(v, &reason); err != nil {
		return "", fmt.Errorf("header %s: want a JSON string, got %s", HeaderLiveEnd, quoteKey(v))
	}
	return reason, nil
}
