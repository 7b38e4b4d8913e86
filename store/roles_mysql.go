package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/laneim/laneim/schema"
)

// Room management and moderators in the MySQL store. Without cascades or triggers
// (schema/mysql/0001_init.sql), every write that removes members removes their
// moderator rows itself, in its transaction.

// RenameRoom implements MetaStore.
func (s *MySQL) RenameRoom(ctx context.Context, room, name string) error {
	// Rows affected counts changed rows only: a rename to the same name is told from
	// a missing room by reading it.
	res, err := s.db.ExecContext(ctx, `UPDATE rooms SET name = ? WHERE id = ?`, name, room)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			_, err = s.GetRoom(ctx, room)
		}
	}
	if err != nil {
		return fmt.Errorf("rename room %s: %w", room, classify(err))
	}
	return nil
}

// TransferRoom implements MetaStore.
func (s *MySQL) TransferRoom(ctx context.Context, room, user string, caps Caps) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := lockUser(ctx, tx, user, caps, CapCreated); err != nil {
			return err
		}
		var owner string
		err := tx.QueryRowContext(ctx, `SELECT owner FROM rooms WHERE id = ? FOR UPDATE`, room).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
		}
		if err != nil || owner == user {
			return err
		}
		var one int
		err = tx.QueryRowContext(ctx, "SELECT 1 FROM members WHERE room = ? AND `user` = ? FOR UPDATE", room, user).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notMember(room, user)
		}
		if err != nil {
			return err
		}
		if err := countCaps(ctx, tx, user, caps, CapCreated); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rooms SET owner = ? WHERE id = ?`, user, room); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM moderators WHERE room = ? AND `user` = ?", room, user)
		return err
	})
	if err != nil {
		return fmt.Errorf("give room %s to %s: %w", room, user, classify(err))
	}
	return nil
}

// DeleteRoom implements MetaStore: the room's rows are locked, then its members,
// moderators, sanctions and the room itself deleted, each a row event in the binlog (which
// `laneim cdc` announces).
func (s *MySQL) DeleteRoom(ctx context.Context, room string) ([]string, error) {
	var members []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rooms WHERE id = ? FOR UPDATE`, room).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
		}
		if err != nil {
			return err
		}
		members, err = scanStrings(tx.QueryContext(ctx, "SELECT `user` FROM members WHERE room = ? ORDER BY `user` FOR UPDATE", room))
		if err != nil {
			return err
		}
		for _, query := range []string{
			`DELETE FROM members WHERE room = ?`,
			`DELETE FROM moderators WHERE room = ?`,
			`DELETE FROM room_sanctions WHERE room = ?`,
			`DELETE FROM rooms WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, query, room); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete room %s: %w", room, classify(err))
	}
	return members, nil
}

// SetModerator implements MetaStore.
func (s *MySQL) SetModerator(ctx context.Context, room, user string, moderator bool) (bool, error) {
	if !moderator {
		removed, err := s.deleteOne(ctx, "DELETE FROM moderators WHERE room = ? AND `user` = ?", room, user)
		if err != nil {
			return false, fmt.Errorf("remove moderator %s of room %s: %w", user, room, classify(err))
		}
		return removed, nil
	}
	var added bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		// The member's row is locked so that a leave cannot slip in between.
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM members WHERE room = ? AND `user` = ? FOR UPDATE", room, user).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notMember(room, user)
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "INSERT IGNORE INTO moderators (room, `user`, created) VALUES (?, ?, ?)",
			room, user, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		added = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("appoint moderator %s of room %s: %w", user, room, classify(err))
	}
	return added, nil
}

// IsModerator implements MetaStore. The members row is joined: a row an operator
// removed by hand ends the role with the membership.
func (s *MySQL) IsModerator(ctx context.Context, room, user string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM moderators mo JOIN members m ON m.room = mo.room AND m.`user` = mo.`user` "+
		"WHERE mo.room = ? AND mo.`user` = ?", room, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is %s a moderator of room %s: %w", user, room, classify(err))
	}
	return true, nil
}

// ListModerators implements MetaStore.
func (s *MySQL) ListModerators(ctx context.Context, room string, limit int) ([]string, error) {
	users, err := scanStrings(s.db.QueryContext(ctx, "SELECT mo.`user` FROM moderators mo JOIN members m ON m.room = mo.room AND m.`user` = mo.`user` "+
		"WHERE mo.room = ? ORDER BY mo.`user` LIMIT ?", room, limit))
	if err != nil {
		return nil, fmt.Errorf("moderators of room %s: %w", room, classify(err))
	}
	return users, nil
}
