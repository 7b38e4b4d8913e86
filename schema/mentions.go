package schema

import (
	"bytes"
	"encoding/json"
)

// Mentions are a body convention, not a protocol field: a message mentions users when
// its body is a JSON object with a "mentions" array of user ids, such as
// {"text":"hi @bob","mentions":["bob"]}. The body is stored and relayed byte for byte
// as always; logic reads the array only to tell the offline hook (docs/protocol.md,
// "Offline hook").

// MaxMentions is how many entries of a "mentions" array count: the first
// MaxMentions; the rest are ignored. It bounds the hook's work per message (a member
// check and a presence question per mention).
const MaxMentions = 50

// mentionsKey is what a body must contain to be parsed at all.
var mentionsKey = []byte(`"mentions"`)

// HasMentions is the ingest path's cheap test: whether body may mention anyone. A
// send without the bytes "mentions" costs this one search and nothing else.
func HasMentions(body []byte) bool { return bytes.Contains(body, mentionsKey) }

// ParseMentions returns the users body mentions: the valid ids among the first
// MaxMentions entries of its top-level "mentions" array, each once, in order,
// without sender (nobody is notified of their own message). Anything else (a body
// that is not an object, no array, entries that are not valid ids) mentions nobody
// and is no error: the body is the client's.
func ParseMentions(body []byte, sender string) []string {
	if !HasMentions(body) {
		return nil
	}
	// A map, not a struct: encoding/json matches struct fields case-insensitively,
	// and "Mentions" is not the key.
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return nil
	}
	raw, ok := top["mentions"]
	if !ok {
		return nil
	}
	var entries []json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	var users []string
	for _, e := range entries[:min(len(entries), MaxMentions)] {
		var user string
		if json.Unmarshal(e, &user) != nil || !ValidID(user) || user == sender {
			continue
		}
		dup := false
		for _, u := range users {
			if u == user {
				dup = true
				break
			}
		}
		if !dup {
			users = append(users, user)
		}
	}
	return users
}
