package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/engines"
	"github.com/weir-media/weir/protocol"
)

// Request is the body of POST /jobs: where the media comes from, which
// engines run on it with which options, and how it is cut into chunks.
type Request struct {
	Source   Source          `json:"source"`
	Engines  []EngineRequest `json:"engines"`
	Chunking Chunking        `json:"chunking,omitzero"`
	// Aggregate is how the job's results are merged into windows.
	Aggregate Aggregate `json:"aggregate,omitzero"`
	Title     string    `json:"title,omitempty"`
	// Tasks and Routes are the task DAG of a request in Veritone's
	// createJob form (dag.go), kept as given (normalized) so the job can
	// be drawn; Source, Engines, Chunking and Aggregate are then made
	// from them.
	Tasks  []Task  `json:"tasks,omitempty"`
	Routes []Route `json:"routes,omitempty"`

	dag *dagInfo // what ParseRequest learnt of a DAG, for ResolveEngines' messages
}

// Source names the media of a job; exactly one member is set.
type Source struct {
	// VOD is the id of a VOD stream: its uploaded original is read from
	// the object store.
	VOD string `json:"vod,omitempty"`
	// Live is the id of a live stream: its topic stream_<id> is read.
	Live string `json:"live,omitempty"`
	// Topic is a stream topic (stream_init, raw_stream..., stream_eof)
	// written by anyone, weir's ingest or an external adapter.
	Topic string `json:"topic,omitempty"`
	// URL is an http(s) media URL read through the pull adapter.
	URL string `json:"url,omitempty"`
}

// The kinds of source, as Source.Kind gives them.
const (
	SourceVOD   = "vod"
	SourceLive  = "live"
	SourceTopic = "topic"
	SourceURL   = "url"
)

// Kind says which member of the source is set ("vod", "live", "topic" or
// "url"), "" when none is.
func (s Source) Kind() string {
	switch {
	case s.VOD != "":
		return SourceVOD
	case s.Live != "":
		return SourceLive
	case s.Topic != "":
		return SourceTopic
	case s.URL != "":
		return SourceURL
	}
	return ""
}

// Value is the set member's value: the stream id, topic or URL.
func (s Source) Value() string { return s.VOD + s.Live + s.Topic + s.URL }

// EngineRequest is one engine of a job.
type EngineRequest struct {
	// Name is the engine's name in the registry (GET /engines).
	Name string `json:"name"`
	// Options are the engine's options; the job keeps them checked
	// against the engine's spec, with its defaults filled in.
	Options map[string]any `json:"options,omitempty"`
	// Policy is how chunks flow to the engine.
	Policy FlowPolicy `json:"policy,omitzero"`
	// Input is set for an engine of a task DAG that reads another
	// engine's output; it is made from the DAG's routes, never given.
	Input *EngineInput `json:"input,omitempty" readOnly:"true"`
}

// FlowPolicy bounds how chunks flow to one engine of a job.
type FlowPolicy struct {
	// MaxInFlight is how many chunks the engine may hold unanswered.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// MaxBacklog is, while the source is live, how many chunks may wait
	// (queued and in flight) before the oldest queued one is dropped, so
	// a slow engine does not fall ever further behind. VOD sources never
	// drop.
	MaxBacklog int `json:"max_backlog,omitempty"`
	// Retries is how many times a chunk is sent again after an error or
	// a timeout before it is recorded failed.
	Retries int `json:"retries"`
	// ChunkTimeout is how long the engine has to answer one chunk, a
	// duration such as "2m" or plain seconds.
	ChunkTimeout string `json:"chunk_timeout,omitempty"`
}

// Timeout is ChunkTimeout parsed; 0 when it is empty or malformed (a
// normalized request has it set and valid).
func (p FlowPolicy) Timeout() time.Duration {
	d, err := protocol.ParseDuration(p.ChunkTimeout)
	if err != nil {
		return 0
	}
	return d
}

