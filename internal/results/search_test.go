package results

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseQueryReadsWordsPhrasesAndTheLastPrefix(t *testing.T) {
	w := func(words ...string) Term { return Term{Words: words} }
	p := func(words ...string) Term { return Term{Words: words, Phrase: true} }
	pre := func(word string) Term { return Term{Words: []string{word}, Prefix: true} }
	cases := []struct {
		in   string
		want []Term
		str  string
	}{
		{"coffee", []Term{pre("coffee")}, "coffee*"},
		{"coffee ", []Term{w("coffee")}, "coffee"},
		{"Cup of COFFEE", []Term{w("cup"), w("of"), pre("coffee")}, "cup of coffee*"},
		{`"cup of coffee" please`, []Term{p("cup", "of", "coffee"), pre("please")}, `"cup of coffee" please*`},
		{`i would "like a`, []Term{w("i"), w("would"), p("like", "a")}, `i would "like a"`},
		{`"single"`, []Term{w("single")}, "single"},
		{`a`, []Term{w("a")}, "a"},
		{`o'clock`, []Term{w("o"), pre("clock")}, "o clock*"},
		{`news AND (weather OR "sports") NOT -x*`, []Term{w("news"), w("and"), w("weather"), w("or"), w("sports"), w("not"), w("x")}, "news and weather or sports not x"},
		{`café Zürich`, []Term{w("café"), pre("zürich")}, "café zürich*"},
		{"cafe\u0301 noir", []Term{w("cafe\u0301"), pre("noir")}, "cafe\u0301 noir*"},
		{`NEAR(a b, 2)`, []Term{w("near"), w("a"), w("b"), w("2")}, "near a b 2"},
		{"tab\tand\nnewline", []Term{w("tab"), w("and"), pre("newline")}, "tab and newline*"},
		{`""x""`, []Term{w("x")}, "x"},
	}
	for _, c := range cases {
		q, err := ParseQuery(c.in)
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(q.Terms, c.want) {
			t.Errorf("ParseQuery(%q) = %+v, want %+v", c.in, q.Terms, c.want)
		}
		if got := q.String(); got != c.str {
			t.Errorf("ParseQuery(%q).String() = %q, want %q", c.in, got, c.str)
		}
	}
}

func TestParseQueryRefusesWhatCannotBeSearched(t *testing.T) {
	cases := map[string]string{
		"":                                    "empty",
		"   \t":                               "empty",
		strings.Repeat("word ", 2048):         "10240 bytes, longer than the 1000 allowed",
		"bad\x00byte":                         "NUL byte",
		"bad \xff utf8":                       "not UTF-8",
		`"" * - () :`:                         "has no word",
		strings.Repeat("w ", MaxQueryWords+1): "more than 32 words",
		"🙂 🙂":                                 "has no word",
	}
	for in, want := range cases {
		_, err := ParseQuery(in)
		if !errors.Is(err, ErrQuery) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseQuery(%.40q) = %v, want ErrQuery saying %q", in, err, want)
		}
	}
}

func TestIndexTextDropsControlsAndMarks(t *testing.T) {
	got := IndexText("  a\x00b" + MarkOpen + "c" + MarkClose + "\td\n\u200be ")
	if got != "a b c d \u200be" {
		t.Fatalf("IndexText = %q", got)
	}
}

