// Package store holds laneIM's durable state behind two interfaces: MessageStore (the
// per-room message log, written by logic in batches and read for history and catch-up)
// and MetaStore (users, rooms, members, read states). The embedded default is SQLite
// (store_sqlite.go); MySQL (store_mysql.go) holds the metadata of many nodes, the CQL
// store (store_cql.go, messages_cql.go) the message history on ScyllaDB or Cassandra,
// and the otter+Redis cache (package cache) sits in front of a MetaStore as a
// decorator. store/metatest_test.go and store/messages_test.go are the conformance
// suites every MetaStore and MessageStore pass.
package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/laneim/laneim/schema"
)

// NewMessage is a send, an edit or a delete accepted by logic and not yet given a seq.
type NewMessage struct {
	Room  string
	User  string
	Nonce string
	Ts    int64 // accept time, Unix ms
	Body  json.RawMessage
	// Kind is schema.KindPlain for a send, KindEdit or KindDelete for an entry that
	// acts on the message of seq Ref (its Body: the new body, or nil for a delete).
	Kind schema.Kind
	Ref  int64
	// Moderator lets a delete take another user's message: User owns or moderates
	// the room. Logic finds it out; the store checks the message's author.
	Moderator bool
}

// Appended is the outcome of one NewMessage: the stored message, and whether this
// call stored it (false: the (room, user, nonce) was stored before and keeps its seq
// and ts), or Err when an edit or a delete was refused (no seq taken).
type Appended struct {
	schema.Message
	New bool
	Err *schema.Error
}

// target is what Append knows of the message an edit or a delete acts on.
type target struct {
	found bool
	user  string
	kind  schema.Kind
}

// refuseTarget is the answer to an edit or a delete of t, nil when it may go ahead.
// Every MessageStore answers alike (the conformance suite holds them to it).
func refuseTarget(m NewMessage, t target) *schema.Error {
	switch {
	case !t.found:
		return schema.Errorf(schema.CodeNotFound, "room %s has no message %d", m.Room, m.Ref)
	case t.kind.Targets():
		return schema.Errorf(schema.CodeBadRequest, "message %d is an edit or a delete, not a message", m.Ref)
	case t.kind == schema.KindDeleted:
		return schema.Errorf(schema.CodeNotFound, "message %d was deleted", m.Ref)
	case m.Kind == schema.KindEdit && t.user != m.User:
		return schema.Errorf(schema.CodeForbidden, "only its author edits message %d", m.Ref)
	case m.Kind == schema.KindDelete && t.user != m.User && !m.Moderator:
		return schema.Errorf(schema.CodeForbidden, "only its author, the room's owner and its moderators delete message %d", m.Ref)
	}
	return nil
}

// applied is t after m acted on it, for a later entry of the same Append.
func applied(m NewMessage, t target) target {
	if m.Kind == schema.KindDelete {
		t.kind = schema.KindDeleted
	} else {
		t.kind = schema.KindEdited
	}
	return t
}

// Query selects a page of a room's messages. With Ascending the page holds the first
// Limit messages with seq > After (and < Before when Before > 0); otherwise the last
// Limit messages with seq < Before (when Before > 0) and seq > After. Pages are
// returned in ascending seq order either way.
type Query struct {
	After     int64
	Before    int64
	Limit     int
	Ascending bool
}

