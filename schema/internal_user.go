package schema

// Internal wire types of logic's services for what a user accepts (leaving rooms in
// bulk, blocking adds), and the limits of docs/protocol.md that bound a user's room
// list and these requests.

// Page limits of a user's room list and blocks, and the rooms one bulk leave takes.
// A page of 500 rooms is at most about 700 KB of JSON (64-byte ids, 200-byte names
// even if every byte is escaped), under NATS's 1 MiB payload limit; logic trims a
// page to 256 KiB besides.
const (
	DefaultUserRoomsLimit = 500
	MaxUserRoomsLimit     = 500
	MaxLeaveRooms         = 500
	DefaultBlockLimit     = 100
	MaxBlockLimit         = 1000
	// MaxRoomNameBytes is the longest room name.
	MaxRoomNameBytes = 200
)

// UserLeaveReq removes the caller from each of Rooms, at most MaxLeaveRooms.
type UserLeaveReq struct {
	Rooms []string `json:"rooms"`
}

// UserLeaveReply lists the rooms the caller was a member of and left, in the order
// asked.
type UserLeaveReply struct {
	Reply
	Left []string `json:"left"`
}

// BlockReq makes the caller refuse, or accept again, adds to rooms by Target.
type BlockReq struct {
	Target string `json:"target"`
}

// BlockListReq asks for a page of the users the caller blocks, after the user id
// After.
type BlockListReq struct {
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

type BlockListReply struct {
	Reply
	Users []string `json:"users"`
	More  bool     `json:"more"`
}
