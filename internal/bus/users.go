package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-media/weir/protocol"
)

// Grants say what a user other than the superuser may do on the bus. Each
// entry is a name pattern: a literal name ("chunk_ocr"), a prefix ending
// in * ("results_*" is every topic whose name starts with "results_"), or
// * alone for every name. Whatever is not granted is refused.
type Grants struct {
	// Read lists the topics the user may consume (and describe).
	Read []string
	// Write lists the topics the user may produce to (and describe).
	// Producing to a missing topic it may write creates the topic.
	Write []string
	// Groups lists the consumer groups the user may join and commit
	// offsets in.
	Groups []string
}

// EngineGrants are the grants of an engine's user: read its work topic
// chunk_<engineID> in its group weir_engine_<engineID>, write any job's
// results topic (results_*). An engine cannot touch stream topics or
// weir's control topics.
func EngineGrants(engineID string) Grants {
	return Grants{
		Read:   []string{protocol.ChunkTopic(engineID)},
		Write:  []string{string(protocol.KindResults) + "_*"},
		Groups: []string{protocol.EngineGroup(engineID)},
	}
}

// IsZero reports whether g grants nothing.
func (g Grants) IsZero() bool { return len(g.Read)+len(g.Write)+len(g.Groups) == 0 }

// aclEntry is one ALLOW ACL: an operation on a resource pattern.
type aclEntry struct {
	resource kmsg.ACLResourceType
	name     string
	pattern  kmsg.ACLResourcePatternType
	op       kmsg.ACLOperation
}

// acls turns g into ALLOW ACLs, checking every pattern.
func (g Grants) acls() ([]aclEntry, error) {
	var out []aclEntry
	add := func(kind string, resource kmsg.ACLResourceType, op kmsg.ACLOperation, patterns []string) error {
		for _, p := range patterns {
			name, pattern, err := parseGrantPattern(p)
			if err != nil {
				return fmt.Errorf("%s pattern %q: %w", kind, p, err)
			}
			out = append(out, aclEntry{resource: resource, name: name, pattern: pattern, op: op})
		}
		return nil
	}
	if err := add("read", kmsg.ACLResourceTypeTopic, kmsg.ACLOperationRead, g.Read); err != nil {
		return nil, err
	}
	if err := add("write", kmsg.ACLResourceTypeTopic, kmsg.ACLOperationWrite, g.Write); err != nil {
		return nil, err
	}
	if err := add("group", kmsg.ACLResourceTypeGroup, kmsg.ACLOperationRead, g.Groups); err != nil {
		return nil, err
	}
	return out, nil
}

// parseGrantPattern turns a grant pattern into a Kafka resource name and
// pattern type.
func parseGrantPattern(p string) (string, kmsg.ACLResourcePatternType, error) {
	switch {
	case p == "*":
		return "*", kmsg.ACLResourcePatternTypeLiteral, nil // Kafka's wildcard
	case p == "":
		return "", 0, errors.New("empty")
	case strings.Count(p, "*") > 1 || strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return "", 0, errors.New("* may only end a prefix")
	}
	name, prefixed := strings.CutSuffix(p, "*")
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", 0, fmt.Errorf("character %q: names use only letters, digits and ._-", r)
		}
	}
	if len(name) > 249 {
		return "", 0, errors.New("longer than Kafka's 249 characters")
	}
	if prefixed {
		return name, kmsg.ACLResourcePatternTypePrefixed, nil
	}
	return name, kmsg.ACLResourcePatternTypeLiteral, nil
}

// User is a bus user as the broker describes it.
type User struct {
	Name       string
	Mechanisms []string // SCRAM mechanisms it has a password for
	// Grants are its ALLOW ACLs, as patterns. Superusers have none: they
	// bypass ACLs.
	Grants Grants
}

