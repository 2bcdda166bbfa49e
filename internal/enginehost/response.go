package enginehost

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/weir-media/weir/protocol"
)

// ParseResponse reads an HTTP engine's 200 answer: one vtn-standard
// document, a JSON object whose series are valid time ranges. Errors wrap
// ErrMalformedOutput and name the problem, as in
//
//	malformed output: invalid JSON: unexpected end of JSON input
//	malformed output: vtn-standard: field "series[0].stopTimeMs": must not be before startTimeMs (500), got 100
func ParseResponse(body []byte) (*protocol.Document, error) {
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return nil, fmt.Errorf("%w: empty body, want a vtn-standard JSON document", ErrMalformedOutput)
	case trimmed[0] != '{':
		return nil, fmt.Errorf("%w: want a JSON object (a vtn-standard document), got %s", ErrMalformedOutput, describe(trimmed))
	}
	var doc protocol.Document
	if err := json.Unmarshal(trimmed, &doc); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON: %v", ErrMalformedOutput, err)
	}
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedOutput, err)
	}
	return &doc, nil
}

// describe names what a JSON value starts as, for error messages.
func describe(b []byte) string {
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	if b[0] == '-' || b[0] >= '0' && b[0] <= '9' {
		return "a number"
	}
	start := b[:min(len(b), 24)]
	return fmt.Sprintf("%q", start)
}
