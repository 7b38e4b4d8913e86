-- laneIM's metadata in MySQL 8 or MariaDB 10.11: rooms, members with their read
-- states, and blocks. The store applies the files of this directory in version order,
-- once each, recording them in schema_migrations (see schema.MySQLMigrations).
--
-- Rules for these files, so that they run the same on both servers:
-- * Statements end with ";" at the end of a line, and comments take whole lines
--   (the runner splits on that); no ";" inside a comment.
-- * Every statement may run again: DDL commits as it goes, so a migration cut off
--   half way is run again from its start by the next node to open the store.
-- * No foreign keys with ON DELETE CASCADE, and no triggers: rows deleted by a
--   cascade are not written to the binlog as row events, so the CDC (laneim cdc)
--   would never hear of them, and CREATE TRIGGER with the binlog on needs SUPER or
--   log_bin_trust_function_creators on MySQL 8. Whoever deletes a room deletes its
--   members in the same transaction.
-- * Ids (schema.ValidID: 1 to 64 of A-Z a-z 0-9 _ -) are compared and ordered by
--   byte: utf8mb4_bin, so that 'A' and 'a' are different users, as in SQLite.

CREATE TABLE IF NOT EXISTS rooms (
	id       VARCHAR(64)  NOT NULL,
	name     VARCHAR(200) NOT NULL,
	owner    VARCHAR(64)  NOT NULL,
	`public` BOOLEAN      NOT NULL,
	created  BIGINT       NOT NULL, -- Unix ms
	PRIMARY KEY (id),
	-- The rooms a user created, counted for the created cap.
	KEY rooms_owner (owner)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Membership and read state in one row: leaving a room drops its read state. room and
-- user hold the ids verbatim, so that operators can read and change them by hand.
CREATE TABLE IF NOT EXISTS members (
	room     VARCHAR(64) NOT NULL,
	`user`   VARCHAR(64) NOT NULL,
	joined   BIGINT      NOT NULL, -- Unix ms
	read_seq BIGINT      NOT NULL DEFAULT 0,
	PRIMARY KEY (room, `user`),
	-- The rooms of a user, in room order. read_seq is not in it: it changes on every
	-- read receipt, and keeping it out means SetRead rewrites the clustered row only.
	KEY members_user (`user`, room)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Blocks: user refuses to be added to rooms by blocked (docs/protocol.md). A user's
-- own list is read by user, so the primary key serves it.
CREATE TABLE IF NOT EXISTS blocks (
	`user`  VARCHAR(64) NOT NULL,
	blocked VARCHAR(64) NOT NULL,
	created BIGINT      NOT NULL, -- Unix ms
	PRIMARY KEY (`user`, blocked)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per user who ever took a place under a cap (docs/protocol.md's Limits): a
-- write that checks one of the user's caps locks this row first, so that two
-- concurrent adds of one user cannot both pass a cap. The counts themselves are
-- counted from members, rooms and blocks under that lock rather than kept here, so
-- that rows changed by hand count as they are.
CREATE TABLE IF NOT EXISTS user_locks (
	`user` VARCHAR(64) NOT NULL,
	PRIMARY KEY (`user`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
