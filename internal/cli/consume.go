package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/weir-media/weir/internal/bus"
	"github.com/weir-media/weir/protocol"
)

func init() { register(newConsumeCmd) }

type consumeConfig struct {
	busFlags      `koanf:",squash"`
	Topic         string `koanf:"topic"`
	Group         string `koanf:"group"`
	FromBeginning bool   `koanf:"from-beginning"`
	UntilEOF      bool   `koanf:"until-eof"`
	JSON          bool   `koanf:"json"`
}

func newConsumeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "consume --topic T",
		Short: "Print the protocol messages of a topic, decoded, one line each",
		Long: `consume reads a topic and prints one line per record: its offset (with the
partition when it is not 0), its type, its key, and the fields that matter
(stream_init's format and chunk size, a raw_stream's size and byte offset in
its stream, stream_eof's length, checksum and whether they match what
arrived, heartbeats' status and counters, media_chunk and engine_output
summaries). A record that cannot be decoded, or breaks the stream rules, is
printed as an ERROR line saying why, and reading goes on.

Without --from-beginning it starts with the next record produced. --until-eof
stops after the first record keyed stream_eof (any key prefix) and exits
non-zero if its contentLength or md5Checksum does not match the raw_stream
bytes received. It also exits non-zero, saying so, when that stream_eof came
without its stream_init before it (consume started mid-stream, say, without
--from-beginning) or could not be decoded: then nothing could be verified.
Otherwise consume runs until Ctrl-C. --json prints one JSON object per
record instead.`,
		Example: `  weir consume --topic stream_00000012 --from-beginning --until-eof
  weir consume --topic stream_00000012 --kafka 127.0.0.1:9092 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg consumeConfig
			if err := loadConfig(cmd, configPath, &cfg); err != nil {
				return err
			}
			if cfg.Topic == "" {
				return errors.New("--topic is required")
			}
			if err := protocol.ValidateTopic(cfg.Topic); err != nil {
				return fmt.Errorf("--topic: %w", err)
			}
			return runConsume(cmd, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (default ./weir.yaml when present)")
	addBusFlags(f)
	f.String("topic", "", "topic to read (required)")
	f.String("group", "", "consumer group to join and commit to (default: none, nothing committed)")
	f.Bool("from-beginning", false, "start at the oldest record, not the next one produced")
	f.Bool("until-eof", false, "stop after the first stream_eof; exit non-zero if it does not match the bytes received, or if the stream's start was not seen")
	f.Bool("json", false, "print one JSON object per record")
	return cmd
}

func runConsume(cmd *cobra.Command, cfg consumeConfig) error {
	parent := cmd.Context()
	log := cliLogger(cmd.ErrOrStderr())
	client, err := dialBus(parent, cfg.busFlags, log)
	if err != nil {
		return err
	}
	defer client.Close()

	ctx, stop := context.WithCancel(parent)
	defer stop()
	d := newRecordDumper(cfg.JSON)
	out := cmd.OutOrStdout()
	var eof *dumped
	err = client.Consume(ctx, bus.ConsumeOptions{
		Topics:        []string{cfg.Topic},
		Group:         cfg.Group,
		FromBeginning: cfg.FromBeginning,
		Handler: func(_ context.Context, rec *bus.Record) error {
			r := d.dump(rec)
			if _, err := fmt.Fprintln(out, r.line); err != nil {
				return err
			}
			if cfg.UntilEOF && r.eofKey {
				eof = &r
				stop()
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", cfg.Topic, err)
	}
	if !cfg.UntilEOF {
		return nil
	}
	if eof == nil {
		return &exitError{code: 130, err: fmt.Errorf("consume %s: stopped before a stream_eof", cfg.Topic)}
	}
	if eof.eof == nil {
		at := strconv.FormatInt(eof.offset, 10)
		if eof.partition != 0 {
			at = fmt.Sprintf("%d/%d", eof.partition, eof.offset)
		}
		if !eof.startSeen {
			return fmt.Errorf("consume %s: stream_eof at offset %s, but the stream's start (its stream_init) was not seen, so nothing could be verified; use --from-beginning to read a whole stream", cfg.Topic, at)
		}
		return fmt.Errorf("consume %s: stream_eof at offset %s: %w; nothing could be verified", cfg.Topic, at, eof.err)
	}
	summary := fmt.Sprintf("stream ended: %d bytes in %d raw_stream records", eof.received, eof.rawRecords)
	switch {
	case errors.Is(eof.err, protocol.ErrIntegrity):
		return fmt.Errorf("consume %s: %s, but %w", cfg.Topic, summary, eof.err)
	case eof.eof.ContentLength == 0 && eof.eof.MD5Checksum == "":
		summary += "; stream_eof has no contentLength or md5Checksum to check"
	case eof.eof.MD5Checksum == "":
		summary += "; contentLength matches (stream_eof has no md5Checksum)"
	default:
		summary += "; contentLength and md5Checksum match"
	}
	if eof.eof.ForcedEOF {
		summary += " (forcedEOF: the stream was cut short)"
	}
	fmt.Fprintln(cmd.ErrOrStderr(), summary)
	return nil
}

// recordDumper describes records of a topic, one line each, checking the
// stream rules with a protocol.StreamReader per partition and key prefix
// (streams with different prefixes may share a topic). It never panics,
// whatever the bytes.
type recordDumper struct {
	json    bool
	streams map[streamID]*streamState
}

type streamID struct {
	partition int32
	prefix    string
}

type streamState struct {
	reader     protocol.StreamReader
	rawRecords int64
}

// dumped is the description of one record.
type dumped struct {
	line string // one line, no newline
	err  error  // the problem with the record, if any
	// eofKey is set for a record keyed stream_eof, whatever its value;
	// startSeen then says whether its stream was open (its stream_init
	// seen, and no stream_eof yet). partition and offset locate it.
	eofKey    bool
	startSeen bool
	partition int32
	offset    int64
	// For a stream_eof that decoded and ended an open stream: the message,
	// and the bytes and raw_stream records its stream received.
	eof        *protocol.StreamEOF
	received   int64
	rawRecords int64
}

func newRecordDumper(jsonLines bool) *recordDumper {
	return &recordDumper{json: jsonLines, streams: make(map[streamID]*streamState)}
}

// field is one salient field of a record's line.
type field struct {
	name  string
	value any // string, int64, bool, or json.RawMessage (JSON mode only)
}

func (d *recordDumper) dump(rec *bus.Record) dumped {
	var r dumped
	var msg protocol.Message
	var fields []field
	prefix, keyType, isStream := protocol.SplitStreamKey(rec.Key)
	if isStream {
		id := streamID{rec.Partition, prefix}
		st := d.streams[id]
		if st == nil {
			st = &streamState{}
			d.streams[id] = st
		}
		before, wasOpen := st.reader.Received(), st.reader.State() == protocol.StreamOpen
		msg, r.err = st.reader.Next(rec.Key, rec.Value)
		if keyType == protocol.TypeStreamEOF {
			r.eofKey, r.startSeen, r.partition, r.offset = true, wasOpen, rec.Partition, rec.Offset
		}
		if keyType == protocol.TypeRawStream {
			// The reader counts the bytes only where they belong.
			counted := wasOpen && st.reader.State() == protocol.StreamOpen && st.reader.Received() == before+int64(len(rec.Value))
			fields = append(fields, field{"size", int64(len(rec.Value))})
			if counted {
				st.rawRecords++
				fields = append(fields, field{"at", before})
			} else {
				fields = append(fields, field{"at", "-"})
			}
		}
		if init, ok := msg.(*protocol.StreamInit); ok && init != nil {
			st.rawRecords = 0
		}
		if eof, ok := msg.(*protocol.StreamEOF); ok && eof != nil && wasOpen {
			r.eof, r.received, r.rawRecords = eof, st.reader.Received(), st.rawRecords
		}
	} else {
		msg, r.err = protocol.Decode(rec.Key, rec.Value)
	}
	if msg != nil {
		fields = append(fields, salientFields(msg)...)
		if r.eof != nil {
			verdict := "unchecked"
			switch {
			case errors.Is(r.err, protocol.ErrIntegrity):
				verdict = "mismatch"
			case r.eof.ContentLength != 0 || r.eof.MD5Checksum != "":
				verdict = "ok"
			}
			fields = append(fields, field{"received", r.received}, field{"verified", verdict})
		}
	}
	if d.json {
		r.line = jsonLine(rec, msg, fields, r.err)
	} else {
		r.line = textLine(rec, msg, fields, r.err)
	}
	return r
}

// salientFields picks what a reader of the dump wants to see of msg.
func salientFields(msg protocol.Message) []field {
	var fs []field
	str := func(name, v string) {
		if v != "" {
			fs = append(fs, field{name, v})
		}
	}
	num := func(name string, v int64) { fs = append(fs, field{name, v}) }
	ids := func(h protocol.Header) {
		str("taskId", h.TaskID)
		str("jobId", h.JobID)
		str("tdoId", h.TDOID)
	}
	switch m := msg.(type) {
	case *protocol.StreamInit:
		str("mimeType", m.MimeType)
		str("ffmpegFormat", m.FFmpegFormat)
		num("chunkSize", m.ChunkSize)
		num("durationMS", m.DurationMS)
		num("relativeStartOffsetMS", m.RelativeStartOffsetMS)
		ids(m.Header)
	case *protocol.StreamEOF:
		fs = append(fs, field{"forcedEOF", m.ForcedEOF})
		num("contentLength", m.ContentLength)
		str("md5Checksum", m.MD5Checksum)
	case *protocol.EngineHeartbeat:
		str("engineId", m.EngineID)
		str("engineInstanceId", m.EngineInstanceID)
		num("count", m.Count)
		str("status", string(m.Status))
		num("upTime", m.UpTime)
		num("bytesRead", m.BytesRead)
		num("bytesWritten", m.BytesWritten)
		num("messagesWritten", m.MessagesWritten)
		str("errorMsg", m.ErrorMsg)
		if m.TimestampBoundMs != nil {
			num("timestampBoundMs", *m.TimestampBoundMs)
		}
	case *protocol.MediaChunk:
		str("taskId", m.TaskID)
		num("chunkIndex", m.ChunkIndex)
		num("startOffsetMs", m.StartOffsetMs)
		num("endOffsetMs", m.EndOffsetMs)
		str("mimeType", m.MimeType)
		if m.Width != 0 || m.Height != 0 {
			num("width", m.Width)
			num("height", m.Height)
		}
		str("cacheURI", m.CacheURI)
		if m.Content != "" {
			num("contentBytes", int64(len(m.Content)))
		}
		str("chunkUUID", m.ChunkUUID)
	case *protocol.EngineOutput:
		str("taskId", m.TaskID)
		str("outputType", m.OutputType)
		num("startOffsetMs", m.StartOffsetMs)
		num("endOffsetMs", m.EndOffsetMs)
		str("mimeType", m.MimeType)
		if len(m.Content) > 0 {
			num("contentBytes", int64(len(m.Content)))
			if doc, err := m.Document(); err == nil {
				num("series", int64(len(doc.Series)))
			}
		}
		if m.Rev != 0 {
			num("rev", m.Rev)
		}
		str("chunkUUID", m.ChunkUUID)
	case *protocol.ChunkProcessedStatus:
		str("chunkUUID", m.ChunkUUID)
		str("status", string(m.Status))
		str("errorMsg", m.ErrorMsg)
		str("infoMsg", m.InfoMsg)
		str("taskId", m.TaskID)
	case *protocol.TimestampBound:
		str("taskId", m.TaskID)
		str("engineId", m.EngineID)
		num("timestampBoundMs", m.TimestampBoundMs)
		if m.Done {
			str("done", "true")
		}
	case *protocol.ResultWindow:
		num("windowStartMs", m.WindowStartMs)
		num("windowEndMs", m.WindowEndMs)
		num("seq", m.Seq)
		str("status", string(m.Status))
		str("missing", strings.Join(m.Missing, ","))
		num("results", int64(len(m.Results)))
	}
	return fs
}

// textLine formats a record as
//
//	OFFSET TYPE key=KEY name=value ...
//
// with the partition before the offset ("2/OFFSET") when it is not 0. A
// record with a problem gets "ERROR" after its type, and the problem last.
func textLine(rec *bus.Record, msg protocol.Message, fields []field, problem error) string {
	var b strings.Builder
	if rec.Partition != 0 {
		fmt.Fprintf(&b, "%d/", rec.Partition)
	}
	b.WriteString(strconv.FormatInt(rec.Offset, 10))
	if msg != nil {
		b.WriteString(" " + string(msg.MessageType()))
	}
	if problem != nil {
		b.WriteString(" ERROR")
	}
	b.WriteString(" key=" + textValue(string(rec.Key)))
	if msg == nil {
		fmt.Fprintf(&b, " value=%dB", len(rec.Value))
	}
	for _, f := range fields {
		b.WriteString(" " + f.name + "=")
		switch v := f.value.(type) {
		case string:
			b.WriteString(textValue(v))
		default:
			fmt.Fprint(&b, v)
		}
	}
	if problem != nil {
		b.WriteString(" problem=" + strconv.Quote(problem.Error()))
	}
	return b.String()
}

// textValue prints a plain token as it is and anything else quoted, so a
// line stays one line and splits on spaces.
func textValue(s string) string {
	if s == "" || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, c := range s {
		if c <= ' ' || c == '"' || c == '=' || c == '\\' || c > '~' {
			return strconv.Quote(s)
		}
	}
	return s
}

// jsonLine formats a record as one JSON object: partition, offset, key,
// type, the salient fields, the whole decoded message under "message" and
// the problem under "error".
func jsonLine(rec *bus.Record, msg protocol.Message, fields []field, problem error) string {
	var b strings.Builder
	b.WriteString(`{"partition":`)
	b.WriteString(strconv.FormatInt(int64(rec.Partition), 10))
	b.WriteString(`,"offset":`)
	b.WriteString(strconv.FormatInt(rec.Offset, 10))
	writeMember(&b, "key", string(rec.Key))
	if msg != nil {
		writeMember(&b, "type", string(msg.MessageType()))
	} else {
		writeMember(&b, "valueBytes", int64(len(rec.Value)))
	}
	for _, f := range fields {
		writeMember(&b, f.name, f.value)
	}
	if msg != nil && msg.MessageType() != protocol.TypeRawStream {
		if raw, err := json.Marshal(msg); err == nil {
			writeMember(&b, "message", json.RawMessage(raw))
		}
	}
	if problem != nil {
		writeMember(&b, "error", problem.Error())
	}
	b.WriteByte('}')
	return b.String()
}

func writeMember(b *strings.Builder, name string, v any) {
	k, _ := json.Marshal(name)
	val, err := json.Marshal(v)
	if err != nil {
		val, _ = json.Marshal(fmt.Sprint(v))
	}
	b.WriteByte(',')
	b.Write(k)
	b.WriteByte(':')
	b.Write(val)
}
