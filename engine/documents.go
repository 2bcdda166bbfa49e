package engine

import "strings"

// Engines that read other engines' results. In a job's task DAG (docs/
// results.md, "Task DAGs") a route may carry one engine's outputs to
// another engine as chunks: each engine_output of the parent becomes one
// media_chunk for the child, holding the parent's vtn-standard document
// (series times on the recording's timeline) and spanning the parent
// output's times. Such a chunk's MIME type names the parent's output type,
// DocumentMimeType(outputType), and a chunk engine declares which outputs
// it reads by listing those types among its Inputs:
//
//	Inputs: []string{engine.DocumentMimeType("transcript")}
//
// reads transcripts ("application/vnd.vtn.transcript+json").

// documentMimePrefix and documentMimeSuffix frame an output type in the
// MIME type of a routed document.
const (
	documentMimePrefix = "application/vnd.vtn."
	documentMimeSuffix = "+json"
)

// DocumentMimeType is the MIME type of a chunk holding another engine's
// vtn-standard document of output type outputType:
// "application/vnd.vtn.<outputType>+json".
func DocumentMimeType(outputType string) string {
	return documentMimePrefix + outputType + documentMimeSuffix
}

// DocumentOutputType is the output type a routed document's MIME type
// names, and whether mimeType is one (DocumentMimeType's inverse).
func DocumentOutputType(mimeType string) (string, bool) {
	mt := strings.ToLower(strings.TrimSpace(mimeType))
	if !strings.HasPrefix(mt, documentMimePrefix) || !strings.HasSuffix(mt, documentMimeSuffix) {
		return "", false
	}
	t := strings.TrimSuffix(strings.TrimPrefix(mt, documentMimePrefix), documentMimeSuffix)
	if !outputType.MatchString(t) {
		return "", false
	}
	return t, true
}

// ReadsOutputs lists the output types of other engines the spec reads
// (its Inputs of the form DocumentMimeType(t)), in the order of its
// Inputs.
func (s Spec) ReadsOutputs() []string {
	var out []string
	for _, in := range s.Inputs {
		if t, ok := DocumentOutputType(in); ok {
			out = append(out, t)
		}
	}
	return out
}