// MessageStore is the per-room message log.
//
// Append must only be called by the single writer of each room (logic's pinned
// partition consumer): it assigns each new message the room's last seq plus one.
type MessageStore interface {
	// Append stores msgs durably in one write and returns one Appended per input, in
	// input order. Messages of several rooms may be mixed; seqs of a room are given
	// in input order. A (room, user, nonce) already stored is not stored again.
	//
	// An edit or a delete (Kind KindEdit, KindDelete) is checked against its target
	// as of the entries before it (refuseTarget) and, refused, takes no seq and comes
	// back with Err. Stored, it is an entry of the log at its own seq, and the target
	// shows its current state from then on: an edit's body with KindEdited (Ref: the
	// edit's ts), or KindDeleted with a null body, when a delete also nulls the
	// bodies of the target's edit entries. Range returns that state.
	Append(ctx context.Context, msgs []NewMessage) ([]Appended, error)
	// Range returns a page of room's messages and whether more exist beyond the page
	// in the direction of the query (newer for Ascending, older otherwise).
	Range(ctx context.Context, room string, q Query) ([]schema.Message, bool, error)
	// LastSeq returns the seq of room's newest message, 0 if none.
	LastSeq(ctx context.Context, room string) (int64, error)
	// LastSeqs returns LastSeq of each room; rooms without messages are absent.
	LastSeqs(ctx context.Context, rooms []string) (map[string]int64, error)
	// LookupNonce finds the message user stored in room with nonce.
	LookupNonce(ctx context.Context, room, user, nonce string) (schema.Message, bool, error)
	// DeleteLog deletes room's log: afterwards the room has no messages and no
	// nonces, and a room created again with its id starts from seq 1. Only logic
	// calls it, for a room whose metadata is gone (no member can send to it).
	DeleteLog(ctx context.Context, room string) error
	Close() error
}

// Room is a room's metadata.
type Room struct {
	ID      string
	Name    string
	Owner   string
	Public  bool
	Created int64 // Unix ms
}

// UserRoom is one room of a user with the user's read state.
type UserRoom struct {
	Room    string
	Name    string
	ReadSeq int64
}

// Caps bound what one user accumulates (docs/protocol.md's Limits). A write that would
// take a user past one fails with a *CapError and changes nothing; a zero field is no
// cap.
type Caps struct {
	Rooms   int // rooms the user belongs to
	Created int // rooms the user created (and owns)
	Blocks  int // users the user blocks
}

// Names of the caps in CapError.Cap.
const (
	CapRooms   = "rooms"
	CapCreated = "created"
	CapBlocks  = "blocks"
)

// CapError refuses a write that would take User past the cap Cap (CapRooms, ...) of
// Max. Callers map it onto the protocol's answer, naming their own setting.
type CapError struct {
	Cap  string
	User string
	Max  int
}

func (e *CapError) Error() string {
	return fmt.Sprintf("%s has reached its cap of %d %s", e.User, e.Max, e.Cap)
}

// MembersChecker is implemented by metadata stores that check many memberships in one
// query: logic checks the senders of a whole ingest batch at once through the cache,
// whose misses then cost one query rather than one per sender.
type MembersChecker interface {
	// AreMembers reports for each (room, user) of pairs whether user belongs to room.
	AreMembers(ctx context.Context, pairs [][2]string) ([]bool, error)
}

