package schema

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Client ops.
const (
	OpIdentify    = "identify"
	OpHeartbeat   = "heartbeat"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpSend        = "send"
	OpHistory     = "history"
	OpRead        = "read"
	OpRefresh     = "refresh"
	OpRooms       = "rooms" // also the reply op
	OpWatch       = "watch"
	OpEdit        = "edit"
	OpDelete      = "delete"
)

// Server ops.
const (
	OpReady        = "ready"
	OpHeartbeatAck = "heartbeat_ack"
	OpSubscribed   = "subscribed"
	OpUnsubscribed = "unsubscribed"
	OpAck          = "ack"
	OpOK           = "ok"
	OpMsgs         = "msgs"
	OpTick         = "tick"
	OpTicks        = "ticks"
	OpMember       = "member"
	OpRoom         = "room"
	OpError        = "error"
	// OpHistory doubles as the reply op of a history request.
)

// MaxWatchedRooms bounds a watch op's rooms.
const MaxWatchedRooms = 16

// Tick modes of identify's d.ticks.
const (
	// TicksCoalesced: a connection gets one ticks frame naming every passive room
	// that changed, at most about once a second.
	TicksCoalesced = "coalesced"
	// TicksSingle: a tick frame per room, at most one per room every 250 ms.
	TicksSingle = "single"
)

// Frame is one client-to-server frame: {"op","rid","d"}. Rid is kept as the raw JSON
// number so that a reply echoes it byte for byte.
type Frame struct {
	Op  string          `json:"op"`
	Rid json.RawMessage `json:"rid,omitempty"`
	D   json.RawMessage `json:"d,omitempty"`
}

// ParseFrame decodes a client frame. It fails with a bad_request *Error on anything
// that is not a JSON object with a string op, an optional integer rid and an optional
// object d. A frame whose rid could be read is returned alongside the error, so the
// error reply can carry it.
func ParseFrame(data []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return Frame{}, Errorf(CodeBadRequest, "frame is not a JSON object with op, rid and d: %v", err)
	}
	if len(f.Rid) > 0 && !validRid(f.Rid) {
		f.Rid = nil
		return f, Errorf(CodeBadRequest, "rid must be a non-negative integer")
	}
	if f.Op == "" {
		return f, Errorf(CodeBadRequest, "op is required")
	}
	if len(f.D) > 0 && !bytes.Equal(f.D, []byte("null")) && f.D[0] != '{' {
		return f, Errorf(CodeBadRequest, "d must be an object")
	}
	return f, nil
}

func validRid(rid json.RawMessage) bool {
	if bytes.Equal(rid, []byte("null")) {
		return false
	}
	_, err := strconv.ParseUint(string(rid), 10, 64)
	return err == nil
}

// DecodeD decodes a frame's d into v, rejecting unknown shapes with bad_request.
func DecodeD(d json.RawMessage, v any) error {
	if len(d) == 0 || bytes.Equal(d, []byte("null")) {
		d = []byte("{}")
	}
	if err := json.Unmarshal(d, v); err != nil {
		return Errorf(CodeBadRequest, "bad d: %v", err)
	}
	return nil
}

// Client frame payloads.
type (
	IdentifyD struct {
		Token string `json:"token"`
		// Ticks is how the connection learns of its passive rooms: TicksCoalesced
		// (the default, "") or TicksSingle.
		Ticks string `json:"ticks,omitempty"`
	}
	SubscribeD struct {
		Room  string `json:"room"`
		Since *int64 `json:"since,omitempty"`
		// Presence asks for presence events of the room while subscribed.
		Presence bool `json:"presence,omitempty"`
	}
	RoomD struct {
		Room string `json:"room"`
	}
	SendD struct {
		Room  string          `json:"room"`
		Nonce string          `json:"nonce"`
		Body  json.RawMessage `json:"body"`
	}
	// EditD replaces the body of the caller's message Seq; it is answered by an ack
	// like a send, with the seq of the edit entry.
	EditD struct {
		Room  string          `json:"room"`
		Nonce string          `json:"nonce"`
		Seq   int64           `json:"seq"`
		Body  json.RawMessage `json:"body"`
	}
	// DeleteD deletes message Seq (the caller's, or any as the room's owner or a
	// moderator); answered by an ack with the seq of the delete entry.
	DeleteD struct {
		Room  string `json:"room"`
		Nonce string `json:"nonce"`
		Seq   int64  `json:"seq"`
	}
	HistoryD struct {
		Room   string `json:"room"`
		Before *int64 `json:"before,omitempty"`
		After  *int64 `json:"after,omitempty"`
		Limit  *int   `json:"limit,omitempty"`
	}
	ReadD struct {
		Room string `json:"room"`
		Seq  int64  `json:"seq"`
	}
	// RoomsD asks for a page of the user's rooms after the room id After.
	RoomsD struct {
		After string `json:"after,omitempty"`
		Limit *int   `json:"limit,omitempty"`
	}
)

