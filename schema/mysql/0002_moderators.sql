-- The moderators a room's owner appointed: they may delete any message of the room
-- (docs/protocol.md). Only members are moderators: the store deletes a member's
-- moderator row with its members row, and a room's with the room, in the same
-- transaction (no cascades, see 0001_init.sql).

CREATE TABLE IF NOT EXISTS moderators (
	room    VARCHAR(64) NOT NULL,
	`user`  VARCHAR(64) NOT NULL,
	created BIGINT      NOT NULL, -- Unix ms
	PRIMARY KEY (room, `user`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
