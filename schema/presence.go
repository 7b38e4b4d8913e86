package schema

// Presence and typing (docs/protocol.md): who of a room's members is online, changes
// to it for connections that asked, and who is typing. None of it is stored or
// sequenced.
const (
	// OpPresence is the client op asking a room's online members, its reply, and the
	// event telling a connection subscribed with presence who came online or went
	// offline in the room.
	OpPresence = "presence"
	// OpTyping is the client op saying the user is typing in a room, and the event
	// naming who is typing.
	OpTyping = "typing"
)

// Presence pages.
const (
	DefaultPresenceLimit = 100
	MaxPresenceLimit     = 1000
)

type (
	// PresenceD asks a page of a room's online members, ordered by user id, after
	// the user id After.
	PresenceD struct {
		Room  string `json:"room"`
		After string `json:"after,omitempty"`
		Limit *int   `json:"limit,omitempty"`
	}
	// PresencePage answers PresenceD and GET /v1/rooms/{room}/presence: how many of
	// the room's members are online, and a page of them.
	PresencePage struct {
		Room   string   `json:"room"`
		Online int      `json:"online"`
		Users  []string `json:"users"`
		More   bool     `json:"more"`
	}
	// PresenceEventD is a presence event's d: the room's online count after the
	// changes, the members who came online (On) and those who went offline (Off)
	// since the previous event of the room.
	PresenceEventD struct {
		Room   string   `json:"room"`
		Online int      `json:"online"`
		On     []string `json:"on,omitempty"`
		Off    []string `json:"off,omitempty"`
	}
	// TypingEventD names the members typing in a room lately (the receiving user
	// aside). A client shows each for TypingShowMs unless named again.
	TypingEventD struct {
		Room  string   `json:"room"`
		Users []string `json:"users"`
	}
)

// TypingShowMs is how long a client shows a user as typing after a typing event
// names it; a typing user's gateway relays it again at most every 3 s.
const TypingShowMs = 5000
