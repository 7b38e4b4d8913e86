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
	body   BLOB,             -- the JSON body, byte for byte; NULL once deleted
	-- schema.Kind: 0 a message, 1 an edit of message ref, 2 a delete of message
	-- ref, 3 a message edited since (ref: the last edit's ts), 4 a deleted one. An
	-- edit or a delete updates its target's row: history reads the current state.
	-- (Added to older databases by the store's migrate, with the index of edits.)
	kind   INTEGER NOT NULL DEFAULT 0,
	ref    INTEGER NOT NULL DEFAULT 0,
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

-- Blocks: user refuses to be added to rooms by blocked (docs/protocol.md). A user's
-- own list is read by user, so the primary key serves it.
CREATE TABLE IF NOT EXISTS blocks (
	user    TEXT    NOT NULL,
	blocked TEXT    NOT NULL,
	created INTEGER NOT NULL, -- Unix ms
	PRIMARY KEY (user, blocked)
) WITHOUT ROWID;

-- What each user holds, for the caps of docs/protocol.md's Limits. The triggers below
-- keep it, in the transaction of the change, so that a cap costs one lookup rather
-- than counting up to 10,000 index entries (about a millisecond on the single
-- writer) on every add. The store fills it once for a database from before it
-- (user_version < 1).
CREATE TABLE IF NOT EXISTS user_counts (
	user    TEXT    NOT NULL PRIMARY KEY,
	rooms   INTEGER NOT NULL DEFAULT 0, -- rows of members
	created INTEGER NOT NULL DEFAULT 0, -- rows of rooms it owns
	blocks  INTEGER NOT NULL DEFAULT 0  -- rows of blocks
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS user_counts_member_in AFTER INSERT ON members BEGIN
	INSERT INTO user_counts (user, rooms) VALUES (NEW.user, 1)
		ON CONFLICT (user) DO UPDATE SET rooms = rooms + 1;
END;
CREATE TRIGGER IF NOT EXISTS user_counts_member_out AFTER DELETE ON members BEGIN
	UPDATE user_counts SET rooms = rooms - 1 WHERE user = OLD.user;
END;
CREATE TRIGGER IF NOT EXISTS user_counts_room_in AFTER INSERT ON rooms BEGIN
	INSERT INTO user_counts (user, created) VALUES (NEW.owner, 1)
		ON CONFLICT (user) DO UPDATE SET created = created + 1;
END;
CREATE TRIGGER IF NOT EXISTS user_counts_room_out AFTER DELETE ON rooms BEGIN
	UPDATE user_counts SET created = created - 1 WHERE user = OLD.owner;
END;
CREATE TRIGGER IF NOT EXISTS user_counts_block_in AFTER INSERT ON blocks BEGIN
	INSERT INTO user_counts (user, blocks) VALUES (NEW.user, 1)
		ON CONFLICT (user) DO UPDATE SET blocks = blocks + 1;
END;
CREATE TRIGGER IF NOT EXISTS user_counts_block_out AFTER DELETE ON blocks BEGIN
	UPDATE user_counts SET blocks = blocks - 1 WHERE user = OLD.user;
END;

-- The moderators a room's owner appointed: they may delete any message of the room
-- (docs/protocol.md). Only members are moderators: a member's row going takes its
-- moderator row with it.
CREATE TABLE IF NOT EXISTS moderators (
	room    TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	user    TEXT    NOT NULL,
	created INTEGER NOT NULL, -- Unix ms
	PRIMARY KEY (room, user)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS moderators_member_out AFTER DELETE ON members BEGIN
	DELETE FROM moderators WHERE room = OLD.room AND user = OLD.user;
END;
-- A room given to another owner counts under the new owner's created cap.
CREATE TRIGGER IF NOT EXISTS user_counts_room_owner AFTER UPDATE OF owner ON rooms
	WHEN OLD.owner != NEW.owner BEGIN
	UPDATE user_counts SET created = created - 1 WHERE user = OLD.owner;
	INSERT INTO user_counts (user, created) VALUES (NEW.owner, 1)
		ON CONFLICT (user) DO UPDATE SET created = created + 1;
END;

-- Mutes and bans of room members (docs/protocol.md, Moderation): kind 'mute' or
-- 'ban', until_ms the end (Unix ms, 0: none). A row whose end has passed no longer
-- applies and stays until lifted. A ban takes the user's members row away in the
-- transaction that writes it.
CREATE TABLE IF NOT EXISTS room_sanctions (
	room     TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
	user     TEXT    NOT NULL,
	kind     TEXT    NOT NULL,
	until_ms INTEGER NOT NULL DEFAULT 0,
	by_user  TEXT    NOT NULL,
	reason   TEXT    NOT NULL DEFAULT '',
	created  INTEGER NOT NULL, -- Unix ms
	PRIMARY KEY (room, user, kind)
) WITHOUT ROWID;
