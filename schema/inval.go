package schema

// Cache invalidation: what a change to the metadata made stale, published on
// im.cache.inval.<table> (subjects.CacheInvalT) after the change commits, by the
// SQLite store's writer or, with MySQL, by `laneim cdc` from the binlog (a change made
// through laneIM may be announced by both: invalidating twice is harmless). Every node
// drops its first-level cache entries for the keys; the second level (Redis) is
// cleaned before the announcement goes out. JSON, so `nats sub 'im.cache.inval.*'`
// shows it.

// Metadata tables whose changes are announced.
const (
	TableRooms   = "rooms"   // keys name Room
	TableMembers = "members" // keys name Room and User; a read state is part of the row
	TableBlocks  = "blocks"  // keys name User and Blocked
	// TableSanctions: keys name Room and User. No cache entry holds it: logic nodes
	// drop the room's mutes they hold (logic/mutes.go).
	TableSanctions = "room_sanctions"
)

// Row changes, as a key's Change.
const (
	ChangeInsert = "insert"
	ChangeUpdate = "update"
	ChangeDelete = "delete"
)

// Inval names the changed rows of one table.
type Inval struct {
	Table string     `json:"table"`
	Keys  []InvalKey `json:"keys"`
}

// InvalKey is the primary key of one changed row and what happened to it (an empty
// Change: unknown, treat as any). A row whose key changed is announced as a delete of
// the old key and an insert of the new. Two keys name more than one row: a key
// naming nothing is every row of the table (a TRUNCATE, ALTER, DROP or RENAME), and a
// members key naming a room alone is every member of that room (a room deleted in
// SQL: its member rows' deletions, cascaded, are not in the binlog).
type InvalKey struct {
	Room    string `json:"room,omitempty"`
	User    string `json:"user,omitempty"`
	Blocked string `json:"blocked,omitempty"`
	Change  string `json:"change,omitempty"`
}
