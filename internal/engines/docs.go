package engines

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/weir-media/weir/engine"
)

// The markers around the generated part of docs/engines.md.
const (
	DocBegin = "<!-- engines:begin -->"
	DocEnd   = "<!-- engines:end -->"
)

// MarkdownTable renders engines as docs/engines.md lists them: a table of
// every engine, then a section per engine with its description, options,
// examples and requirements. It depends on the specs alone, so the doc
// changes exactly when a spec does.
func MarkdownTable(regs []engine.Registration) string {
	var b strings.Builder
	b.WriteString("| engine | mode | reads | writes | summary |\n|---|---|---|---|---|\n")
	for _, r := range regs {
		s := r.Spec
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s | %s | %s |\n", s.Name, anchor(s), s.Mode,
			cell(codeList(s.Inputs)), cell(codeList(s.Outputs)), cell(s.Summary))
	}
	for _, r := range regs {
		writeEngine(&b, r.Spec)
	}
	return b.String()
}

// anchor is the GitHub heading anchor of an engine's section.
func anchor(s engine.Spec) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r == ' ':
			return '-'
		}
		return -1
	}, heading(s)), "-")
}

func heading(s engine.Spec) string {
	if s.Title != "" && s.Title != s.Name {
		return s.Name + " — " + s.Title
	}
	return s.Name
}

func writeEngine(b *strings.Builder, s engine.Spec) {
	fmt.Fprintf(b, "\n### %s\n\n", heading(s))
	fmt.Fprintf(b, "%s (`%s` mode). ", strings.TrimSuffix(s.Summary, "."), s.Mode)
	fmt.Fprintf(b, "Reads %s; writes %s.\n", codeList(s.Inputs), codeList(s.Outputs))
	if d := strings.TrimSpace(s.Description); d != "" {
		fmt.Fprintf(b, "\n%s\n", d)
	}
	if len(s.Options) > 0 {
		b.WriteString("\n| option | type | default | meaning |\n|---|---|---|---|\n")
		for _, o := range s.Options {
			def := "—"
			switch {
			case o.Required:
				def = "required"
			case o.Default != nil:
				def = "`" + engine.FormatValue(o.Default) + "`"
			}
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", o.Name, o.Type, cell(def), cell(optionMeaning(o)))
		}
	}
	if len(s.Examples) > 0 {
		b.WriteString("\nExamples:\n\n")
		for _, ex := range s.Examples {
			opts, _ := json.Marshal(ex.Options) // map keys sorted: a stable doc
			fmt.Fprintf(b, "- %s: `%s`\n", ex.Title, opts)
		}
	}
	if len(s.Requires) > 0 {
		b.WriteString("\nRequires:\n\n")
		for _, r := range s.Requires {
			line := "`" + r.Name() + "`"
			if r.DebianPackage != "" {
				line += " (`apt-get install -y " + r.DebianPackage + "`)"
			}
			if r.Why != "" {
				line += ", " + r.Why
			}
			fmt.Fprintf(b, "- %s\n", line)
		}
	}
}

func optionMeaning(o engine.Option) string {
	m := strings.TrimSpace(o.Doc)
	if len(o.Enum) > 0 {
		m += "; one of " + codeList(o.Enum)
	}
	switch {
	case o.Min != nil && o.Max != nil:
		m += fmt.Sprintf("; %s to %s", engine.FormatValue(o.Min), engine.FormatValue(o.Max))
	case o.Min != nil:
		m += "; at least " + engine.FormatValue(o.Min)
	case o.Max != nil:
		m += "; at most " + engine.FormatValue(o.Max)
	}
	return m
}

func codeList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = "`" + it + "`"
	}
	return strings.Join(q, ", ")
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// ReplaceGenerated puts generated between doc's DocBegin and DocEnd
// markers, replacing what was there.
func ReplaceGenerated(doc []byte, generated string) ([]byte, error) {
	begin := bytes.Index(doc, []byte(DocBegin))
	end := bytes.Index(doc, []byte(DocEnd))
	if begin < 0 || end < begin {
		return nil, errors.New("the doc lacks the markers " + DocBegin + " and " + DocEnd + " in that order")
	}
	var out bytes.Buffer
	out.Write(doc[:begin+len(DocBegin)])
	out.WriteString("\n")
	out.WriteString(generated)
	out.Write(doc[end:])
	return out.Bytes(), nil
}