// AddUser creates a SCRAM user (creds.Mechanism must be SCRAM-SHA-256 or
// SCRAM-SHA-512) and the ACLs of grants, on a cluster this client may
// administer (the embedded broker's superuser may). A user that exists gets
// the new password and the grants are added to its ACLs; use RemoveUser
// first to start over. The broker stores only a salted hash of the
// password.
func (c *Client) AddUser(ctx context.Context, creds Credentials, grants Grants) error {
	if err := creds.Validate(); err != nil {
		return err
	}
	var mech kadm.ScramMechanism
	switch creds.Mechanism {
	case MechanismSCRAMSHA256:
		mech = kadm.ScramSha256
	case MechanismSCRAMSHA512:
		mech = kadm.ScramSha512
	default:
		return fmt.Errorf("add user %s: users are added with SCRAM-SHA-256 or SCRAM-SHA-512, not %s", creds.User, creds.Mechanism)
	}
	entries, err := grants.acls()
	if err != nil {
		return fmt.Errorf("add user %s: %w", creds.User, err)
	}
	res, err := c.adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: creds.User, Mechanism: mech, Iterations: 4096, Password: creds.Password,
	}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("add user %s: %w", creds.User, err)
	}
	if len(entries) == 0 {
		return nil
	}
	req := kmsg.NewPtrCreateACLsRequest()
	for _, e := range entries {
		cr := kmsg.NewCreateACLsRequestCreation()
		cr.ResourceType = e.resource
		cr.ResourceName = e.name
		cr.ResourcePatternType = e.pattern
		cr.Principal = "User:" + creds.User
		cr.Host = "*"
		cr.Operation = e.op
		cr.PermissionType = kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, cr)
	}
	resp, err := req.RequestWith(ctx, c.admKgo)
	if err != nil {
		return fmt.Errorf("add user %s: ACLs: %w", creds.User, err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("add user %s: ACLs: %w", creds.User, err)
		}
	}
	return nil
}

// RemoveUser deletes a user's SCRAM credentials and every ACL naming it.
// Connections it already opened stay open until they close.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	described, err := c.adm.DescribeUserSCRAMs(ctx, name)
	if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	d, ok := described[name]
	if !ok || errors.Is(d.Err, kerr.ResourceNotFound) || len(d.CredInfos) == 0 {
		return fmt.Errorf("remove user %s: no such user", name)
	}
	if d.Err != nil {
		return fmt.Errorf("remove user %s: %w", name, d.Err)
	}
	var del []kadm.DeleteSCRAM
	for _, ci := range d.CredInfos {
		del = append(del, kadm.DeleteSCRAM{User: name, Mechanism: ci.Mechanism})
	}
	res, err := c.adm.AlterUserSCRAMs(ctx, del, nil)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	req := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType = kmsg.ACLResourceTypeAny
	f.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	f.Principal = kmsg.StringPtr("User:" + name)
	f.Operation = kmsg.ACLOperationAny
	f.PermissionType = kmsg.ACLPermissionTypeAny
	req.Filters = append(req.Filters, f)
	resp, err := req.RequestWith(ctx, c.admKgo)
	if err != nil {
		return fmt.Errorf("remove user %s: ACLs: %w", name, err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("remove user %s: ACLs: %w", name, err)
		}
	}
	return nil
}

// Users lists the SCRAM users of the cluster with their ALLOW ACLs, by
// name.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	described, err := c.adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	if err := described.Error(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType = kmsg.ACLResourceTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	req.Operation = kmsg.ACLOperationAny
	req.PermissionType = kmsg.ACLPermissionTypeAllow
	resp, err := req.RequestWith(ctx, c.admKgo)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return nil, fmt.Errorf("list users: ACLs: %w", err)
	}
	grants := make(map[string]*Grants)
	for _, r := range resp.Resources {
		p := r.ResourceName
		if r.ResourcePatternType == kmsg.ACLResourcePatternTypePrefixed {
			p += "*"
		}
		for _, a := range r.ACLs {
			user, ok := strings.CutPrefix(a.Principal, "User:")
			if !ok {
				continue
			}
			g := grants[user]
			if g == nil {
				g = &Grants{}
				grants[user] = g
			}
			switch {
			case r.ResourceType == kmsg.ACLResourceTypeTopic && a.Operation == kmsg.ACLOperationRead:
				g.Read = append(g.Read, p)
			case r.ResourceType == kmsg.ACLResourceTypeTopic && a.Operation == kmsg.ACLOperationWrite:
				g.Write = append(g.Write, p)
			case r.ResourceType == kmsg.ACLResourceTypeGroup && a.Operation == kmsg.ACLOperationRead:
				g.Groups = append(g.Groups, p)
			}
		}
	}
	var users []User
	for _, d := range described.Sorted() {
		u := User{Name: d.User}
		for _, ci := range d.CredInfos {
			u.Mechanisms = append(u.Mechanisms, ci.Mechanism.String())
		}
		if g := grants[d.User]; g != nil {
			for _, l := range []*[]string{&g.Read, &g.Write, &g.Groups} {
				slices.Sort(*l)
			}
			u.Grants = *g
		}
		users = append(users, u)
	}
	return users, nil
}
