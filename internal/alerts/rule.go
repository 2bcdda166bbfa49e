package alerts

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/weir-media/weir/protocol"
)

// Condition types.
const (
	CondKeyword     = "keyword"
	CondOCR         = "ocr"
	CondFingerprint = "fingerprint"
	CondDetection   = "detection"
	CondLoudness    = "loudness"
	CondSilence     = "silence"
	CondBlack       = "black"
	CondNoSegments  = "no_segments"
)

// ConditionTypes lists every condition type.
var ConditionTypes = []string{CondKeyword, CondOCR, CondFingerprint, CondDetection, CondLoudness, CondSilence, CondBlack, CondNoSegments}

// Scope kinds.
const (
	ScopeAll    = "all"
	ScopeStream = "stream"
	ScopeTitle  = "title"
	ScopeJob    = "job"
)

// Limits on what a rule may hold.
const (
	// MaxRuleBytes bounds a rule's JSON.
	MaxRuleBytes = 64 << 10
	// MaxNameLength is the longest rule name, in characters.
	MaxNameLength = 200
	// MaxPhraseLength is the longest keyword phrase, in characters.
	MaxPhraseLength = 200
	// MaxPatternLength is the longest OCR pattern, in bytes. Patterns are
	// RE2 (Go's regexp): matching time is linear in the text, whatever
	// the pattern.
	MaxPatternLength = 512
	// MaxWebhooks is how many webhooks a rule may have.
	MaxWebhooks = 5
	// MaxURLLength is the longest webhook URL.
	MaxURLLength = 2048
	// MaxCooldown bounds a rule's cool-down and durations.
	MaxCooldown = time.Hour
	// DefaultCooldown is a rule's cool-down when it names none.
	DefaultCooldown = 10 * time.Second
	// DefaultMinDuration is a duration condition's min_duration when it
	// names none.
	DefaultMinDuration = 5 * time.Second
	// MaxRetryFor bounds how long a rule's deliveries are retried.
	MaxRetryFor = 7 * 24 * time.Hour
)

// Rule is an alert rule: a condition on what the engines find (or on a
// live stream's segments), where it applies, how long the condition must
// stay false before its alert is resolved, and where alerts go.
type Rule struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Condition Condition `json:"condition"`
	Scope     Scope     `json:"scope"`
	// Cooldown: a condition true again within it of its last time true
	// belongs to the same alert; the alert is resolved once it has been
	// false for this long.
	Cooldown Duration  `json:"cooldown"`
	Webhooks []Webhook `json:"webhooks"`
	// RetryFor is how long a delivery is retried before it is dead
	// (0: the server's default).
	RetryFor Duration `json:"retry_for,omitzero"`
	// CreatedAt: the rule evaluates results written from then on.
	CreatedAt time.Time `json:"created_at"`
	// Secret signs the rule's webhook requests; it is never in Spec.
	Secret string `json:"-"`
}

// Condition is what a rule looks for. Type says which members apply.
type Condition struct {
	Type string `json:"type"`
	// Engine, for conditions on results, keeps only that engine's.
	Engine string `json:"engine,omitempty"`
	// Phrase (keyword): words said in this order, case and punctuation
	// aside.
	Phrase string `json:"phrase,omitempty"`
	// Pattern (ocr): an RE2 regular expression a line read on screen
	// must match.
	Pattern string `json:"pattern,omitempty"`
	// Reference (fingerprint): the library reference's name or id.
	Reference string `json:"reference,omitempty"`
	// MinScore (fingerprint): the lowest match score that counts.
	MinScore float64 `json:"min_score,omitempty"`
	// Label (detection): what is counted (face, person).
	Label string `json:"label,omitempty"`
	// MinCount (detection): how many in one result raise the alert.
	MinCount int `json:"min_count,omitempty"`
	// Measure (loudness): short_term or momentary.
	Measure string `json:"measure,omitempty"`
	// MinLUFS and MaxLUFS (loudness): the range the level must stay in.
	MinLUFS *float64 `json:"min_lufs,omitempty"`
	MaxLUFS *float64 `json:"max_lufs,omitempty"`
	// MinDuration (loudness, silence, black, no_segments): how long the
	// condition must hold.
	MinDuration Duration `json:"min_duration,omitzero"`

	re     *regexp.Regexp
	phrase []string
}

