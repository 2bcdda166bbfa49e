package metastore

import "encoding/json"

// MergeDetails returns raw, a JSON object of a stream's Details (or
// nothing), with the members in kv set; members that do not marshal are
// skipped. Pipelines keep their own members in Details this way without
// dropping the others'.
func MergeDetails(raw json.RawMessage, kv map[string]any) json.RawMessage {
	m := map[string]json.RawMessage{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	for k, v := range kv {
		b, err := json.Marshal(v)
		if err != nil {
			continue
		}
		m[k] = b
	}
	out, _ := json.Marshal(m)
	return out
}

// DetailRaw returns the member key of raw, a JSON object of a stream's
// Details, or nil.
func DetailRaw(raw json.RawMessage, key string) json.RawMessage {
	m := map[string]json.RawMessage{}
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m[key]
}