// MetaStore holds rooms, members, read states and blocks. Errors carry schema codes:
// schema.ErrNotFound for a missing room, schema.ErrExists (409) for a duplicate room;
// a write past a cap fails with *CapError.
type MetaStore interface {
	// CreateRoom creates room and makes its owner a member, atomically, unless the
	// owner is at caps.Created rooms created or caps.Rooms rooms.
	CreateRoom(ctx context.Context, room Room, caps Caps) error
	GetRoom(ctx context.Context, id string) (Room, error)
	// AddMember adds user to room unless user is at caps.Rooms rooms; added is false
	// when it already was a member (which no cap refuses).
	AddMember(ctx context.Context, room, user string, caps Caps) (added bool, err error)
	// RemoveMember removes user from room (and its read state); removed is false when
	// it was not a member.
	RemoveMember(ctx context.Context, room, user string) (removed bool, err error)
	// LeaveRooms removes user from each of rooms in one write and returns the rooms it
	// was a member of, in the order given, each once.
	LeaveRooms(ctx context.Context, user string, rooms []string) (left []string, err error)
	IsMember(ctx context.Context, room, user string) (bool, error)
	CountMembers(ctx context.Context, room string) (int, error)
	// ListMembers returns up to limit members of room ordered by user id, starting
	// after the user id after, and whether more follow.
	ListMembers(ctx context.Context, room, after string, limit int) ([]string, bool, error)
	// UserRooms returns up to limit rooms user belongs to, ordered by room id,
	// starting after the room id after, with the user's read state, and whether more
	// follow.
	UserRooms(ctx context.Context, user, after string, limit int) ([]UserRoom, bool, error)
	// SetRead raises user's read seq in room to seq (never lowers it) and returns the
	// resulting read seq.
	SetRead(ctx context.Context, user, room string, seq int64) (int64, error)
	// Block records that user refuses adds by blocked, unless user is at caps.Blocks
	// blocks; added is false when it already did.
	Block(ctx context.Context, user, blocked string, caps Caps) (added bool, err error)
	// Unblock lifts a block; removed is false when there was none.
	Unblock(ctx context.Context, user, blocked string) (removed bool, err error)
	// IsBlocked reports whether user blocks blocked.
	IsBlocked(ctx context.Context, user, blocked string) (bool, error)
	// ListBlocks returns up to limit users user blocks, ordered by id, starting after
	// the id after, and whether more follow.
	ListBlocks(ctx context.Context, user, after string, limit int) ([]string, bool, error)

	// RenameRoom sets room's name; schema.ErrNotFound for a missing room.
	RenameRoom(ctx context.Context, room, name string) error
	// TransferRoom makes user, a member of room, its owner, unless user is at
	// caps.Created rooms created; the previous owner stays a member, and user is no
	// longer listed as a moderator (an owner may do all a moderator may). Fails with
	// not_found for a missing room, forbidden when user is not a member.
	TransferRoom(ctx context.Context, room, user string, caps Caps) error
	// DeleteRoom deletes room with its members, moderators and sanctions, in one
	// write, and returns the users that were its members. not_found for a missing
	// room.
	DeleteRoom(ctx context.Context, room string) (members []string, err error)
	// SetModerator appoints (moderator true) or removes user as a moderator of room;
	// changed is false when it already was so. Only a member is appointed
	// (forbidden otherwise); a moderator who leaves the room stops being one.
	SetModerator(ctx context.Context, room, user string, moderator bool) (changed bool, err error)
	// IsModerator reports whether user is an appointed moderator of room (the owner
	// is not one unless appointed before a transfer made it owner).
	IsModerator(ctx context.Context, room, user string) (bool, error)
	// ListModerators returns up to limit moderators of room, ordered by id.
	ListModerators(ctx context.Context, room string, limit int) ([]string, error)

	// Sanction mutes or bans s.User in s.Room (s.Kind), replacing a sanction of the
	// kind it had; s.Created, when zero, is set to now. A ban also removes the user
	// from the room (and from its moderators) in the same write: member reports
	// whether it was one. not_found for a missing room.
	Sanction(ctx context.Context, s Sanction) (member bool, err error)
	// Lift ends user's sanction of kind in room; lifted is false when there was none.
	Lift(ctx context.Context, room, user, kind string) (lifted bool, err error)
	// GetSanction returns user's sanction of kind in room, whether or not its end
	// has passed (Sanction.Active tells).
	GetSanction(ctx context.Context, room, user, kind string) (Sanction, bool, error)
	// Sanctions returns up to limit sanctions of kind in room active at now (Unix
	// ms), ordered by user id, starting after the user id after, and whether more
	// follow.
	Sanctions(ctx context.Context, room, kind, after string, now int64, limit int) ([]Sanction, bool, error)
	// RoomMutes returns the mutes of each of rooms active at now: user -> until (0:
	// no end). A room without any is absent.
	RoomMutes(ctx context.Context, rooms []string, now int64) (map[string]map[string]int64, error)
	Close() error
}

// Kinds of Sanction.
const (
	SanctionMute = "mute" // the user's sends and edits in the room are refused
	SanctionBan  = "ban"  // the user is out of the room and may not join or be added
)

// Sanction is a mute or a ban of a user in a room.
type Sanction struct {
	Room    string
	User    string
	Kind    string // SanctionMute or SanctionBan
	Until   int64  // Unix ms when it ends; 0: no end
	By      string // who imposed it
	Reason  string // at most schema.MaxReasonBytes
	Created int64  // Unix ms
}

// Active reports whether s applies at now (Unix ms).
func (s Sanction) Active(now int64) bool { return s.Until == 0 || s.Until > now }

// notMember is the refusal of a role for a user who is not a member of room.
func notMember(room, user string) error {
	return schema.Errorf(schema.CodeForbidden, "%s is not a member of room %s", user, room)
}
