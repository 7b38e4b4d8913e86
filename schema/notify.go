package schema

import "encoding/json"

// The offline hook's wire types (docs/protocol.md, "Offline hook"). A stored send that
// mentions users goes from logic to the notifier on IM_MENTIONS as a Mention; the
// notifier asks logic which mentioned users are members (MembersCheckReq) and every
// gateway which of them are active (ActiveReq), and publishes a Notification on
// IM_NOTIFY naming those offline or passive, and POSTs it to the webhook in a
// WebhookBatch.

// Mention is an IM_MENTIONS message. Body, the message's body byte for byte, is
// encoded last by EncodeWithBody.
type Mention struct {
	Room     string          `json:"room"`
	Seq      int64           `json:"seq"`
	Ts       int64           `json:"ts"`
	From     string          `json:"from"`
	Mentions []string        `json:"mentions"`
	Body     json.RawMessage `json:"-"`
}

// UnmarshalJSON reads a Mention with its body, kept byte for byte.
func (m *Mention) UnmarshalJSON(data []byte) error {
	type plain Mention
	var v struct {
		plain
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*m = Mention(v.plain)
	m.Body = v.Body
	return nil
}

// User states of a Notification.
const (
	// StateOffline: no connection of the user on any gateway.
	StateOffline = "offline"
	// StatePassive: connected, but no connection subscribed to the room.
	StatePassive = "passive"
)

// NotifiedUser is a mentioned member who was not looking at the room.
type NotifiedUser struct {
	User  string `json:"user"`
	State string `json:"state"`
}

// Notification is an IM_NOTIFY message and an entry of a webhook POST: the members a
// message mentioned who were offline or passive when the notifier looked. ID is
// room:seq:ts (subjects.MentionMsgIDT), the same on every redelivery, for the backend
// to deduplicate. Body, the message's body byte for byte, is encoded last by
// EncodeWithBody.
type Notification struct {
	ID    string          `json:"id"`
	Room  string          `json:"room"`
	Seq   int64           `json:"seq"`
	Ts    int64           `json:"ts"`
	From  string          `json:"from"`
	Users []NotifiedUser  `json:"users"`
	Body  json.RawMessage `json:"-"`
}

// UnmarshalJSON reads a Notification with its body, kept byte for byte.
func (n *Notification) UnmarshalJSON(data []byte) error {
	type plain Notification
	var v struct {
		plain
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*n = Notification(v.plain)
	n.Body = v.Body
	return nil
}

// EncodeWithBody encodes v, a struct encoding to a JSON object, with "body": body as
// its last member, the body's bytes unchanged (json.Marshal would compact a
// json.RawMessage and escape its HTML characters). An empty body is left out.
func EncodeWithBody(v any, body []byte) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil || len(body) == 0 {
		return data, err
	}
	out := make([]byte, 0, len(data)+len(body)+9)
	out = append(out, data[:len(data)-1]...)
	if len(data) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"body":`...)
	out = append(out, body...)
	return append(out, '}'), nil
}

// WebhookBatch is the body of a POST to the offline webhook.
type WebhookBatch struct {
	Notifications []json.RawMessage `json:"notifications"`
}

// ActiveReq asks every gateway, on im.presence.active, about users of rooms: room id
// -> user ids.
type ActiveReq struct {
	Rooms map[string][]string `json:"rooms"`
}

// ActiveReply is one gateway's answer: of the users asked, Online have a connection
// on this gateway, and Subscribed[room] a connection subscribed to room.
type ActiveReply struct {
	Gateway    string              `json:"gateway"`
	Online     []string            `json:"online,omitempty"`
	Subscribed map[string][]string `json:"subscribed,omitempty"`
}

// MembersCheckReq asks logic, on im.members.check, which (room, user) pairs are
// memberships.
type MembersCheckReq struct {
	Pairs [][2]string `json:"pairs"`
}

// MembersCheckReply answers a MembersCheckReq: Members[i] for Pairs[i].
type MembersCheckReply struct {
	Reply
	Members []bool `json:"members"`
}

// MaxMembersCheck caps the pairs of one MembersCheckReq.
const MaxMembersCheck = 5000
