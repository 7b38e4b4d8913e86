-- Mutes and bans of room members (docs/protocol.md, Moderation): kind 'mute' or
-- 'ban', until_ms the end (Unix ms, 0: none). A row whose end has passed no longer
-- applies and stays until lifted. The store deletes a banned user's members and
-- moderators rows in the transaction that writes the ban, and a room's sanctions with
-- the room (no cascades, see 0001_init.sql).

CREATE TABLE IF NOT EXISTS room_sanctions (
	room     VARCHAR(64)  NOT NULL,
	`user`   VARCHAR(64)  NOT NULL,
	kind     VARCHAR(8)   NOT NULL,
	until_ms BIGINT       NOT NULL DEFAULT 0,
	by_user  VARCHAR(64)  NOT NULL,
	reason   VARCHAR(200) NOT NULL DEFAULT '',
	created  BIGINT       NOT NULL, -- Unix ms
	PRIMARY KEY (room, `user`, kind)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
