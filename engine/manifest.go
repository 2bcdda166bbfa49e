package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weir-media/weir/protocol"
)

// Manifest registers an engine that runs outside weir: its spec, in the
// same JSON members as Spec, plus how weir reaches it, which is exactly one
// of
//
//   - kafka: the engine is a Kafka client. It consumes its work from Topic
//     in consumer group Group (by default chunk_<name> and
//     weir_engine_<name>, protocol.ChunkTopic and protocol.EngineGroup) and
//     writes engine_output and chunk_processed_status messages as
//     docs/protocol.md describes.
//   - http: the engine is a web service with the two webhooks of
//     Veritone's engine toolkit, GET <url>/ready (200 once it can take
//     work) and POST <url>/process (one chunk in, a vtn-standard document
//     out).
//
// A manifest is written in YAML or JSON:
//
//	name: whisper
//	title: Whisper speech recognition
//	engineMode: chunk
//	summary: Transcribes speech
//	inputs: [audio/wav]
//	outputs: [transcript]
//	options:
//	  - {name: language, type: string, default: en, doc: Spoken language (ISO 639-1)}
//	http:
//	  url: http://127.0.0.1:8888
//
// Requires may be given for the record, but weir does not check it: the
// programs an external engine runs are on its own machine.
type Manifest struct {
	Spec
	HTTP  *HTTPEndpoint  `json:"http,omitempty"`
	Kafka *KafkaEndpoint `json:"kafka,omitempty"`
}

// HTTPEndpoint reaches an engine through Veritone engine toolkit webhooks.
type HTTPEndpoint struct {
	// URL is the engine's base URL, http or https, without credentials,
	// query or fragment.
	URL string `json:"url"`
}

// ReadyURL is the readiness webhook: GET answers 200 when the engine can
// take work.
func (h HTTPEndpoint) ReadyURL() string { return strings.TrimRight(h.URL, "/") + "/ready" }

// ProcessURL is the process webhook: POST hands the engine one chunk.
func (h HTTPEndpoint) ProcessURL() string { return strings.TrimRight(h.URL, "/") + "/process" }

// KafkaEndpoint reaches an engine that is a Kafka client.
type KafkaEndpoint struct {
	// Topic is where weir writes the engine's work; ParseManifest fills in
	// protocol.ChunkTopic(name) when it is empty.
	Topic string `json:"topic,omitempty"`
	// Group is the consumer group the engine's instances share;
	// ParseManifest fills in protocol.EngineGroup(name) when empty.
	Group string `json:"group,omitempty"`
}

// MaxManifestBytes is the largest manifest ParseManifest reads.
const MaxManifestBytes = 1 << 20

