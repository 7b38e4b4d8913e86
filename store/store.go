// Package store holds laneIM's durable state behind two interfaces: MessageStore (the
// per-room message log, written by logic in batches and read for history and catch-up)
// and MetaStore (users, rooms, members, read states). The embedded default is SQLite
// (store_sqlite.go); MySQL, ScyllaDB and the otter+Redis cache slot in beside it as
// further implementations or decorators of the same interfaces.
package store

import (
	"context"
	"encoding/json"

	"github.com/laneim/laneim/schema"
)

// NewMessage is a send accepted by logic and not yet given a seq.
type NewMessage struct {
	Room  string
	User  string
	Nonce string
	Ts    int64 // accept time, Unix ms
	Body  json.RawMessage
}

// Appended is the outcome of one NewMessage: the stored message, and whether this
// call stored it (false: the (room, user, nonce) was stored before and keeps its seq
// and ts).
type Appended struct {
	schema.Message
	New bool
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

// MetaStore holds rooms, members and read states. Errors carry schema codes:
// schema.ErrNotFound for a missing room, schema.ErrExists (409) for a duplicate room.
type MetaStore interface {
	// CreateRoom creates room and makes its owner a member, atomically.
	CreateRoom(ctx context.Context, room Room) error
	GetRoom(ctx context.Context, id string) (Room, error)
	// AddMember adds user to room; added is false when it already was a member.
	AddMember(ctx context.Context, room, user string) (added bool, err error)
	// RemoveMember removes user from room (and its read state); removed is false when
	// it was not a member.
	RemoveMember(ctx context.Context, room, user string) (removed bool, err error)
	IsMember(ctx context.Context, room, user string) (bool, error)
	CountMembers(ctx context.Context, room string) (int, error)
	// ListMembers returns up to limit members of room ordered by user id, starting
	// after the user id after, and whether more follow.
	ListMembers(ctx context.Context, room, after string, limit int) ([]string, bool, error)
	// UserRooms returns every room user belongs to, with its read state.
	UserRooms(ctx context.Context, user string) ([]UserRoom, error)
	// SetRead raises user's read seq in room to seq (never lowers it) and returns the
	// resulting read seq.
	SetRead(ctx context.Context, user, room string, seq int64) (int64, error)
	Close() error
}
