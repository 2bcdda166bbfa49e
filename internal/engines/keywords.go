package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/weir-media/weir/engine"
	"github.com/weir-media/weir/internal/results"
	"github.com/weir-media/weir/protocol"
)

// The keywords engine spots words and phrases in what other engines found
// to be said or shown: a task DAG routes a transcript (stt's, or any
// engine's that writes transcript) or lines read on screen (ocr's text)
// to it, one parent output per chunk, and it answers each with a keyword
// object per phrase found, at the times of the utterance or line holding
// it. It reads no media, so it runs only behind a route (docs/results.md,
// "Task DAGs").

// keywordsSpec is the keywords engine's spec.
var keywordsSpec = engine.Spec{
	Name:    "keywords",
	Title:   "Keywords in transcripts and on-screen text",
	Mode:    engine.ModeChunk,
	Summary: "Spots words and phrases in the transcript or on-screen text routed to it, each as a keyword at the times of the utterance or line holding it",
	Description: "Reads the vtn-standard documents a task DAG routes to it from another engine (an " +
		"utterance of a transcript, the lines read on a frame) and finds each phrase of keywords in " +
		"their texts: whole words, in order, ignoring case, punctuation and extra spaces. Each " +
		"utterance or line holding a phrase gives one series with the utterance's or line's times, its " +
		"one word the phrase and an object of type keyword (the shape stt's keyword spotting writes), " +
		"so search, exports and the console's timeline show it as a keyword. A document with no " +
		"phrase answers with nothing found. It reads no media, so it is not run on a job's source; " +
		"route an engine's transcript or text output to it.",
	Inputs:  []string{engine.DocumentMimeType("transcript"), engine.DocumentMimeType("text")},
	Outputs: []string{"object"},
	Options: []engine.Option{
		{Name: "keywords", Type: engine.TypeList, Required: true,
			Doc: fmt.Sprintf("Words and phrases to spot (at most %d, each at most %d characters); matched as whole words, ignoring case", maxKeywords, maxKeywordLen)},
	},
	Examples: []engine.Example{
		{Title: "Spot two phrases in a transcript", Options: map[string]any{"keywords": []any{"tomorrow morning", "weather"}}},
	},
}

// Limits of the keywords option.
const (
	maxKeywords   = 1000
	maxKeywordLen = 200
	// maxKeywordDocBytes bounds a routed document.
	maxKeywordDocBytes = 16 << 20
)

func init() {
	engine.Register(keywordsSpec, engine.ChunkFactory(func() (engine.ChunkEngine, error) { return keywordsEngine{}, nil }))
}

// keywordsEngine is the keywords engine. It keeps no state.
type keywordsEngine struct{}

// keyPhrase is one phrase to spot: as given (cleaned) and as words.
type keyPhrase struct {
	text  string
	words []string
}

// Process implements engine.ChunkEngine.
func (keywordsEngine) Process(ctx context.Context, c *engine.Chunk, opts engine.Options) (*protocol.Document, error) {
	phrases, err := keyPhrases(opts.List("keywords"))
	if err != nil {
		return nil, err
	}
	if _, ok := engine.DocumentOutputType(c.Meta.MimeType); !ok {
		return nil, fmt.Errorf("chunk %s is %s, not another engine's document: %w", c.Meta.ChunkUUID, c.Meta.MimeType, engine.ErrIgnored)
	}
	doc, err := readRoutedDocument(c)
	if err != nil {
		return nil, err
	}
	return spotKeywords(doc, phrases, c.Meta.StartOffsetMs, c.DurationMs()), nil
}

// keyPhrases cleans and checks the keywords option.
func keyPhrases(list []string) ([]keyPhrase, error) {
	if len(list) == 0 {
		return nil, errors.New("keywords: give at least one word or phrase")
	}
	if len(list) > maxKeywords {
		return nil, fmt.Errorf("keywords: %d phrases, more than %d", len(list), maxKeywords)
	}
	var out []keyPhrase
	for i, k := range list {
		if len([]rune(k)) > maxKeywordLen {
			return nil, fmt.Errorf("keywords[%d]: longer than %d characters", i, maxKeywordLen)
		}
		words := keywordWords(k)
		if len(words) == 0 {
			return nil, fmt.Errorf("keywords[%d]: %q has no word (letters or digits)", i, k)
		}
		out = append(out, keyPhrase{text: strings.Join(words, " "), words: words})
	}
	return out, nil
}

// keywordWords splits s into lower-case words: runs of letters, digits and
// combining marks.
func keywordWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
}

// readRoutedDocument reads the vtn-standard document a routed chunk holds.
func readRoutedDocument(c *engine.Chunk) (*protocol.Document, error) {
	r, err := c.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxKeywordDocBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeywordDocBytes {
		return nil, fmt.Errorf("the routed document is larger than %d bytes", maxKeywordDocBytes)
	}
	var doc protocol.Document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("the routed document is not a vtn-standard document: %w", err)
	}
	return &doc, nil
}

// spotKeywords finds the phrases in the document's texts (utterances,
// lines on screen; results.Texts reads them) and answers a series per text
// and phrase found, with the text's times made relative to the chunk's
// start and kept within the chunk.
func spotKeywords(doc *protocol.Document, phrases []keyPhrase, startMs, durMs int64) *protocol.Document {
	var series []protocol.Series
	for _, t := range results.Texts(doc) {
		if t.Kind == results.KindKeyword {
			continue // a keyword found by another engine is not a text to search
		}
		words := keywordWords(t.Text)
		from := min(max(t.StartMs-startMs, 0), durMs)
		to := min(max(t.EndMs-startMs, from), durMs)
		for _, p := range phrases {
			if !containsWords(words, p.words) {
				continue
			}
			series = append(series, protocol.Series{StartTimeMs: from, StopTimeMs: to,
				Tags:   []protocol.Tag{{Key: "in", Value: t.Kind}},
				Words:  []protocol.Word{{Word: p.text, BestPath: true, UtteranceLength: int64(len(p.words))}},
				Object: &protocol.Object{Type: "keyword", Label: p.text, Text: p.text}})
		}
	}
	if len(series) == 0 {
		return nil
	}
	slices.SortStableFunc(series, func(a, b protocol.Series) int { return cmpInt(a.StartTimeMs, b.StartTimeMs) })
	return &protocol.Document{Series: series}
}

// containsWords reports whether phrase occurs in words, word for word.
func containsWords(words, phrase []string) bool {
	for i := 0; i+len(phrase) <= len(words); i++ {
		if slices.Equal(words[i:i+len(phrase)], phrase) {
			return true
		}
	}
	return false
}