// Server frame payloads.
type (
	ReadyRoom struct {
		Room    string `json:"room"`
		Seq     int64  `json:"seq"`
		ReadSeq int64  `json:"read_seq"`
	}
	ReadyD struct {
		User        string `json:"user"`
		Session     string `json:"session"`
		HeartbeatMs int64  `json:"heartbeat_ms"`
		// ExpiresAt is when the token expires (Unix ms), and with it the session
		// unless a refresh replaces the token; 0 (absent) for a token without exp.
		ExpiresAt int64       `json:"expires_at,omitempty"`
		Rooms     []ReadyRoom `json:"rooms"`
		// More says that Rooms is the first page of the user's rooms only: the
		// client asks for the rest with the rooms op or GET /v1/me/rooms.
		More bool `json:"more,omitempty"`
	}
	// RoomsPage is a page of the user's rooms: the rooms op's reply and
	// GET /v1/me/rooms's answer.
	RoomsPage struct {
		Rooms []UserRoom `json:"rooms"`
		More  bool       `json:"more"`
	}
	// RefreshedD answers refresh: the new expiry (Unix ms, 0 for none).
	RefreshedD struct {
		ExpiresAt int64 `json:"expires_at"`
	}
	SubscribedD struct {
		Room string `json:"room"`
		Seq  int64  `json:"seq"`
	}
	AckD struct {
		Room  string `json:"room"`
		Nonce string `json:"nonce"`
		Seq   int64  `json:"seq"`
		Ts    int64  `json:"ts"`
	}
	TickD struct {
		Room string `json:"room"`
		Seq  int64  `json:"seq"`
	}
	// WatchD names the passive rooms whose ticks a connection wants as soon as they
	// come (the rest: about once a second); it replaces the previous set.
	WatchD struct {
		Rooms []string `json:"rooms"`
	}
	// TicksD is a ticks frame's d: the newest seqs of passive rooms that changed.
	TicksD struct {
		Rooms []TickD `json:"rooms"`
	}
	MemberD struct {
		Room   string `json:"room"`
		User   string `json:"user"`
		Action string `json:"action"`
	}
	ErrorD struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

// Member actions.
const (
	ActionJoin  = "join"
	ActionLeave = "leave"
)

// RoomEventD is a room event's d: what changed about a room its members are in.
type RoomEventD struct {
	Room   string `json:"room"`
	Action string `json:"action"`
	// Name: the new name (RoomRenamed). User: the new owner (RoomOwner), the member
	// appointed or removed (RoomModerator), with Moderator saying which.
	Name      string `json:"name,omitempty"`
	User      string `json:"user,omitempty"`
	Moderator *bool  `json:"moderator,omitempty"`
	// Until: when the mute or ban of User ends (RoomMuted, RoomBanned), Unix ms;
	// absent for none.
	Until int64 `json:"until,omitempty"`
}

// Room actions.
const (
	RoomRenamed   = "renamed"
	RoomOwner     = "owner"
	RoomModerator = "moderator"
	// RoomDeleted: the room and its history are gone; a session gets it instead of
	// a member leave and receives nothing of the room after it.
	RoomDeleted = "deleted"
	// Moderation of User (docs/protocol.md): a banned user's sessions get
	// RoomBanned on their own subject after the member leave it causes.
	RoomMuted    = "muted"
	RoomUnmuted  = "unmuted"
	RoomBanned   = "banned"
	RoomUnbanned = "unbanned"
)

// EncodeFrame encodes a server frame {"op","rid","d"}; rid may be nil. A d that
// cannot be encoded makes the frame an internal error with the same rid instead, so
// that the client gets an answer it can read rather than an op with an empty d.
func EncodeFrame(op string, rid json.RawMessage, d any) []byte {
	payload, err := json.Marshal(d)
	if err != nil {
		op, payload = OpError, []byte(`{"code":"`+CodeInternal+`","message":"the reply could not be encoded"}`)
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, '"')
	if len(rid) > 0 {
		b = append(b, `,"rid":`...)
		b = append(b, rid...)
	}
	b = append(b, `,"d":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// EncodeError encodes an error frame for e with rid (which may be nil).
func EncodeError(rid json.RawMessage, e *Error) []byte {
	return EncodeFrame(OpError, rid, ErrorD{Code: e.Code, Message: e.Message})
}