// Chunking says how the source is cut into chunks.
type Chunking struct {
	// Duration is the length of video and audio chunks (cut at the key
	// frame nearest to it), a duration such as "10s" or plain seconds.
	Duration string `json:"duration,omitempty"`
	// FrameRate is how many still frames per second image engines get.
	FrameRate float64 `json:"frame_rate,omitempty"`
	// SceneThreshold, between 0 and 1, adds a frame on every scene change
	// scoring above it; 0 turns scene frames off.
	SceneThreshold float64 `json:"scene_threshold,omitempty"`
	// Audio is the audio chunks' format: "wav" (16 kHz mono) or "source"
	// (the source's codec).
	Audio string `json:"audio,omitempty"`
}

// Aggregate says how the job's aggregator merges the engines' results:
// into windows of Window, emitting each once every engine has passed its
// end, or once the engines still behind have stalled for StallTimeout.
type Aggregate struct {
	// Window is the width of the windows, a duration such as "5s" or
	// plain seconds.
	Window string `json:"window,omitempty"`
	// StallTimeout is how long an engine's bound may stand still while
	// another engine is past the window before the window is emitted
	// without it (partial).
	StallTimeout string `json:"stall_timeout,omitempty"`
}

// WindowDuration is Window parsed; DefaultWindow when it is empty or
// malformed (a job stored before aggregation existed has none).
func (a Aggregate) WindowDuration() time.Duration {
	return durationOr(a.Window, DefaultWindow)
}

// Stall is StallTimeout parsed; DefaultStallTimeout when it is empty or
// malformed.
func (a Aggregate) Stall() time.Duration {
	return durationOr(a.StallTimeout, DefaultStallTimeout)
}

func durationOr(s string, def time.Duration) time.Duration {
	if d, err := protocol.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}

// ChunkDuration is Duration parsed; 0 when it is empty or malformed (a
// normalized request has it set and valid).
func (c Chunking) ChunkDuration() time.Duration {
	d, err := protocol.ParseDuration(c.Duration)
	if err != nil {
		return 0
	}
	return d
}

// Defaults filled in by ParseRequest.
const (
	DefaultMaxInFlight    = 2
	DefaultMaxBacklog     = 3
	DefaultRetries        = 2
	DefaultChunkTimeout   = 2 * time.Minute
	DefaultChunkDuration  = 10 * time.Second
	DefaultFrameRate      = 1.0
	DefaultAudioFormat    = "wav"
	DefaultWindow         = 5 * time.Second
	DefaultStallTimeout   = 30 * time.Second
	MinWindow             = time.Second
	MaxWindow             = time.Hour
	MinStallTimeout       = time.Second
	MaxStallTimeout       = time.Hour
	AudioFormatSource     = "source"
	MaxRequestBytes       = 256 << 10
	MaxEngines            = 16
	MaxMaxInFlight        = 64
	MaxMaxBacklog         = 1000
	MaxRetries            = 10
	MinChunkTimeout       = time.Second
	MaxChunkTimeout       = time.Hour
	MinChunkDuration      = time.Second
	MaxChunkDuration      = 10 * time.Minute
	MaxFrameRate          = 60.0
	MaxURLLength          = 2048
	maxIntMember          = 1 << 31
	maxOptionsMemberBytes = 64 << 10
)

// FieldError is one problem of a request, naming the member at fault with
// its path: "engines[1].options.threshold".
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// RequestError is a request that cannot be accepted as it is; it lists
// every problem found, in the order of the request's members.
type RequestError struct {
	Problems []*FieldError
}

func (e *RequestError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid job request: " + strings.Join(parts, "; ")
}

