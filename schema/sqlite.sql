-- laneIM's embedded SQLite schema: the message log and the metadata (rooms, members,
-- read states). Every statement is idempotent; the store runs the whole file at open.

-- One row per stored message. The primary key is the room's log in seq order, so a
-- history page or the last seq of a room is one b-tree seek; WITHOUT ROWID keeps the
-- rows in that order instead of behind a rowid indirection.
CREATE TABLE IF NOT EXISTS messages (
	room   TEXT    NOT NULL,
	seq    INTEGER NOT NULL,
	ts     INTEGER NOT NULL, -- accept time, Unix ms
	sender TEXT    NOT NULL,
	nonce  TEXT    NOT NULL,
	body   BLOB,             -- the JSON body, byte for byte
	PRIMARY KEY (room, seq)
) WITHOUT ROWID;

-- Idempotent send: a retried (room, sender, nonce) finds the message stored first.
CREATE UNIQUE INDEX IF NOT EXISTS messages_nonce ON messages (room, sender, nonce);

CREATE TABLE IF NOT EXISTS rooms (
	id      TEXT    NOT NULL PRIMARY KEY,
	name    TEXT    NOT NULL,
	owner   TEXT    NOT NULL,
	public  INTEGER NOT NULL, -- 0 or 1
	created INTEGER NOT NULL  -- Unix ms
) WITHOUT ROWID;

-- Membership and read state in one row: leaving a room drops its read state.
CREATE TABLE IF NOT EXISTS members (
	room     TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	user     TEXT    NOT NULL,
	joined   INTEGER NOT NULL, -- Unix ms
	read_seq INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (room, user)
) WITHOUT ROWID;

-- The rooms of a user. read_seq is deliberately not in the index: it changes on every
-- read receipt, and keeping it out means SetRead rewrites the table row only.
CREATE INDEX IF NOT EXISTS members_user ON members (user, room);
