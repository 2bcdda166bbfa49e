package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OptionType is the type of an option's value.
type OptionType string

// The option types, with the Go type the getters return and what a task
// payload may write:
//
//	string    string          a JSON string
//	int       int64           an integral number (3, or 3.0)
//	float     float64         a number
//	bool      bool            true or false
//	duration  time.Duration   a Go duration string ("250ms", "1m30s")
//	list      []string        an array of strings
//
// Values of another JSON type are refused, not converted: "0.5" is not a
// float.
const (
	TypeString   OptionType = "string"
	TypeInt      OptionType = "int"
	TypeFloat    OptionType = "float"
	TypeBool     OptionType = "bool"
	TypeDuration OptionType = "duration"
	TypeList     OptionType = "list"
)

// OptionTypes lists every option type.
var OptionTypes = []OptionType{TypeString, TypeInt, TypeFloat, TypeBool, TypeDuration, TypeList}

func joinTypes() string {
	names := make([]string, len(OptionTypes))
	for i, t := range OptionTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// ordered reports whether values of the type have bounds.
func (t OptionType) ordered() bool { return t == TypeInt || t == TypeFloat || t == TypeDuration }

// article is "an" before int, "a" before the rest.
func (t OptionType) article() string {
	if t == TypeInt {
		return "an int"
	}
	return "a " + string(t)
}

// convert brings a value as Go, JSON or YAML decoding gives it to the
// type's Go form.
func convert(t OptionType, v any) (any, error) {
	switch t {
	case TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case TypeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case TypeInt:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case int32:
			return int64(x), nil
		case uint64:
			if x <= math.MaxInt64 {
				return int64(x), nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
				return int64(x), nil
			}
			return nil, fmt.Errorf("want an int, got %v", x)
		}
	case TypeFloat:
		switch x := v.(type) {
		case float64:
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				return x, nil
			}
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case int32:
			return float64(x), nil
		case uint64:
			return float64(x), nil
		}
	case TypeDuration:
		switch x := v.(type) {
		case time.Duration:
			return x, nil
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, fmt.Errorf("want a duration such as \"250ms\" or \"1m30s\", got %q", x)
			}
			return d, nil
		}
		return nil, fmt.Errorf("want a duration such as \"250ms\" or \"1m30s\", got %s", describe(v))
	case TypeList:
		switch x := v.(type) {
		case []string:
			return slices.Clone(x), nil
		case []any:
			out := make([]string, len(x))
			for i, item := range x {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("item %d: want a string, got %s", i, describe(item))
				}
				out[i] = s
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a list of strings, got %s", describe(v))
	default:
		return nil, fmt.Errorf("option type %q is not one of %s", t, joinTypes())
	}
	return nil, fmt.Errorf("want %s, got %s", t.article(), describe(v))
}

// describe names a value and its JSON type for error messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", x)
	case bool:
		return fmt.Sprintf("bool %v", x)
	case float64, float32, int, int64, int32, uint64:
		return fmt.Sprintf("number %v", x)
	case []any, []string:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// compare orders two values of one ordered type.