// ParseManifest reads a manifest in JSON (when it starts with '{') or YAML,
// checks it and returns it with its spec normalized and the Kafka defaults
// filled in. Members are matched exactly: a misspelt or unknown member is
// an error, not ignored. Errors are *SpecError values naming the member at
// fault, as in
//
//	engine "whisper": options[0].type: "number" is not one of string, int, float, bool, duration, list
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, &SpecError{Problem: fmt.Sprintf("manifest is %d bytes, more than %d", len(data), MaxManifestBytes)}
	}
	tree, err := decodeTree(data)
	if err != nil {
		return nil, &SpecError{Problem: err.Error()}
	}
	name, _ := tree["name"].(string)
	if field, problem := manifestSchema.check(tree, ""); problem != "" {
		return nil, &SpecError{Engine: name, Field: field, Problem: problem}
	}
	// The tree now has the shape of a Manifest; encoding/json does the
	// rest without type errors.
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, &SpecError{Engine: name, Problem: err.Error()}
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &SpecError{Engine: name, Problem: err.Error()}
	}
	if err := m.normalize(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the spec and the endpoint: exactly one of http and
// kafka, a plain http(s) URL, a legal topic name.
func (m *Manifest) Validate() error {
	c := *m
	return c.normalize()
}

// normalize validates m and brings it to its stored form.
func (m *Manifest) normalize() error {
	spec, err := m.Spec.normalized()
	if err != nil {
		return err
	}
	fail := func(field, format string, args ...any) error {
		return &SpecError{Engine: m.Name, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case m.HTTP == nil && m.Kafka == nil:
		return fail("", "say how weir reaches the engine: http (its base URL) or kafka (its topic and group)")
	case m.HTTP != nil && m.Kafka != nil:
		return fail("kafka", "give http or kafka, not both")
	case m.HTTP != nil:
		u, err := url.Parse(m.HTTP.URL)
		switch {
		case m.HTTP.URL == "":
			return fail("http.url", "is required: the engine's base URL, such as http://127.0.0.1:8888")
		case err != nil:
			return fail("http.url", "%q is not a URL: %v", m.HTTP.URL, err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			return fail("http.url", "%q must be an http:// or https:// URL with a host", m.HTTP.URL)
		case u.User != nil:
			return fail("http.url", "must not carry credentials: manifests are shown to anyone who can read the API")
		case u.RawQuery != "" || u.Fragment != "":
			return fail("http.url", "%q must be a base URL without query or fragment (weir appends /ready and /process)", m.HTTP.URL)
		}
		h := *m.HTTP
		m.HTTP = &h
	case m.Kafka != nil:
		k := *m.Kafka
		if k.Topic == "" {
			k.Topic = protocol.ChunkTopic(m.Name)
		}
		if err := protocol.ValidateTopic(k.Topic); err != nil {
			return fail("kafka.topic", "%v", err)
		}
		if k.Group == "" {
			k.Group = protocol.EngineGroup(m.Name)
		}
		if len(k.Group) > 255 || strings.TrimSpace(k.Group) != k.Group {
			return fail("kafka.group", "%q must be at most 255 characters without surrounding spaces", k.Group)
		}
		m.Kafka = &k
	}
	m.Spec = spec
	return nil
}

// decodeTree decodes JSON or YAML into maps, slices and scalars, with
// string keys only.
func decodeTree(data []byte) (map[string]any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("manifest is empty")
	}
	var v any
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("manifest is not valid JSON: %v", err)
		}
		if dec.More() {
			return nil, fmt.Errorf("manifest is not valid JSON: data after the object")
		}
	} else {
		if err := yaml.Unmarshal(trimmed, &v); err != nil {
			return nil, fmt.Errorf("manifest is not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		var err error
		if v, err = jsonTree(v, ""); err != nil {
			return nil, err
		}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("manifest must be an object (a YAML mapping), got %s", describe(v))
	}
	return obj, nil
}

// jsonTree turns what yaml.v3 decodes into what encoding/json would:
// mappings with string keys, numbers as int or float64.
func jsonTree(v any, path string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, item := range x {
			c, err := jsonTree(item, joinPath(path, k))
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v must be a string", orTop(path), k)
			}
			c, err := jsonTree(item, joinPath(path, ks))
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		for i, item := range x {
			c, err := jsonTree(item, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case nil, string, bool, int, int64, uint64, float64:
		return x, nil
	}
	// Timestamps and binary: keep their text, as a JSON manifest would
	// have to write them.
	return fmt.Sprint(v), nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "manifest"
	}
	return path
}

// shape is what a manifest member may hold.
type shape struct {
	kind   string           // "string", "bool", "strings", "any", "object", "array", "map"
	fields map[string]shape // of an object
	elem   *shape           // of an array
}

var (
	str     = shape{kind: "string"}
	boolean = shape{kind: "bool"}
	strs    = shape{kind: "strings"}
	anyVal  = shape{kind: "any"}

	manifestSchema = shape{kind: "object", fields: map[string]shape{
		"name": str, "title": str, "engineMode": str, "summary": str, "description": str,
		"inputs": strs, "outputs": strs,
		"options": {kind: "array", elem: &shape{kind: "object", fields: map[string]shape{
			"name": str, "type": str, "default": anyVal, "required": boolean, "doc": str,
			"enum": strs, "min": anyVal, "max": anyVal,
		}}},
		"examples": {kind: "array", elem: &shape{kind: "object", fields: map[string]shape{
			"title": str, "options": {kind: "map"},
		}}},
		"requires": {kind: "array", elem: &shape{kind: "object", fields: map[string]shape{
			"command": str, "file": str, "debianPackage": str, "why": str,
		}}},
		"http":  {kind: "object", fields: map[string]shape{"url": str}},
		"kafka": {kind: "object", fields: map[string]shape{"topic": str, "group": str}},
	}}
)

// check reports the first member of v, at path, that does not fit the
// shape: its path and the problem.
func (s shape) check(v any, path string) (string, string) {
	if v == nil && s.kind != "any" {
		return "", "" // null is absent, as encoding/json treats it
	}
	switch s.kind {
	case "any":
		return "", ""
	case "string":
		if _, ok := v.(string); !ok {
			return path, "want a string, got " + describe(v)
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return path, "want true or false, got " + describe(v)
		}
	case "strings":
		list, ok := v.([]any)
		if !ok {
			return path, "want a list of strings, got " + describe(v)
		}
		for i, item := range list {
			if _, ok := item.(string); !ok {
				return fmt.Sprintf("%s[%d]", path, i), "want a string, got " + describe(item)
			}
		}
	case "map":
		if _, ok := v.(map[string]any); !ok {
			return path, "want an object, got " + describe(v)
		}
	case "array":
		list, ok := v.([]any)
		if !ok {
			return path, "want a list, got " + describe(v)
		}
		for i, item := range list {
			if f, p := s.elem.check(item, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return f, p
			}
		}
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return path, "want an object, got " + describe(v)
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub, known := s.fields[k]
			if !known {
				return joinPath(path, k), "unknown member (known: " + strings.Join(s.names(), ", ") + ")"
			}
			if f, p := sub.check(obj[k], joinPath(path, k)); p != "" {
				return f, p
			}
		}
	}
	return "", ""
}

func (s shape) names() []string {
	names := make([]string, 0, len(s.fields))
	for k := range s.fields {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
