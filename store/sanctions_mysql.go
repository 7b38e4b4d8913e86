package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/laneim/laneim/schema"
)

// Mutes and bans in the MySQL store. Without cascades (schema/mysql/0001_init.sql), a
// ban deletes the members and moderators rows itself, and DeleteRoom the room's
// sanctions, each in its transaction.

// Sanction implements MetaStore. The room's row is locked first, as DeleteRoom
// locks it, so that no sanction outlives its room.
func (s *MySQL) Sanction(ctx context.Context, sanction Sanction) (bool, error) {
	if sanction.Created == 0 {
		sanction.Created = time.Now().UnixMilli()
	}
	var member bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rooms WHERE id = ? FOR UPDATE`, sanction.Room).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", sanction.Room)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO room_sanctions (room, `user`, kind, until_ms, by_user, reason, created) "+
			"VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE until_ms = VALUES(until_ms), by_user = VALUES(by_user), "+
			"reason = VALUES(reason), created = VALUES(created)",
			sanction.Room, sanction.User, sanction.Kind, sanction.Until, sanction.By, sanction.Reason, sanction.Created); err != nil {
			return err
		}
		if sanction.Kind != SanctionBan {
			return nil
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM members WHERE room = ? AND `user` = ?", sanction.Room, sanction.User)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if member = n == 1; err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM moderators WHERE room = ? AND `user` = ?", sanction.Room, sanction.User)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s %s in room %s: %w", sanction.Kind, sanction.User, sanction.Room, classify(err))
	}
	return member, nil
}

// Lift implements MetaStore.
func (s *MySQL) Lift(ctx context.Context, room, user, kind string) (bool, error) {
	lifted, err := s.deleteOne(ctx, "DELETE FROM room_sanctions WHERE room = ? AND `user` = ? AND kind = ?", room, user, kind)
	if err != nil {
		return false, fmt.Errorf("lift the %s of %s in room %s: %w", kind, user, room, classify(err))
	}
	return lifted, nil
}

// GetSanction implements MetaStore.
func (s *MySQL) GetSanction(ctx context.Context, room, user, kind string) (Sanction, bool, error) {
	out := Sanction{Room: room, User: user, Kind: kind}
	err := s.db.QueryRowContext(ctx, "SELECT until_ms, by_user, reason, created FROM room_sanctions "+
		"WHERE room = ? AND `user` = ? AND kind = ?", room, user, kind).Scan(&out.Until, &out.By, &out.Reason, &out.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return Sanction{}, false, nil
	}
	if err != nil {
		return Sanction{}, false, fmt.Errorf("the %s of %s in room %s: %w", kind, user, room, classify(err))
	}
	return out, true, nil
}

// Sanctions implements MetaStore.
func (s *MySQL) Sanctions(ctx context.Context, room, kind, after string, now int64, limit int) ([]Sanction, bool, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT `user`, until_ms, by_user, reason, created FROM room_sanctions "+
		"WHERE room = ? AND kind = ? AND `user` > ? AND (until_ms = 0 OR until_ms > ?) ORDER BY `user` LIMIT ?",
		room, kind, after, now, limit+1)
	out, more, err := scanSanctions(rows, err, room, kind, limit)
	if err != nil {
		return nil, false, fmt.Errorf("%ss of room %s: %w", kind, room, classify(err))
	}
	return out, more, nil
}

// RoomMutes implements MetaStore: a primary key range per room, a statement per 500
// rooms.
func (s *MySQL) RoomMutes(ctx context.Context, rooms []string, now int64) (map[string]map[string]int64, error) {
	out, err := roomMutes(ctx, s.db, rooms, now, "`user`")
	if err != nil {
		return nil, fmt.Errorf("mutes of %d rooms: %w", len(rooms), classify(err))
	}
	return out, nil
}
