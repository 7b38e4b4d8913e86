package schema

// Internal wire types: the requests and replies of logic's NATS services and the ack
// logic sends a gateway. They are JSON, so `nats req` works for an operator. Every
// reply embeds Err; a nil Err means success.
//
// No request names the user it acts for: every request carries the user's own token
// in the Laneim-Token header (subjects.HeaderToken), and logic verifies it and acts as
// its subject, so that holding a NATS credential is not enough to act as anyone:
//
//	nats req im.svc.room.get '{"room":"general"}' -H "Laneim-Token:$(laneim token alice)"

// Reply is embedded in every service reply.
type Reply struct {
	Err *Error `json:"err,omitempty"`
}

// Failed returns r.Err as an error, or nil.
func (r Reply) Failed() error {
	if r.Err == nil {
		return nil
	}
	return r.Err
}

// HistoryReq asks for a page of a room's messages, of which the caller must be a
// member. With After set the page ascends from After; otherwise it holds the newest
// messages below Before (or the newest of all).
type HistoryReq struct {
	Room   string `json:"room"`
	Before *int64 `json:"before,omitempty"`
	After  *int64 `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// HistoryReply is a history page: logic answers with the batch encoding of
// docs/protocol.md itself (AppendBatch with "more"), so message bodies travel byte for byte
// (json.Marshal of a json.RawMessage would compact and HTML-escape them). The gateway
// decodes a page and encodes what it sends itself: a history reply carrying the
// request's rid, or catch-up and gap-fill frames trimmed to what a connection lacks
// and split at 64 KiB.
type HistoryReply struct {
	Reply
	Batch
}

// Page returns the page's messages and whether more exist.
func (h *HistoryReply) Page() ([]Message, bool, error) {
	msgs, err := h.Messages()
	return msgs, h.More != nil && *h.More, err
}

// RoomStateReq asks whether the caller is a member of Room and the room's last seq.
type RoomStateReq struct {
	Room string `json:"room"`
}

type RoomStateReply struct {
	Reply
	Member bool  `json:"member"`
	Seq    int64 `json:"seq"`
}

// RoomInfo describes a room as docs/protocol.md's HTTP API returns it.
type RoomInfo struct {
	Room    string `json:"room"`
	Name    string `json:"name"`
	Owner   string `json:"owner"`
	Public  bool   `json:"public"`
	Seq     *int64 `json:"seq,omitempty"`
	Members *int   `json:"members,omitempty"`
}

// RoomRenameReq renames Room; RoomTransferReq gives it to Owner; RoomDeleteReq
// deletes it with its history.
type RoomRenameReq struct {
	Room string `json:"room"`
	Name string `json:"name"`
}

type RoomTransferReq struct {
	Room  string `json:"room"`
	Owner string `json:"owner"`
}

type RoomDeleteReq struct {
	Room string `json:"room"`
}

// ModeratorReq appoints (Moderator true) or removes Target as a moderator of Room.
type ModeratorReq struct {
	Room      string `json:"room"`
	Target    string `json:"target"`
	Moderator bool   `json:"moderator"`
}

type RoomCreateReq struct {
	Room   string `json:"room,omitempty"`
	Name   string `json:"name,omitempty"`
	Public bool   `json:"public,omitempty"`
}

type RoomGetReq struct {
	Room string `json:"room"`
}

type RoomReply struct {
	Reply
	Room RoomInfo `json:"room"`
	// Moderators lists the room's moderators (room-get only), in id order.
	Moderators []string `json:"moderators,omitempty"`
}

// RoomDetail is GET /v1/rooms/{room}'s answer: the room and its moderators.
type RoomDetail struct {
	RoomInfo
	Moderators []string `json:"moderators"`
}

// MemberReq adds or removes Target in Room on behalf of the caller.
type MemberReq struct {
	Room   string `json:"room"`
	Target string `json:"target"`
}

// SanctionReq mutes or bans (Kind "mute", "ban") Target in Room until Until (Unix
// ms) or for DurationMs from now, or with no end when neither is given; Lift ends
// the sanction instead.
type SanctionReq struct {
	Room       string `json:"room"`
	Target     string `json:"target"`
	Kind       string `json:"kind"`
	Lift       bool   `json:"lift,omitempty"`
	Until      int64  `json:"until,omitempty"`
	DurationMs int64  `json:"duration_ms,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// SanctionListReq asks for a page of Room's active sanctions of Kind.
type SanctionListReq struct {
	Room  string `json:"room"`
	Kind  string `json:"kind"`
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// SanctionInfo is one muted or banned user as GET /v1/rooms/{room}/mutes and /bans
// list it: Until absent for no end.
type SanctionInfo struct {
	User   string `json:"user"`
	Until  int64  `json:"until,omitempty"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

type SanctionListReply struct {
	Reply
	Users []SanctionInfo `json:"users"`
	More  bool           `json:"more"`
}

type MemberListReq struct {
	Room  string `json:"room"`
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

type MemberListReply struct {
	Reply
	Members []string `json:"members"`
	More    bool     `json:"more"`
}

// ReadSetReq marks Room read up to Seq for the caller; Session is the origin session,
// which the read event skips.
type ReadSetReq struct {
	Session string `json:"session,omitempty"`
	Room    string `json:"room"`
	Seq     int64  `json:"seq"`
}

// UserRoomsReq asks for a page of the caller's rooms, ordered by room id, after the
// room id After; Limit 0 means DefaultUserRoomsLimit.
type UserRoomsReq struct {
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

type UserRoom struct {
	Room    string `json:"room"`
	Name    string `json:"name"`
	Seq     int64  `json:"seq"`
	ReadSeq int64  `json:"read_seq"`
}

type UserRoomsReply struct {
	Reply
	Rooms []UserRoom `json:"rooms"`
	More  bool       `json:"more"`
}

// NonceLookupReq asks for the seq the caller's nonce got in Room.
type NonceLookupReq struct {
	Room  string `json:"room"`
	Nonce string `json:"nonce"`
}

type NonceLookupReply struct {
	Reply
	Found bool  `json:"found"`
	Seq   int64 `json:"seq"`
	Ts    int64 `json:"ts"`
}

// SendAck is logic's answer to the sending gateway once a send is stored (or
// refused). Logic publishes the acks of one ingest batch for one gateway as a JSON
// array on the gateway's ack subject.
type SendAck struct {
	Room  string `json:"room"`
	User  string `json:"user"`
	Nonce string `json:"nonce"`
	Seq   int64  `json:"seq"`
	Ts    int64  `json:"ts"`
	Err   *Error `json:"err,omitempty"`
}

// Limits of docs/protocol.md.
const (
	DefaultMaxFrameBytes = 65536
	DefaultMaxBodyBytes  = 4096
	DefaultHistoryLimit  = 50
	MaxHistoryLimit      = 200
	DefaultMemberLimit   = 100
	MaxMemberLimit       = 1000
	// MaxModerators bounds a room's moderators: GET /v1/rooms/{room} lists them all.
	MaxModerators = 100
	// MaxReasonBytes bounds the reason of a mute or a ban.
	MaxReasonBytes       = 200
	DefaultSanctionLimit = 100
	MaxSanctionLimit     = 1000
)
