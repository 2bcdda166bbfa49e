package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// Document is a vtn-standard engine output document, the usual content of
// an engine_output. Only the members weir reads are fields; everything else
// a document may hold (sentiment, emotions, gps, vendor data, ...) is kept
// in Extra at each level and written back unchanged, so an engine can use
// any part of the standard.
type Document struct {
	SchemaID         string   `json:"schemaId,omitempty"`
	SourceEngineID   string   `json:"sourceEngineId,omitempty"`
	SourceEngineName string   `json:"sourceEngineName,omitempty"`
	TaskID           string   `json:"taskId,omitempty"`
	GeneratedDateUTC string   `json:"generatedDateUtc,omitempty"` // ISO 8601
	Language         string   `json:"language,omitempty"`         // BCP 47
	Tags             []Tag    `json:"tags,omitempty"`
	Object           []Object `json:"object,omitempty"` // objects of the whole file, not tied to a time
	Series           []Series `json:"series,omitempty"` // time-coded results

	Extra map[string]json.RawMessage `json:"-"`
}

// Series is one time slice of a document: a span of media time and what
// was found in it, such as the words spoken or an object seen.
type Series struct {
	StartTimeMs int64   `json:"startTimeMs"` // relative to the start of the TDO
	StopTimeMs  int64   `json:"stopTimeMs"`
	SpeakerID   string  `json:"speakerId,omitempty"`
	Language    string  `json:"language,omitempty"`
	Tags        []Tag   `json:"tags,omitempty"`
	Words       []Word  `json:"words,omitempty"` // alternatives for the utterance in this slice
	Object      *Object `json:"object,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// Word is one transcript alternative.
type Word struct {
	Word            string  `json:"word"`
	Confidence      float64 `json:"confidence,omitempty"` // 0 to 1
	BestPath        bool    `json:"bestPath,omitempty"`
	UtteranceLength int64   `json:"utteranceLength,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// Object is something detected: a face, a logo, text read by OCR, a
// fingerprint match, a keyword. Type says which ("object", "face", "text",
// "fingerprint", "keyword", ...).
type Object struct {
	Type         string  `json:"type"`
	Label        string  `json:"label,omitempty"`
	Text         string  `json:"text,omitempty"`
	URI          string  `json:"uri,omitempty"`
	EntityID     string  `json:"entityId,omitempty"`
	LibraryID    string  `json:"libraryId,omitempty"`
	Confidence   float64 `json:"confidence,omitempty"` // 0 to 1
	BoundingPoly []Point `json:"boundingPoly,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// Point is a vertex of a bounding polygon, in fractions of the frame's
// width and height.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Tag is a key/value label ("silence", "speech", "moderation:adult").
// Value is optional and means true when empty; a boolean or numeric value
// from another producer decodes to its JSON text ("true", "0.5").
type Tag struct {
	Key   string  `json:"key"`
	Value string  `json:"value,omitempty"`
	Score float64 `json:"score,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// Validate checks that every series is a time range: stopTimeMs >=
// startTimeMs >= 0.
func (d *Document) Validate() error { return d.validate("vtn-standard") }

func (d *Document) validate(ctx string) error {
	for i, s := range d.Series {
		if s.StartTimeMs < 0 {
			return &FieldError{Context: ctx, Field: fmt.Sprintf("series[%d].startTimeMs", i),
				Problem: fmt.Sprintf("must not be negative, got %d", s.StartTimeMs)}
		}
		if s.StopTimeMs < s.StartTimeMs {
			return &FieldError{Context: ctx, Field: fmt.Sprintf("series[%d].stopTimeMs", i),
				Problem: fmt.Sprintf("must not be before startTimeMs (%d), got %d", s.StartTimeMs, s.StopTimeMs)}
		}
	}
	return nil
}

func (d Document) MarshalJSON() ([]byte, error) {
	type plain Document
	return marshalObject(plain(d), d.Extra)
}

func (d *Document) UnmarshalJSON(b []byte) error {
	type plain Document
	return unmarshalObject(b, (*plain)(d), &d.Extra)
}

func (s Series) MarshalJSON() ([]byte, error) {
	type plain Series
	return marshalObject(plain(s), s.Extra)
}

func (s *Series) UnmarshalJSON(b []byte) error {
	type plain Series
	return unmarshalObject(b, (*plain)(s), &s.Extra)
}

func (w Word) MarshalJSON() ([]byte, error) {
	type plain Word
	return marshalObject(plain(w), w.Extra)
}

func (w *Word) UnmarshalJSON(b []byte) error {
	type plain Word
	return unmarshalObject(b, (*plain)(w), &w.Extra)
}

func (o Object) MarshalJSON() ([]byte, error) {
	type plain Object
	return marshalObject(plain(o), o.Extra)
}

func (o *Object) UnmarshalJSON(b []byte) error {
	type plain Object
	return unmarshalObject(b, (*plain)(o), &o.Extra)
}

func (t Tag) MarshalJSON() ([]byte, error) {
	type plain Tag
	return marshalObject(plain(t), t.Extra)
}

func (t *Tag) UnmarshalJSON(b []byte) error {
	type plain Tag
	var v struct {
		plain
		Value json.RawMessage `json:"value"` // shadows plain.Value to accept any scalar
	}
	if string(b) == "null" {
		return nil
	}
	if err := unmarshalObject(b, &v, &v.Extra); err != nil {
		return err
	}
	*t = Tag(v.plain)
	t.Value = ""
	switch {
	case len(v.Value) == 0 || v.Value[0] == 'n':
	case v.Value[0] == '"':
		return json.Unmarshal(v.Value, &t.Value)
	case v.Value[0] == '{':
		return &json.UnmarshalTypeError{Value: "object", Type: reflect.TypeFor[string](), Field: "value"}
	case v.Value[0] == '[':
		return &json.UnmarshalTypeError{Value: "array", Type: reflect.TypeFor[string](), Field: "value"}
	default:
		t.Value = string(v.Value) // true, false or a number, verbatim
	}
	return nil
}