// add records a problem.
func (e *RequestError) add(field, format string, args ...any) {
	e.Problems = append(e.Problems, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// errOrNil is e when it holds problems, else nil.
func (e *RequestError) errOrNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// ParseRequest reads a job request from r: at most MaxRequestBytes of one
// JSON object with only the members Request knows, each of its type, then
// checks it and fills in the defaults. The engines are not looked up:
// ResolveEngines does that. Problems are reported together, as a
// *RequestError naming each member at fault.
func ParseRequest(r io.Reader) (*Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the job request: %w", err)
	}
	if len(data) > MaxRequestBytes {
		return nil, &RequestError{Problems: []*FieldError{{Problem: fmt.Sprintf("the request is larger than %d bytes", MaxRequestBytes)}}}
	}
	tree, err := decodeTree(data)
	if err != nil {
		return nil, &RequestError{Problems: []*FieldError{{Problem: err.Error()}}}
	}
	var problems RequestError
	requestShape.check(tree, "", &problems)
	if err := problems.errOrNil(); err != nil {
		return nil, err
	}
	if obj, ok := tree.(map[string]any); ok && isDAG(tree) {
		return parseDAG(data, obj)
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil { // the shape check makes this succeed
		return nil, &RequestError{Problems: []*FieldError{{Problem: "malformed JSON: " + err.Error()}}}
	}
	req.normalize(treeGiven(tree), &problems)
	if err := problems.errOrNil(); err != nil {
		return nil, err
	}
	return &req, nil
}

// decodeTree decodes exactly one JSON value, numbers kept as json.Number.
func decodeTree(data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the request is empty: send a JSON object")
	}
	if !utf8.Valid(data) {
		return nil, errors.New("the request is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("malformed JSON at byte %d: %v", syntax.Offset, syntax)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("malformed JSON: the request ends in the middle of a value")
		}
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("malformed JSON: data after the first JSON value")
	}
	return tree, nil
}

// shapeKind is the JSON type a member must have.
type shapeKind int

const (
	shapeObject shapeKind = iota
	shapeArray
	shapeString
	shapeInt
	shapeNumber
	shapeAny // any JSON value (an engine's options; its spec checks them)
)

// shape describes the members a JSON value may have.
type shape struct {
	kind    shapeKind
	members map[string]*shape // shapeObject with fixed members
	values  *shape            // shapeObject with free member names (options)
	elem    *shape            // shapeArray
}

var (
	stringShape = &shape{kind: shapeString}
	intShape    = &shape{kind: shapeInt}
	numberShape = &shape{kind: shapeNumber}
	anyShape    = &shape{kind: shapeAny}

	requestShape = &shape{kind: shapeObject, members: map[string]*shape{
		"source": {kind: shapeObject, members: map[string]*shape{
			"vod": stringShape, "live": stringShape, "topic": stringShape, "url": stringShape,
		}},
		"engines": {kind: shapeArray, elem: &shape{kind: shapeObject, members: map[string]*shape{
			"name":    stringShape,
			"options": {kind: shapeObject, values: anyShape},
			"policy": {kind: shapeObject, members: map[string]*shape{
				"max_in_flight": intShape, "max_backlog": intShape, "retries": intShape, "chunk_timeout": stringShape,
			}},
		}}},
		"chunking": {kind: shapeObject, members: map[string]*shape{
			"duration": stringShape, "frame_rate": numberShape, "scene_threshold": numberShape, "audio": stringShape,
		}},
		"aggregate": {kind: shapeObject, members: map[string]*shape{
			"window": stringShape, "stall_timeout": stringShape,
		}},
		"title": stringShape,
	}}
)

// kindName names a shape kind in messages.
func (k shapeKind) String() string {
	return [...]string{"an object", "an array", "a string", "an integer", "a number", "a value"}[k]
}

// check reports every member of v that s does not allow, or whose JSON
// type is wrong. null is accepted anywhere and means "not given".
func (s *shape) check(v any, path string, problems *RequestError) {
	if v == nil {
		return
	}
	where := path
	if where == "" {
		where = "request"
	}
	switch s.kind {
	case shapeObject:
		obj, ok := v.(map[string]any)
		if !ok && path == "" {
			problems.add("", "the request must be a JSON object, got %s", describeJSON(v))
			return
		}
		if !ok {
			problems.add(path, "must be an object, got %s", describeJSON(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			child := s.values
			if s.members != nil {
				child = s.members[k]
			}
			if child == nil {
				problems.add(joinField(path, k), "unknown member; %s takes %s", where, strings.Join(sortedKeys(s.members), ", "))
				continue
			}
			child.check(obj[k], joinField(path, k), problems)
		}
	case shapeArray:
		arr, ok := v.([]any)
		if !ok {
			problems.add(path, "must be an array, got %s", describeJSON(v))
			return
		}
		for i, item := range arr {
			s.elem.check(item, fmt.Sprintf("%s[%d]", path, i), problems)
		}
	case shapeString:
		if _, ok := v.(string); !ok {
			problems.add(path, "must be a string, got %s", describeJSON(v))
		}
	case shapeInt:
		n, ok := v.(json.Number)
		if !ok {
			problems.add(path, "must be an integer, got %s", describeJSON(v))
			return
		}
		if i, err := n.Int64(); err != nil || i > maxIntMember || i < -maxIntMember {
			problems.add(path, "must be an integer between %d and %d, got %s", -maxIntMember, maxIntMember, n)
		}
	case shapeNumber:
		n, ok := v.(json.Number)
		if !ok {
			problems.add(path, "must be a number, got %s", describeJSON(v))
			return
		}
		if f, err := n.Float64(); err != nil || math.IsInf(f, 0) {
			problems.add(path, "is too large a number: %s", n)
		}
	case shapeAny:
		checkNumbers(v, path, problems)
	}
}

// checkNumbers reports numbers that do not fit a float64 anywhere in v,
// which the engine's spec could not read.
func checkNumbers(v any, path string, problems *RequestError) {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err != nil || math.IsInf(f, 0) {
			problems.add(path, "is too large a number: %s", x)
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			checkNumbers(x[k], joinField(path, k), problems)
		}
	case []any:
		for i, item := range x {
			checkNumbers(item, fmt.Sprintf("%s[%d]", path, i), problems)
		}
	}
}

// describeJSON names the JSON type of a decoded value.
func describeJSON(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return strconv.Quote(truncate(x, 40))
	case json.Number:
		return "the number " + truncate(x.String(), 40)
	case bool:
		return strconv.FormatBool(x)
	}
	return "null"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// givenFunc reports whether the request gave a member a non-null value;
// the path is of object keys (string) and array indexes (int).
type givenFunc func(path ...any) bool

// treeGiven is the givenFunc of a decoded request.
func treeGiven(tree any) givenFunc {
	return func(path ...any) bool {
		v := tree
		for _, step := range path {
			switch k := step.(type) {
			case string:
				obj, ok := v.(map[string]any)
				if !ok {
					return false
				}
				v = obj[k]
			case int:
				arr, ok := v.([]any)
				if !ok || k < 0 || k >= len(arr) {
					return false
				}
				v = arr[k]
			}
		}
		return v != nil
	}
}

// normalize checks the decoded request's values and fills in defaults for
// the members not given.
func (r *Request) normalize(given givenFunc, problems *RequestError) {
	r.normalizeSource(problems)
	r.normalizeEngines(given, problems)
	r.normalizeChunking(given, problems)
	r.Aggregate.normalize(problems)
	r.Title = strings.TrimSpace(r.Title)
	if err := checkText(r.Title, protocol.MaxTitleLength); err != "" {
		problems.add("title", "%s", err)
	}
}

func (r *Request) normalizeSource(problems *RequestError) {
	s := &r.Source
	s.VOD, s.Live, s.Topic, s.URL = strings.TrimSpace(s.VOD), strings.TrimSpace(s.Live), strings.TrimSpace(s.Topic), strings.TrimSpace(s.URL)
	var set []string
	for name, v := range map[string]string{SourceVOD: s.VOD, SourceLive: s.Live, SourceTopic: s.Topic, SourceURL: s.URL} {
		if v != "" {
			set = append(set, name)
		}
	}
	sort.Strings(set)
	switch len(set) {
	case 0:
		problems.add("source", `is required: give exactly one of {"vod": "<stream id>"}, {"live": "<stream id>"}, {"topic": "<stream topic>"} or {"url": "http(s)://..."}`)
		return
	case 1:
	default:
		problems.add("source", "give exactly one of vod, live, topic and url, got %s", strings.Join(set, " and "))
		return
	}
	field := "source." + set[0]
	switch set[0] {
	case SourceVOD, SourceLive:
		if err := protocol.ValidateStreamID(s.Value()); err != nil {
			problems.add(field, "is not a stream id: %v", err)
		}
	case SourceTopic:
		if msg := checkSourceTopic(s.Topic); msg != "" {
			problems.add(field, "%s", msg)
		}
	case SourceURL:
		if msg := checkSourceURL(s.URL); msg != "" {
			problems.add(field, "%s", msg)
		}
	}
}

// notStreamTopics are the topic kinds that never hold a stream.
var notStreamTopics = []protocol.TopicKind{protocol.KindChunk, protocol.KindResults, protocol.KindWindows, protocol.KindControl, protocol.KindDeadLetter}

// checkSourceTopic says why name cannot be a job's source topic, or "".
func checkSourceTopic(name string) string {
	if err := protocol.ValidateTopic(name); err != nil {
		return err.Error()
	}
	for _, k := range notStreamTopics {
		if strings.HasPrefix(name, string(k)+"_") {
			return fmt.Sprintf("%q is one of weir's %s topics, not a stream topic", name, k)
		}
	}
	if strings.HasPrefix(name, "__") || strings.HasPrefix(name, "weir.") {
		return fmt.Sprintf("%q is an internal topic, not a stream topic", name)
	}
	return ""
}

// checkSourceURL says why raw cannot be a job's source URL, or "". Whether
// its host is public is the service's check.
func checkSourceURL(raw string) string {
	if len(raw) > MaxURLLength {
		return fmt.Sprintf("must be at most %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL"
	}
	if !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https") {
		return fmt.Sprintf("scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return "must include a host"
	}
	return ""
}

// checkText says why s is not an acceptable title of at most max
// characters, or "".
func checkText(s string, max int) string {
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Sprintf("is %d characters long, more than %d", n, max)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Sprintf("has a control character at byte %d", i)
	}
	return ""
}

func (r *Request) normalizeEngines(given givenFunc, problems *RequestError) {
	switch {
	case len(r.Engines) == 0:
		problems.add("engines", `is required: list at least one engine, as [{"name": "probe"}]; GET /engines lists them`)
		return
	case len(r.Engines) > MaxEngines:
		problems.add("engines", "lists %d engines, more than %d", len(r.Engines), MaxEngines)
		return
	}
	seen := map[string]int{}
	for i := range r.Engines {
		e := &r.Engines[i]
		field := fmt.Sprintf("engines[%d]", i)
		e.Name = strings.TrimSpace(e.Name)
		switch first, dup := seen[e.Name]; {
		case e.Name == "":
			problems.add(field+".name", "is required")
		case !engine.ValidName(e.Name):
			problems.add(field+".name", "%q is not an engine name (1 to 63 of a-z, 0-9 and '-')", truncate(e.Name, 70))
		case dup:
			problems.add(field+".name", "engine %s is already engines[%d]; list an engine once", e.Name, first)
		default:
			seen[e.Name] = i
		}
		if raw, _ := json.Marshal(e.Options); len(raw) > maxOptionsMemberBytes {
			problems.add(field+".options", "are %d bytes of JSON, more than %d", len(raw), maxOptionsMemberBytes)
		}
		e.Policy.normalize(field+".policy", func(name string) bool { return given("engines", i, "policy", name) }, problems)
	}
}

// normalize checks the policy's bounds and fills in the defaults of the
// members not given.
func (p *FlowPolicy) normalize(field string, given func(name string) bool, problems *RequestError) {
	bound := func(name string, v *int, def, lo, hi int) {
		switch {
		case !given(name):
			*v = def
		case *v < lo || *v > hi:
			problems.add(field+"."+name, "must be between %d and %d, got %d", lo, hi, *v)
		}
	}
	bound("max_in_flight", &p.MaxInFlight, DefaultMaxInFlight, 1, MaxMaxInFlight)
	bound("max_backlog", &p.MaxBacklog, DefaultMaxBacklog, 1, MaxMaxBacklog)
	bound("retries", &p.Retries, DefaultRetries, 0, MaxRetries)
	p.ChunkTimeout = strings.TrimSpace(p.ChunkTimeout)
	if p.ChunkTimeout == "" {
		p.ChunkTimeout = DefaultChunkTimeout.String()
		return
	}
	d, err := parseBoundedDuration(p.ChunkTimeout, MinChunkTimeout, MaxChunkTimeout)
	if err != "" {
		problems.add(field+".chunk_timeout", "%s", err)
		return
	}
	p.ChunkTimeout = d.String()
}

func (r *Request) normalizeChunking(given givenFunc, problems *RequestError) {
	c := &r.Chunking
	c.Duration = strings.TrimSpace(c.Duration)
	if c.Duration == "" {
		c.Duration = DefaultChunkDuration.String()
	} else if d, err := parseBoundedDuration(c.Duration, MinChunkDuration, MaxChunkDuration); err != "" {
		problems.add("chunking.duration", "%s", err)
	} else {
		c.Duration = d.String()
	}
	switch {
	case !given("chunking", "frame_rate"):
		c.FrameRate = DefaultFrameRate
	case c.FrameRate <= 0 || c.FrameRate > MaxFrameRate:
		problems.add("chunking.frame_rate", "must be above 0 and at most %g frames per second, got %g", MaxFrameRate, c.FrameRate)
	}
	if c.SceneThreshold < 0 || c.SceneThreshold > 1 {
		problems.add("chunking.scene_threshold", "must be between 0 (off) and 1, got %g", c.SceneThreshold)
	}
	c.Audio = strings.TrimSpace(c.Audio)
	switch c.Audio {
	case "":
		c.Audio = DefaultAudioFormat
	case DefaultAudioFormat, AudioFormatSource:
	default:
		problems.add("chunking.audio", "must be %q (16 kHz mono) or %q (the source's codec), got %q", DefaultAudioFormat, AudioFormatSource, truncate(c.Audio, 40))
	}
}

// normalize checks the window and stall timeout and fills in their
// defaults.
func (a *Aggregate) normalize(problems *RequestError) {
	bounded := func(field string, v *string, def, lo, hi time.Duration) {
		*v = strings.TrimSpace(*v)
		if *v == "" {
			*v = def.String()
			return
		}
		d, err := parseBoundedDuration(*v, lo, hi)
		if err != "" {
			problems.add(field, "%s", err)
			return
		}
		*v = d.String()
	}
	bounded("aggregate.window", &a.Window, DefaultWindow, MinWindow, MaxWindow)
	bounded("aggregate.stall_timeout", &a.StallTimeout, DefaultStallTimeout, MinStallTimeout, MaxStallTimeout)
}

// parseBoundedDuration parses a duration (protocol.ParseDuration syntax)
// within [lo, hi], or says why it cannot.
func parseBoundedDuration(s string, lo, hi time.Duration) (time.Duration, string) {
	d, err := protocol.ParseDuration(s)
	if err != nil {
		return 0, err.Error()
	}
	if d < lo || d > hi {
		return 0, fmt.Sprintf("must be between %s and %s, got %s", lo, hi, d)
	}
	return d, ""
}

// EngineLookup finds an engine of the registry; *engines.Catalog is one.
// Errors wrap engines.ErrNotFound for an unknown name.
type EngineLookup interface {
	Get(ctx context.Context, name string) (engines.Entry, error)
}

// ErrEngineUnavailable is wrapped by ResolveEngines' error when an engine
// of the request exists but cannot take work now.
var ErrEngineUnavailable = errors.New("engine unavailable")

// ResolveEngines looks up each engine of a parsed request, checks it can
// take work, and replaces its options by the ones its spec parses, with
// the spec's defaults filled in, as plain JSON values. An unknown engine
// or a bad option is a *RequestError naming the member
// ("engines[1].options.threshold"); an engine that is unavailable wraps
// ErrEngineUnavailable with the reason. It returns the entries in request
// order.
func (r *Request) ResolveEngines(ctx context.Context, lookup EngineLookup) ([]engines.Entry, error) {
	var problems RequestError
	var unavailable []string
	entries := make([]engines.Entry, len(r.Engines))
	for i := range r.Engines {
		e := &r.Engines[i]
		field := fmt.Sprintf("engines[%d]", i)
		entry, err := lookup.Get(ctx, e.Name)
		if errors.Is(err, engines.ErrNotFound) {
			problems.add(field+".name", "no engine is called %s; GET /engines lists them", e.Name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s.name: looking up engine %s: %w", field, e.Name, err)
		}
		entries[i] = entry
		switch {
		case entry.Spec.Mode == engine.ModeStream && entry.Kind != engines.KindBuiltin:
			problems.add(field+".name", "engine %s is an external stream engine; weir runs stream engines in-process only (built-in ones) for now", e.Name)
			continue
		case entry.Spec.Mode == engine.ModeBatch:
			problems.add(field+".name", "engine %s is a batch engine; jobs run chunk and stream engines for now", e.Name)
			continue
		}
		if msg := r.checkReads(i, entry.Spec); msg != "" {
			problems.add(field+".name", "%s", msg)
			continue
		}
		if entry.Status == engines.StatusUnavailable {
			unavailable = append(unavailable, fmt.Sprintf("%s.name: engine %s is unavailable: %s", field, e.Name, entry.Reason))
		}
		opts, err := entry.Spec.ParseOptions(e.Options)
		if err != nil {
			addOptionErrors(&problems, field+".options", err)
			continue
		}
		e.Options = opts.Map()
	}
	if len(problems.Problems) == 0 {
		r.resolveRoutes(entries, &problems)
	}
	if r.dag != nil {
		for i, p := range problems.Problems {
			problems.Problems[i] = r.dag.rename(p)
		}
	}
	if err := problems.errOrNil(); err != nil {
		return nil, err
	}
	if len(unavailable) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrEngineUnavailable, strings.Join(unavailable, "; "))
	}
	return entries, nil
}

// addOptionErrors turns Spec.ParseOptions' joined *engine.OptionError
// values into problems under field.
func addOptionErrors(problems *RequestError, field string, err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var oe *engine.OptionError
		if errors.As(e, &oe) {
			problems.add(joinField(field, oe.Option), "%s", oe.Problem)
			continue
		}
		problems.add(field, "%v", e)
	}
}

// DecodeSpec reads the request a job stored in metastore.Job.Spec. The
// stored request is normalized already (defaults filled, options parsed),
// so DecodeSpec fills nothing: an explicit "retries": 0 stays 0.
func DecodeSpec(raw json.RawMessage) (*Request, error) {
	var r Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("stored job request: %w", err)
	}
	if r.Source.Kind() == "" || len(r.Engines) == 0 {
		return nil, errors.New("stored job request: no source or no engines")
	}
	return &r, nil
}

// EngineNames lists the request's engines in order.
func (r *Request) EngineNames() []string {
	names := make([]string, len(r.Engines))
	for i, e := range r.Engines {
		names[i] = e.Name
	}
	return names
}

// Engine returns the request's engine called name.
func (r *Request) Engine(name string) (EngineRequest, bool) {
	i := slices.IndexFunc(r.Engines, func(e EngineRequest) bool { return e.Name == name })
	if i < 0 {
		return EngineRequest{}, false
	}
	return r.Engines[i], true
}