func compare(a, b any) int {
	switch x := a.(type) {
	case int64:
		y := b.(int64)
		return cmpInt(x, y)
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case time.Duration:
		return cmpInt(int64(x), int64(b.(time.Duration)))
	}
	return 0
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// formatValue writes a value as the docs and errors show it.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strconv.Quote(x)
	case time.Duration:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// FormatValue writes an option value (a default, a bound) the way the
// docs show it: strings quoted, durations as "250ms", lists in brackets.
func FormatValue(v any) string { return formatValue(v) }

// wireValue is v as JSON should carry it: durations as strings.
func wireValue(v any) any {
	if d, ok := v.(time.Duration); ok {
		return d.String()
	}
	return v
}

// value converts v to the option's type and checks it against the enum and
// bounds. The option must be normalized.
func (o Option) value(v any) (any, error) {
	cv, err := convert(o.Type, v)
	if err != nil {
		return nil, err
	}
	if len(o.Enum) > 0 {
		items := []string{}
		switch x := cv.(type) {
		case string:
			items = append(items, x)
		case []string:
			items = x
		}
		for _, it := range items {
			if !slices.Contains(o.Enum, it) {
				return nil, fmt.Errorf("%q is not one of %s", it, strings.Join(o.Enum, ", "))
			}
		}
	}
	if o.Min != nil && compare(cv, o.Min) < 0 {
		return nil, fmt.Errorf("must be at least %s, got %s", formatValue(o.Min), formatValue(cv))
	}
	if o.Max != nil && compare(cv, o.Max) > 0 {
		return nil, fmt.Errorf("must be at most %s, got %s", formatValue(o.Max), formatValue(cv))
	}
	return cv, nil
}

// OptionError is a bad option value in a task or an example. Its text has
// the form
//
//	option "threshold": must be at most 1, got 2
type OptionError struct {
	Option  string
	Problem string
}

func (e *OptionError) Error() string { return fmt.Sprintf("option %q: %s", e.Option, e.Problem) }

// ParseOptions checks raw option values (a task payload's, decoded from
// JSON or YAML) against the spec's options and returns them converted,
// with defaults filled in. Every problem is reported, as *OptionError
// values joined with errors.Join in option-name order: an unknown option,
// a value of the wrong type or outside the option's enum or bounds, a
// required option left out. A nil or empty raw gives the defaults.
//
// The spec must be valid; ParseOptions on an invalid spec reports the
// spec's error.
func (s Spec) ParseOptions(raw map[string]any) (Options, error) {
	opts := Options{engine: s.Name, types: map[string]OptionType{}, values: map[string]any{}}
	byName := map[string]Option{}
	for _, o := range s.Options {
		n, err := o.normalized()
		if err != nil {
			return Options{}, &SpecError{Engine: s.Name, Field: "options", Problem: err.Error()}
		}
		byName[n.Name] = n
		opts.types[n.Name] = n.Type
		if n.Default != nil {
			opts.values[n.Name] = n.Default
		}
	}
	var errs []*OptionError
	for name, v := range raw {
		o, ok := byName[name]
		if !ok {
			errs = append(errs, &OptionError{Option: name, Problem: s.unknownOption()})
			continue
		}
		cv, err := o.value(v)
		if err != nil {
			errs = append(errs, &OptionError{Option: name, Problem: err.Error()})
			continue
		}
		opts.values[name] = cv
	}
	for _, o := range s.Options {
		if _, set := raw[o.Name]; o.Required && !set {
			errs = append(errs, &OptionError{Option: o.Name, Problem: "is required: " + o.Doc})
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Option < errs[j].Option })
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return Options{}, errors.Join(joined...)
	}
	return opts, nil
}

func (s Spec) unknownOption() string {
	if len(s.Options) == 0 {
		return fmt.Sprintf("engine %s takes no options", s.Name)
	}
	names := make([]string, len(s.Options))
	for i, o := range s.Options {
		names[i] = o.Name
	}
	return fmt.Sprintf("engine %s has no such option (it takes %s)", s.Name, strings.Join(names, ", "))
}

// Options are an engine's option values for one task, checked and with
// defaults filled in by Spec.ParseOptions. The getters return the value of
// a declared option, or the zero value when it is unset and has no
// default. Asking for an option the spec does not declare, or with the
// getter of another type, is a programming error and panics, so a
// misspelt name fails the engine's first test instead of quietly reading
// zero forever.
type Options struct {
	engine string
	types  map[string]OptionType
	values map[string]any
}

func (o Options) get(name string, t OptionType) any {
	have, ok := o.types[name]
	if !ok {
		panic(fmt.Sprintf("engine %s: option %q is not declared in its spec", o.engine, name))
	}
	if have != t {
		panic(fmt.Sprintf("engine %s: option %q is %s, not %s", o.engine, name, have.article(), t))
	}
	return o.values[name]
}

// Has reports whether the option has a value, set or default.
func (o Options) Has(name string) bool { _, ok := o.values[name]; return ok }

// String returns a string option.
func (o Options) String(name string) string { s, _ := o.get(name, TypeString).(string); return s }

// Int returns an int option.
func (o Options) Int(name string) int64 { i, _ := o.get(name, TypeInt).(int64); return i }

// Float returns a float option.
func (o Options) Float(name string) float64 { f, _ := o.get(name, TypeFloat).(float64); return f }

// Bool returns a bool option.
func (o Options) Bool(name string) bool { b, _ := o.get(name, TypeBool).(bool); return b }

// Duration returns a duration option.
func (o Options) Duration(name string) time.Duration {
	d, _ := o.get(name, TypeDuration).(time.Duration)
	return d
}

// List returns a list option; the slice is the caller's.
func (o Options) List(name string) []string {
	l, _ := o.get(name, TypeList).([]string)
	return slices.Clone(l)
}

// Map returns the values in their JSON form (durations as strings), for
// echoing a task's effective options.
func (o Options) Map() map[string]any {
	out := make(map[string]any, len(o.values))
	for k, v := range o.values {
		out[k] = wireValue(v)
	}
	return out
}