func TestSnippetMarksAndEscapes(t *testing.T) {
	m := func(s string) string { return MarkOpen + s + MarkClose }
	cases := []struct{ in, want string }{
		{"i would like a " + m("cup") + " of " + m("coffee"), "i would like a <mark>cup</mark> of <mark>coffee</mark>"},
		{"<b> & " + m("x") + ">", "&lt;b&gt; &amp; <mark>x</mark>&gt;"},
		{m("two words"), "<mark>two words</mark>"},
		{"no match at all", "no match at all"},
		{m("open"), "<mark>open</mark>"},
		{MarkOpen + "never closed", "<mark>never closed</mark>"},
	}
	for _, c := range cases {
		if got := Snippet(c.in); got != c.want {
			t.Errorf("Snippet(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// A long text is cut around its first match, with the cuts shown.
	var words []string
	for i := range 100 {
		words = append(words, "w"+strings.Repeat("x", i%3))
	}
	words[60] = m("needle")
	got := Snippet(strings.Join(words, " "))
	if !strings.HasPrefix(got, "… ") || !strings.HasSuffix(got, " …") || !strings.Contains(got, "<mark>needle</mark>") {
		t.Fatalf("long snippet %q", got)
	}
	if n := len(strings.Fields(got)); n != SnippetWords+2 {
		t.Fatalf("long snippet has %d words, want %d and two ellipses", n, SnippetWords)
	}
	// A match the window cuts keeps balanced marks.
	words[60] = MarkOpen + "start"
	words[99] = "end" + MarkClose
	if got := Snippet(strings.Join(words, " ")); strings.Count(got, "<mark>") != strings.Count(got, "</mark>") {
		t.Fatalf("unbalanced marks in %q", got)
	}
}

// FuzzParseQuery feeds search queries, which come from anyone: parsing
// never panics, a parsed query holds only words of letters, digits and
// marks (so nothing of a search engine's syntax), and its canonical form
// parses back to the same words.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"coffee", `"cup of coffee" please`, `a AND b OR NOT c NEAR(d e)`, `"unclosed phrase`,
		`x* -y ^z col:w`, "\x00", "\xff\xfe", `""""`, "café \u0301x", strings.Repeat("a ", 40), `'; DROP TABLE results; --`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			if !errors.Is(err, ErrQuery) {
				t.Fatalf("error %v is not ErrQuery", err)
			}
			return
		}
		if len(q.Terms) == 0 {
			t.Fatal("a parsed query without terms")
		}
		n := 0
		for i, term := range q.Terms {
			n += len(term.Words)
			if term.Prefix && (i != len(q.Terms)-1 || term.Phrase) {
				t.Fatalf("prefix on term %d of %d: %+v", i, len(q.Terms), q.Terms)
			}
			for _, w := range term.Words {
				first, _ := utf8.DecodeRuneInString(w)
				if w == "" || !(unicode.IsLetter(first) || unicode.IsDigit(first)) {
					t.Fatalf("word %q does not start with a letter or digit", w)
				}
				for _, r := range w {
					if !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)) {
						t.Fatalf("word %q holds %q", w, r)
					}
				}
			}
		}
		if n > MaxQueryWords {
			t.Fatalf("%d words", n)
		}
		again, err := ParseQuery(q.String())
		if err != nil {
			t.Fatalf("canonical form %q: %v", q.String(), err)
		}
		strip := func(ts []Term) []Term {
			out := make([]Term, len(ts))
			for i, t := range ts {
				out[i] = Term{Words: t.Words, Phrase: t.Phrase}
			}
			return out
		}
		if !reflect.DeepEqual(strip(again.Terms), strip(q.Terms)) {
			t.Fatalf("%q parses to %+v, its canonical form %q to %+v", s, q.Terms, q.String(), again.Terms)
		}
	})
}

// FuzzSnippet feeds marked texts as a search index might return them:
// the snippet is HTML whose only tags are balanced <mark> pairs.
func FuzzSnippet(f *testing.F) {
	for _, s := range []string{"a " + MarkOpen + "b" + MarkClose + " c", MarkClose + MarkOpen + "<x>", strings.Repeat("w ", 80) + MarkOpen + "z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Snippet(s)
		if strings.Count(got, "<mark>") != strings.Count(got, "</mark>") {
			t.Fatalf("unbalanced marks in %q", got)
		}
		rest := strings.NewReplacer("<mark>", "", "</mark>", "").Replace(got)
		if strings.ContainsAny(rest, "<>") {
			t.Fatalf("unescaped markup in %q", got)
		}
	})
}
