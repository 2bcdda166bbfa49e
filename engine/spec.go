package engine

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Spec describes an engine: what it is called, how it takes its input, what
// it reads and writes, and the options it accepts. The spec is at once the
// engine's validation (Validate, ParseOptions), its documentation (`weir
// engines show`, GET /engines, docs/engines.md are made from it) and its
// examples, which Validate checks like any other options. Its JSON form is
// the manifest of an external engine (see Manifest), so the member names
// are part of weir's contract; engineMode is Veritone's name.
type Spec struct {
	// Name identifies the engine in jobs, topics (chunk_<name>) and
	// consumer groups: 1 to 63 characters from [a-z0-9-], starting with a
	// letter or digit and not ending in '-'.
	Name string `json:"name"`
	// Title is a human name ("Media probe"); the Name when empty.
	Title string `json:"title,omitempty"`
	// Mode is how the engine takes its input.
	Mode Mode `json:"engineMode"`
	// Summary says in one line what the engine finds; it is the engine's
	// row in tables.
	Summary string `json:"summary"`
	// Description says the rest: how it works, its limits, its cost.
	Description string `json:"description,omitempty"`
	// Inputs are the MIME types the engine reads: "audio/wav", a whole
	// family as "audio/*", or anything as "*/*". A host answers a chunk of
	// another type IGNORED without calling the engine.
	Inputs []string `json:"inputs"`
	// Outputs are the vtn-standard output types the engine writes, the
	// outputType of its engine_output messages ("tag", "transcript",
	// "object", "text", "fingerprint", ...).
	Outputs []string `json:"outputs"`
	// Options are the settings a task may give the engine, in the order
	// the docs list them.
	Options []Option `json:"options,omitempty"`
	// Examples are option sets worth showing; Validate parses each.
	Examples []Example `json:"examples,omitempty"`
	// Requires lists the programs the engine runs. An engine whose
	// program is missing reports itself unavailable (Available) instead of
	// failing its jobs.
	Requires []Requirement `json:"requires,omitempty"`
}

// Name is what the requirement names: the command, or the file.
func (r Requirement) Name() string {
	if r.File != "" {
		return r.File
	}
	return r.Command
}

// Example is a documented set of options.
type Example struct {
	// Title says what the example does ("Detect speech in German").
	Title string `json:"title"`
	// Options are the option values, as a task payload would give them.
	Options map[string]any `json:"options,omitempty"`
}

// Requirement is a program an engine runs, looked up on PATH, or a file it
// reads (a model), checked to exist.
type Requirement struct {
	// Command is the program's name, as looked up on PATH ("ffprobe").
	// Empty for a requirement that is a File.
	Command string `json:"command,omitempty"`
	// File is an absolute path that must exist: a model or data file the
	// engine reads ("/usr/share/tesseract-ocr/5/tessdata/eng.traineddata").
	File string `json:"file,omitempty"`
	// DebianPackage is the package that installs it ("ffmpeg"), for the
	// install line an unavailable engine reports.
	DebianPackage string `json:"debianPackage,omitempty"`
	// Why says what the engine uses it for.
	Why string `json:"why,omitempty"`
}

// SpecError is a problem with a spec or a manifest. Field is the JSON
// member at fault, dotted and indexed as in "options[2].default". Its text
// has the form
//
//	engine "probe": options[0].default: want an int, got string "x"
type SpecError struct {
	Engine  string // the spec's name, "" when the name itself is missing
	Field   string
	Problem string
}

func (e *SpecError) Error() string {
	who := "engine spec"
	if e.Engine != "" {
		who = fmt.Sprintf("engine %q", e.Engine)
	}
	if e.Field == "" {
		return who + ": " + e.Problem
	}
	return who + ": " + e.Field + ": " + e.Problem
}

var (
	engineName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	optionName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	outputType = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	// mimeToken is RFC 6838's restricted-name, case-insensitive.
	mimeToken  = `[a-z0-9][a-z0-9!#$&^_.+-]{0,126}`
	mimeRange  = regexp.MustCompile(`^(?i)(` + mimeToken + `/(` + mimeToken + `|\*)|\*/\*)$`)
	commandRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	debianName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
)

// ValidName reports whether name is a valid engine name.
func ValidName(name string) bool { return engineName.MatchString(name) }

// Validate checks the spec: the name, the mode, that there is a summary, an
// input and an output, that each option is well formed (a known type, a
// default of that type within its enum and bounds, a doc), that every
// example's options parse, and that requirements name a command. The error
// is a *SpecError naming the first field at fault.
func (s Spec) Validate() error {
	_, err := s.normalized()
	return err
}