// Scope says which jobs or streams a rule applies to.
type Scope struct {
	// Kind is all, stream (a live stream), title (a VOD title) or job.
	Kind string
	ID   string
}

// MarshalJSON writes the scope as a rule request gives it:
// {"all": true} or {"<kind>": "<id>"}.
func (s Scope) MarshalJSON() ([]byte, error) {
	if s.Kind == ScopeAll || s.Kind == "" {
		return []byte(`{"all":true}`), nil
	}
	return json.Marshal(map[string]string{s.Kind: s.ID})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Scope) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*s = Scope{Kind: ScopeAll}
	for _, k := range []string{ScopeStream, ScopeTitle, ScopeJob} {
		if raw, ok := m[k]; ok {
			s.Kind = k
			return json.Unmarshal(raw, &s.ID)
		}
	}
	return nil
}

// String is "all" or "<kind>:<id>".
func (s Scope) String() string {
	if s.Kind == ScopeAll {
		return ScopeAll
	}
	return s.Kind + ":" + s.ID
}

// Webhook is where a rule's alerts are POSTed.
type Webhook struct {
	URL string `json:"url"`
}

// Duration is a time.Duration written as Go syntax ("30s") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as Go syntax.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseDuration(s)
	*d = Duration(v)
	return err
}

// D is the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// RuleError is a refused rule: every member at fault.
type RuleError struct {
	Problems []*FieldProblem
}

// FieldProblem is one member of a rule at fault; Field is "" for the rule
// as a whole (not JSON, too large).
type FieldProblem struct {
	Field   string
	Problem string
}

func (p *FieldProblem) Error() string {
	if p.Field == "" {
		return p.Problem
	}
	return p.Field + ": " + p.Problem
}

func (e *RuleError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid rule: " + strings.Join(parts, "; ")
}

