package results

import (
	"errors"
	"fmt"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds what search needs on both sides of the metadata store:
// the query language (ParseQuery), the text an index keeps (IndexText) and
// the snippet a hit shows (Snippet).

// Limits of a search query.
const (
	// MaxQueryBytes is the longest query, in bytes.
	MaxQueryBytes = 1000
	// MaxQueryWords is the most words a query may hold, phrases included.
	MaxQueryWords = 32
	// MinPrefixRunes is the shortest last word that also matches as a
	// prefix ("coff" finds "coffee").
	MinPrefixRunes = 2
)

// ErrQuery is wrapped by every error ParseQuery returns: the query cannot
// be searched for as written. The REST layer answers it with 400.
var ErrQuery = errors.New("bad search query")

// Query is a parsed search query: every term must match a text.
type Query struct {
	Terms []Term
}

// Term is one thing a hit must contain: a word, or a phrase (words in
// that order, next to each other).
type Term struct {
	// Words are lower-case runs of letters and digits (a letter or digit
	// followed by letters, digits and combining marks).
	Words []string
	// Phrase is set for a quoted term of more than one word.
	Phrase bool
	// Prefix is set on the query's last word when it was typed without a
	// space after it: it also matches the words it begins.
	Prefix bool
}

// ParseQuery reads a search query:
//
//   - plain words, separated by anything that is not a letter or digit,
//     must all be found (in any order);
//   - "a quoted phrase" must be found as written, word after word; a
//     quote left open runs to the end of the query;
//   - the last word, when nothing follows it (not even a space) and it
//     has at least MinPrefixRunes letters, also matches as a prefix.
//
// Nothing else has a meaning: AND, OR, NOT, NEAR, '*', '-', ':' and
// parentheses are words or separators like any other, so no query can
// reach the search engine's own syntax. An empty query, one longer than
// MaxQueryBytes or with more than MaxQueryWords words, one that is not
// UTF-8 or holds a NUL byte fails with ErrQuery, as does one with no word
// in it.
func ParseQuery(s string) (Query, error) {
	switch {
	case len(s) > MaxQueryBytes:
		return Query{}, fmt.Errorf("%w: the query is %d bytes, longer than the %d allowed", ErrQuery, len(s), MaxQueryBytes)
	case strings.IndexByte(s, 0) >= 0:
		return Query{}, fmt.Errorf("%w: the query holds a NUL byte", ErrQuery)
	case !utf8.ValidString(s):
		return Query{}, fmt.Errorf("%w: the query is not UTF-8 text", ErrQuery)
	case strings.TrimSpace(s) == "":
		return Query{}, fmt.Errorf("%w: the query is empty; give words to search for", ErrQuery)
	}
	var q Query
	words := 0
	rest := s
	for rest != "" {
		var part string
		phrase := false
		if i := strings.IndexByte(rest, '"'); i == 0 {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				part, rest = rest[1:], ""
			} else {
				part, rest = rest[1:1+end], rest[2+end:]
			}
			phrase = true
		} else if i > 0 {
			part, rest = rest[:i], rest[i:]
		} else {
			part, rest = rest, ""
		}
		ws := splitWords(part)
		words += len(ws)
		if words > MaxQueryWords {
			return Query{}, fmt.Errorf("%w: the query has more than %d words", ErrQuery, MaxQueryWords)
		}
		if phrase && len(ws) > 1 {
			q.Terms = append(q.Terms, Term{Words: ws, Phrase: true})
			continue
		}
		for _, w := range ws {
			q.Terms = append(q.Terms, Term{Words: []string{w}})
		}
		if !phrase && rest == "" && len(ws) > 0 && endsInWord(part) && utf8.RuneCountInString(ws[len(ws)-1]) >= MinPrefixRunes {
			q.Terms[len(q.Terms)-1].Prefix = true
		}
	}
	if len(q.Terms) == 0 {
		return Query{}, fmt.Errorf("%w: the query %.60q has no word (letters or digits) to search for", ErrQuery, s)
	}
	return q, nil
}

// splitWords cuts s into words: a letter or digit, then letters, digits
// and combining marks.
func splitWords(s string) []string {
	var out []string
	start := -1
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if start < 0 {
				start = i
			}
		case unicode.Is(unicode.M, r) && start >= 0:
		default:
			if start >= 0 {
				out = append(out, strings.ToLower(s[start:i]))
				start = -1
			}
		}
	}
	if start >= 0 {
		out = append(out, strings.ToLower(s[start:]))
	}
	return out
}

// endsInWord reports whether s ends with a letter, digit or mark.
func endsInWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}

// String writes q back in its canonical form: words in lower case,
// phrases quoted, a prefix word marked with '*'. Two queries that search
// for the same thing have the same String.
func (q Query) String() string {
	var b strings.Builder
	for i, t := range q.Terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		w := strings.Join(t.Words, " ")
		switch {
		case t.Phrase:
			b.WriteString(`"` + w + `"`)
		case t.Prefix:
			b.WriteString(w + "*")
		default:
			b.WriteString(w)
		}
	}
	return b.String()
}

// Marks the search index puts around the matched words of a text, which
// Snippet turns into HTML. IndexText keeps them out of indexed texts.
const (
	MarkOpen  = "\x02"
	MarkClose = "\x03"
)

// IndexText is the form of a text the search index keeps: control
// characters (which include MarkOpen and MarkClose, and NUL, which
// PostgreSQL cannot store) become spaces, and white space is collapsed.
func IndexText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return clean(s)
}

// SnippetWords is the most words a snippet shows.
const SnippetWords = 32

// Snippet makes the snippet of a hit from its text with the matched words
// between MarkOpen and MarkClose: HTML-escaped text with each match in
// <mark></mark>, cut to SnippetWords words around the first match ("…"
// where it was cut).
func Snippet(marked string) string {
	words := strings.Fields(marked)
	first := 0
	for i, w := range words {
		if strings.Contains(w, MarkOpen) {
			first = i
			break
		}
	}
	from, to := 0, len(words)
	if len(words) > SnippetWords {
		from = max(0, first-SnippetWords/4)
		to = min(len(words), from+SnippetWords)
		from = max(0, to-SnippetWords)
	}
	// A match the window cuts in half keeps its marks balanced.
	before := strings.Join(words[:from], " ")
	open := strings.LastIndex(before, MarkOpen) > strings.LastIndex(before, MarkClose)
	var b strings.Builder
	if from > 0 {
		b.WriteString("… ")
	}
	if open {
		b.WriteString("<mark>")
	}
	inside := open
	for i, w := range words[from:to] {
		if i > 0 {
			b.WriteByte(' ')
		}
		for _, r := range w {
			switch string(r) {
			case MarkOpen:
				if !inside {
					b.WriteString("<mark>")
					inside = true
				}
			case MarkClose:
				if inside {
					b.WriteString("</mark>")
					inside = false
				}
			default:
				b.WriteString(html.EscapeString(string(r)))
			}
		}
	}
	if inside {
		b.WriteString("</mark>")
	}
	if to < len(words) {
		b.WriteString(" …")
	}
	return b.String()
}