// normalized validates s and returns a copy whose option defaults and
// bounds hold their Go types (int64, float64, time.Duration...), so the
// typed getters and the docs see one form whatever the source wrote.
func (s Spec) normalized() (Spec, error) {
	fail := func(field, format string, args ...any) (Spec, error) {
		return Spec{}, &SpecError{Engine: s.Name, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if s.Name == "" {
		return fail("name", "is required")
	}
	if !ValidName(s.Name) {
		return fail("name", "%q must be 1 to 63 characters from [a-z0-9-], starting with a letter or digit and not ending in '-'", s.Name)
	}
	if _, err := ParseMode(string(s.Mode)); err != nil {
		return fail("engineMode", "%s", strings.TrimPrefix(err.Error(), "engineMode "))
	}
	if strings.TrimSpace(s.Summary) == "" {
		return fail("summary", "is required: one line saying what the engine finds")
	}
	if strings.ContainsAny(s.Summary, "\r\n") {
		return fail("summary", "must be one line")
	}
	if len(s.Inputs) == 0 {
		return fail("inputs", "needs at least one MIME type (\"audio/wav\", \"video/*\", \"*/*\")")
	}
	for i, in := range s.Inputs {
		if !mimeRange.MatchString(in) {
			return fail(fmt.Sprintf("inputs[%d]", i), "%q is not a MIME type such as \"audio/wav\" or \"video/*\"", in)
		}
	}
	if len(s.Outputs) == 0 {
		return fail("outputs", "needs at least one output type (\"tag\", \"transcript\", \"object\", ...)")
	}
	for i, out := range s.Outputs {
		if !outputType.MatchString(out) {
			return fail(fmt.Sprintf("outputs[%d]", i), "%q is not an output type: lower-case letters, digits, '-' and '_'", out)
		}
	}
	out := s
	out.Inputs = cloneOrNil(s.Inputs)
	out.Outputs = cloneOrNil(s.Outputs)
	out.Options = make([]Option, len(s.Options))
	seen := map[string]int{}
	for i, o := range s.Options {
		field := fmt.Sprintf("options[%d]", i)
		if j, dup := seen[o.Name]; dup {
			return fail(field+".name", "%q is declared twice (also options[%d])", o.Name, j)
		}
		seen[o.Name] = i
		n, err := o.normalized()
		if err != nil {
			oe := err.(*optionSpecError)
			return fail(field+oe.field, "%s", oe.problem)
		}
		out.Options[i] = n
	}
	if len(s.Options) == 0 {
		out.Options = nil
	}
	out.Examples = cloneOrNil(s.Examples)
	for i, ex := range s.Examples {
		if len(ex.Options) == 0 {
			out.Examples[i].Options = nil
		}
		field := fmt.Sprintf("examples[%d]", i)
		if strings.TrimSpace(ex.Title) == "" {
			return fail(field+".title", "is required")
		}
		if _, err := out.ParseOptions(ex.Options); err != nil {
			return fail(field+".options", "%v", err)
		}
	}
	out.Requires = cloneOrNil(s.Requires)
	for i, r := range s.Requires {
		field := fmt.Sprintf("requires[%d]", i)
		switch {
		case r.File != "" && r.Command != "":
			return fail(field, "give a command or a file, not both")
		case r.File != "":
			if !filepath.IsAbs(r.File) || filepath.Clean(r.File) != r.File {
				return fail(field+".file", "%q must be a clean absolute path", r.File)
			}
		case !commandRe.MatchString(r.Command):
			return fail(field+".command", "%q must be a program name looked up on PATH, such as \"ffprobe\"", r.Command)
		}
		if r.DebianPackage != "" && !debianName.MatchString(r.DebianPackage) {
			return fail(field+".debianPackage", "%q is not a Debian package name", r.DebianPackage)
		}
	}
	return out, nil
}

// DisplayTitle is the Title, or the Name when there is none.
func (s Spec) DisplayTitle() string {
	if s.Title != "" {
		return s.Title
	}
	return s.Name
}

// Accepts reports whether the engine reads media of type mimeType (its
// parameters, as in "audio/L16; rate=16000", are ignored): whether an input
// names it exactly, names its family ("audio/*") or is "*/*". The match is
// case-insensitive, as MIME types are.
func (s Spec) Accepts(mimeType string) bool {
	mt, _, _ := strings.Cut(mimeType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	family, _, ok := strings.Cut(mt, "/")
	if !ok {
		return false
	}
	for _, in := range s.Inputs {
		in = strings.ToLower(in)
		if in == "*/*" || in == mt || in == family+"/*" {
			return true
		}
	}
	return false
}

// Option returns the declared option called name.
func (s Spec) Option(name string) (Option, bool) {
	for _, o := range s.Options {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

// Option declares one engine option.
//
// Its JSON form (MarshalJSON) writes durations as Go duration strings; the
// tags describe that form to schema generators.
type Option struct {
	// Name is how task payloads and examples name it: lower-case
	// letters, digits and '_', starting with a letter.
	Name string     `json:"name"`
	Type OptionType `json:"type"`
	// Default is used when a task does not set the option; nil means no
	// default (the getter returns the zero value). Written in the type's
	// Go form (string, int64, float64, bool, time.Duration, []string) or
	// as JSON/YAML would give it (3 for an int, "250ms" for a duration).
	Default any `json:"default,omitempty"`
	// Required options must be set by every task; they have no Default.
	Required bool `json:"required,omitempty"`
	// Doc says what the option does and in what unit.
	Doc string `json:"doc"`
	// Enum, for string and list options, is the set of allowed values.
	Enum []string `json:"enum,omitempty"`
	// Min and Max, for int, float and duration options, bound the value
	// (inclusive); nil is unbounded. Written like Default.
	Min any `json:"min,omitempty"`
	Max any `json:"max,omitempty"`
}

// optionJSON is an Option as JSON and YAML write it: durations as strings.
type optionJSON struct {
	Name     string     `json:"name"`
	Type     OptionType `json:"type"`
	Default  any        `json:"default,omitempty"`
	Required bool       `json:"required,omitempty"`
	Doc      string     `json:"doc"`
	Enum     []string   `json:"enum,omitempty"`
	Min      any        `json:"min,omitempty"`
	Max      any        `json:"max,omitempty"`
}

// MarshalJSON writes durations as Go duration strings ("250ms"), the form
// manifests and task payloads use.
func (o Option) MarshalJSON() ([]byte, error) {
	return json.Marshal(optionJSON{
		Name: o.Name, Type: o.Type, Default: wireValue(o.Default), Required: o.Required,
		Doc: o.Doc, Enum: o.Enum, Min: wireValue(o.Min), Max: wireValue(o.Max),
	})
}

// UnmarshalJSON reads the form MarshalJSON writes; values are converted to
// the option's type by Spec.Validate and Registry.Register.
func (o *Option) UnmarshalJSON(b []byte) error {
	var w optionJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*o = Option{Name: w.Name, Type: w.Type, Default: w.Default, Required: w.Required,
		Doc: w.Doc, Enum: w.Enum, Min: w.Min, Max: w.Max}
	return nil
}

// optionSpecError is a problem with one option declaration; field is
// relative to the option (".default").
type optionSpecError struct{ field, problem string }

func (e *optionSpecError) Error() string { return e.field + ": " + e.problem }

func (o Option) normalized() (Option, error) {
	fail := func(field, format string, args ...any) (Option, error) {
		return Option{}, &optionSpecError{field: field, problem: fmt.Sprintf(format, args...)}
	}
	if !optionName.MatchString(o.Name) {
		return fail(".name", "%q must start with a lower-case letter and hold only lower-case letters, digits and '_'", o.Name)
	}
	if !slices.Contains(OptionTypes, o.Type) {
		return fail(".type", "%q is not one of %s", o.Type, joinTypes())
	}
	if strings.TrimSpace(o.Doc) == "" {
		return fail(".doc", "is required: say what the option does and in what unit")
	}
	out := o
	out.Enum = cloneOrNil(o.Enum)
	if len(o.Enum) > 0 {
		if o.Type != TypeString && o.Type != TypeList {
			return fail(".enum", "only string and list options take an enum, not %s", o.Type)
		}
		for i, v := range o.Enum {
			if v == "" || slices.Index(o.Enum, v) != i {
				return fail(fmt.Sprintf(".enum[%d]", i), "%q is empty or repeated", v)
			}
		}
	}
	for _, b := range []struct {
		field string
		v     any
		dst   *any
	}{{".min", o.Min, &out.Min}, {".max", o.Max, &out.Max}} {
		if b.v == nil {
			continue
		}
		if !o.Type.ordered() {
			return fail(b.field, "only int, float and duration options take bounds, not %s", o.Type)
		}
		v, err := convert(o.Type, b.v)
		if err != nil {
			return fail(b.field, "%v", err)
		}
		*b.dst = v
	}
	if out.Min != nil && out.Max != nil && compare(out.Min, out.Max) > 0 {
		return fail(".max", "%s is below min %s", formatValue(out.Max), formatValue(out.Min))
	}
	if o.Default != nil {
		if o.Required {
			return fail(".required", "a required option cannot have a default")
		}
		v, err := out.value(o.Default)
		if err != nil {
			return fail(".default", "%v", err)
		}
		out.Default = v
	}
	return out, nil
}

// cloneOrNil copies s, giving nil for an empty slice, so a spec read from
// "enum: []" equals one that leaves it out.
func cloneOrNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