func (e *RuleError) add(field, format string, args ...any) {
	e.Problems = append(e.Problems, &FieldProblem{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (e *RuleError) errOrNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// ParseOptions says what a parser accepts beyond the rule's shape.
type ParseOptions struct {
	// Webhooks checks a webhook's address when its host is an IP
	// literal (nil: any); a host name is checked when it is dialled.
	Webhooks func(netip.Addr) error
}

// NewRule is a rule request: the rule, and the secret when the client
// gave one (otherwise one is generated).
type NewRule struct {
	Rule
	SecretGiven bool
}

// ParseRule reads a rule request (POST /rules): a JSON object with the
// members of docs/alerts.md, nothing else. Every problem is reported
// together, naming the member ("condition.min_duration"). The rule has no
// id or creation time yet; its secret is the one given, or a new one.
func ParseRule(data []byte, opts ParseOptions) (*NewRule, error) {
	if len(data) > MaxRuleBytes {
		return nil, &RuleError{Problems: []*FieldProblem{{Problem: fmt.Sprintf("the rule is larger than %d bytes", MaxRuleBytes)}}}
	}
	root, err := decodeObject(data)
	if err != nil {
		return nil, &RuleError{Problems: []*FieldProblem{{Problem: err.Error()}}}
	}
	var problems RuleError
	o := &object{m: root, path: "", errs: &problems}
	r := &NewRule{}
	r.Name = o.str("name", true, MaxNameLength)
	if c := o.obj("condition", true); c != nil {
		r.Condition = parseCondition(c)
	}
	r.Scope = parseScope(o.obj("scope", false), &problems)
	r.Cooldown = Duration(o.dur("cooldown", DefaultCooldown, 0, MaxCooldown))
	r.RetryFor = Duration(o.dur("retry_for", 0, time.Minute, MaxRetryFor))
	r.Webhooks = parseWebhooks(o, opts)
	if s := o.str("secret", false, 128); s != "" {
		if err := checkSecret(s); err != nil {
			problems.add("secret", "%s", err)
		}
		r.Secret, r.SecretGiven = s, true
	}
	o.done()
	if r.Condition.Type == CondNoSegments && r.Scope.Kind != ScopeStream && len(problems.Problems) == 0 {
		problems.add("scope", `a no_segments rule watches one live stream: give {"stream": "<id>"}`)
	}
	if err := problems.errOrNil(); err != nil {
		return nil, err
	}
	if r.Secret == "" {
		r.Secret = NewSecret()
	}
	return r, nil
}

// ParseSpec reads a rule as stored (Rule's JSON, as Spec writes it).
func ParseSpec(id, name string, spec []byte, secret string, created time.Time) (*Rule, error) {
	var r Rule
	if err := json.Unmarshal(spec, &r); err != nil {
		return nil, fmt.Errorf("rule %s: stored spec: %w", id, err)
	}
	if err := r.Condition.compile(); err != nil {
		return nil, fmt.Errorf("rule %s: stored spec: %w", id, err)
	}
	r.ID, r.Name, r.Secret, r.CreatedAt = id, name, secret, created
	return &r, nil
}

// Spec is the rule as stored: its JSON without id, name or secret.
func (r *Rule) Spec() json.RawMessage {
	c := *r
	c.ID, c.Name = "", ""
	b, _ := json.Marshal(struct {
		Condition Condition `json:"condition"`
		Scope     Scope     `json:"scope"`
		Cooldown  Duration  `json:"cooldown"`
		Webhooks  []Webhook `json:"webhooks"`
		RetryFor  Duration  `json:"retry_for,omitzero"`
	}{c.Condition, c.Scope, c.Cooldown, c.Webhooks, c.RetryFor})
	return b
}

// NewRuleID returns "rule-" and 12 random hex digits.
func NewRuleID() string {
	var b [6]byte
	rand.Read(b[:])
	return "rule-" + hex.EncodeToString(b[:])
}

// NewSecret returns a new webhook secret: "whsec_" and 32 random bytes,
// base64url.
func NewSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func checkSecret(s string) error {
	if len(s) < 16 {
		return fmt.Errorf("is %d characters long; use at least 16 (or leave it out and weir makes one)", len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("has %q at byte %d; use printable ASCII without spaces", c, i)
		}
	}
	return nil
}

func parseCondition(c *object) Condition {
	var cond Condition
	cond.Type = c.enum("type", ConditionTypes)
	switch cond.Type {
	case CondKeyword, CondOCR, CondFingerprint, CondDetection, CondLoudness, CondSilence, CondBlack:
		cond.Engine = c.str("engine", false, 63)
	}
	switch cond.Type {
	case CondKeyword:
		cond.Phrase = c.str("phrase", true, MaxPhraseLength)
		if cond.Phrase != "" && len(words(cond.Phrase)) == 0 {
			c.errs.add(c.at("phrase"), "has no word (letters or digits) to look for")
		}
	case CondOCR:
		cond.Pattern = c.str("pattern", true, -1)
		if len(cond.Pattern) > MaxPatternLength {
			c.errs.add(c.at("pattern"), "is %d bytes long, more than %d", len(cond.Pattern), MaxPatternLength)
		} else if cond.Pattern != "" {
			if _, err := regexp.Compile(cond.Pattern); err != nil {
				c.errs.add(c.at("pattern"), "is not an RE2 regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		}
	case CondFingerprint:
		cond.Reference = c.str("reference", true, MaxNameLength)
		cond.MinScore = c.num("min_score", 0, 0, 1)
	case CondDetection:
		cond.Label = c.str("label", true, 63)
		n := c.num("min_count", 1, 1, 10000)
		if n != math.Trunc(n) {
			c.errs.add(c.at("min_count"), "must be a whole number, got %g", n)
		}
		cond.MinCount = int(n)
	case CondLoudness:
		cond.Measure = c.enumDefault("measure", []string{"short_term", "momentary"}, "short_term")
		cond.MinLUFS = c.optNum("min_lufs", -120, 0)
		cond.MaxLUFS = c.optNum("max_lufs", -120, 0)
		switch {
		case cond.MinLUFS == nil && cond.MaxLUFS == nil && !c.has("min_lufs") && !c.has("max_lufs"):
			c.errs.add(c.at("min_lufs"), "give min_lufs, max_lufs or both: the range the level must stay in")
		case cond.MinLUFS != nil && cond.MaxLUFS != nil && *cond.MaxLUFS <= *cond.MinLUFS:
			c.errs.add(c.at("max_lufs"), "must be above min_lufs (%g), got %g", *cond.MinLUFS, *cond.MaxLUFS)
		}
		cond.MinDuration = Duration(c.dur("min_duration", DefaultMinDuration, 0, MaxCooldown))
	case CondSilence, CondBlack:
		cond.MinDuration = Duration(c.dur("min_duration", DefaultMinDuration, 0, MaxCooldown))
	case CondNoSegments:
		cond.MinDuration = Duration(c.dur("min_duration", 0, time.Second, MaxCooldown))
		if !c.has("min_duration") {
			c.errs.add(c.at("min_duration"), `is required: how long without a segment raises the alert ("30s")`)
		}
	}
	c.done()
	if len(c.errs.Problems) == 0 {
		_ = cond.compile()
	}
	return cond
}

// compile prepares the matchers of a checked condition.
func (c *Condition) compile() error {
	switch c.Type {
	case CondKeyword:
		c.phrase = words(c.Phrase)
		if len(c.phrase) == 0 {
			return fmt.Errorf("condition.phrase %q has no word", c.Phrase)
		}
	case CondOCR:
		if len(c.Pattern) > MaxPatternLength {
			return fmt.Errorf("condition.pattern is too long")
		}
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			return fmt.Errorf("condition.pattern: %w", err)
		}
		c.re = re
	case "":
		return errors.New("condition.type is empty")
	}
	return nil
}

func parseScope(o *object, problems *RuleError) Scope {
	if o == nil {
		return Scope{Kind: ScopeAll}
	}
	var given []string
	for _, k := range []string{ScopeAll, ScopeStream, ScopeTitle, ScopeJob} {
		if o.has(k) {
			given = append(given, k)
		}
	}
	if len(given) > 1 {
		problems.add("scope", "give one of all, stream, title or job, not %s", strings.Join(given, " and "))
		return Scope{Kind: ScopeAll}
	}
	s := Scope{Kind: ScopeAll}
	switch {
	case len(given) == 0 || given[0] == ScopeAll:
		if o.has(ScopeAll) && !o.boolean(ScopeAll) {
			problems.add("scope.all", "must be true (or give stream, title or job)")
		}
	default:
		s.Kind = given[0]
		s.ID = o.str(s.Kind, true, protocol.MaxStreamIDLength)
		if s.ID != "" {
			if err := protocol.ValidateStreamID(s.ID); err != nil {
				problems.add("scope."+s.Kind, "%s", strings.Replace(err.Error(), "stream ids", "ids", 1))
			}
		}
	}
	o.done()
	return s
}

func parseWebhooks(o *object, opts ParseOptions) []Webhook {
	list := o.array("webhooks")
	if len(list) > MaxWebhooks {
		o.errs.add("webhooks", "has %d entries, at most %d", len(list), MaxWebhooks)
		return nil
	}
	var out []Webhook
	for i, raw := range list {
		w := o.child(fmt.Sprintf("webhooks[%d]", i), raw)
		if w == nil {
			continue
		}
		u := w.str("url", true, MaxURLLength)
		w.done()
		if u == "" {
			continue
		}
		if err := checkWebhookURL(u, opts); err != nil {
			o.errs.add(fmt.Sprintf("webhooks[%d].url", i), "%s", err)
			continue
		}
		out = append(out, Webhook{URL: u})
	}
	return out
}

// checkWebhookURL checks a webhook URL: http or https with a host, no
// credentials, no fragment; an IP literal host must pass the policy.
func checkWebhookURL(raw string, opts ParseOptions) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http or https URL, got scheme %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("has no host")
	case u.User != nil:
		return errors.New("must not hold credentials: the request is signed with the rule's secret instead")
	case u.Fragment != "":
		return errors.New("must not have a fragment (#...)")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && opts.Webhooks != nil {
		if err := opts.Webhooks(ip); err != nil {
			return err
		}
	}
	return nil
}

// words are the lower-case runs of letters and digits of s.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) })
}

func parseDuration(s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "0" || strings.TrimSpace(s) == "0s" {
		return 0, nil
	}
	return protocol.ParseDuration(s)
}

// ---- a strict reader of JSON objects naming the member at fault ----

// decodeObject decodes exactly one JSON object.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the rule is empty: send a JSON object")
	}
	if !utf8.Valid(data) {
		return nil, errors.New("the rule is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("the rule must be a JSON object, got %s", te.Value)
		}
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	if m == nil {
		return nil, errors.New("the rule must be a JSON object, got null")
	}
	if dec.More() {
		return nil, errors.New("malformed JSON: more than one value")
	}
	return m, nil
}

// object reads the members of one JSON object, recording problems under
// their path; done reports the members nobody read.
type object struct {
	m    map[string]json.RawMessage
	path string
	errs *RuleError
	read map[string]bool
}

func (o *object) at(name string) string {
	if o.path == "" {
		return name
	}
	return o.path + "." + name
}

func (o *object) has(name string) bool {
	raw, ok := o.m[name]
	return ok && string(raw) != "null"
}

// get returns a member's raw value, nil when absent or null.
func (o *object) get(name string) json.RawMessage {
	if o.read == nil {
		o.read = map[string]bool{}
	}
	o.read[name] = true
	if !o.has(name) {
		return nil
	}
	return o.m[name]
}

func (o *object) done() {
	var unknown []string
	for k := range o.m {
		if !o.read[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		o.errs.add(o.at(k), "is not a member this object has")
	}
}

func (o *object) str(name string, required bool, maxLen int) string {
	raw := o.get(name)
	if raw == nil {
		if required {
			o.errs.add(o.at(name), "is required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		o.errs.add(o.at(name), "must be a string, got %s", kindOf(raw))
		return ""
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		o.errs.add(o.at(name), "is empty")
	case maxLen > 0 && utf8.RuneCountInString(s) > maxLen:
		o.errs.add(o.at(name), "is %d characters long, more than %d", utf8.RuneCountInString(s), maxLen)
		return ""
	case strings.ContainsFunc(s, unicode.IsControl):
		o.errs.add(o.at(name), "holds a control character")
		return ""
	}
	return s
}

func (o *object) boolean(name string) bool {
	raw := o.get(name)
	var b bool
	if raw != nil && json.Unmarshal(raw, &b) != nil {
		o.errs.add(o.at(name), "must be true or false, got %s", kindOf(raw))
	}
	return b
}

func (o *object) enum(name string, values []string) string {
	s := o.str(name, true, 64)
	if s != "" && !slices.Contains(values, s) {
		o.errs.add(o.at(name), "must be one of %s, got %q", strings.Join(values, ", "), s)
		return ""
	}
	return s
}

func (o *object) enumDefault(name string, values []string, def string) string {
	if !o.has(name) {
		o.get(name)
		return def
	}
	return o.enum(name, values)
}

func (o *object) num(name string, def, lo, hi float64) float64 {
	p := o.optNum(name, lo, hi)
	if p == nil {
		return def
	}
	return *p
}

func (o *object) optNum(name string, lo, hi float64) *float64 {
	raw := o.get(name)
	if raw == nil {
		return nil
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		o.errs.add(o.at(name), "must be a number, got %s", kindOf(raw))
		return nil
	}
	if v < lo || v > hi {
		o.errs.add(o.at(name), "must be from %g to %g, got %g", lo, hi, v)
		return nil
	}
	return &v
}

func (o *object) dur(name string, def, lo, hi time.Duration) time.Duration {
	raw := o.get(name)
	if raw == nil {
		return def
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		o.errs.add(o.at(name), `must be a duration string like "30s", got %s`, kindOf(raw))
		return def
	}
	d, err := parseDuration(s)
	if err != nil {
		o.errs.add(o.at(name), "%s", err)
		return def
	}
	if d < lo || d > hi {
		o.errs.add(o.at(name), "must be from %v to %v, got %v", lo, hi, d)
		return def
	}
	return d
}

func (o *object) obj(name string, required bool) *object {
	raw := o.get(name)
	if raw == nil {
		if required {
			o.errs.add(o.at(name), "is required")
		}
		return nil
	}
	return o.child(o.at(name), raw)
}

// child reads raw, at path, as an object.
func (o *object) child(path string, raw json.RawMessage) *object {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		o.errs.add(path, "must be an object, got %s", kindOf(raw))
		return nil
	}
	return &object{m: m, path: path, errs: o.errs}
}

func (o *object) array(name string) []json.RawMessage {
	raw := o.get(name)
	if raw == nil {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		o.errs.add(o.at(name), "must be an array, got %s", kindOf(raw))
		return nil
	}
	return list
}

// kindOf names a JSON value's kind for an error.
func kindOf(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
