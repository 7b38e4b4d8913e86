package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/laneim/laneim/schema"
)

// Room management and moderators in the SQLite store: the members' triggers of
// schema/sqlite.sql keep user_counts and drop a leaving member's moderator row.

// RenameRoom implements MetaStore.
func (s *SQLite) RenameRoom(ctx context.Context, room, name string) error {
	renamed, err := s.deleteOne(ctx, `UPDATE rooms SET name = ? WHERE id = ?`, name, room)
	if err != nil {
		return fmt.Errorf("rename room %s: %w", room, err)
	}
	if !renamed {
		return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
	}
	return nil
}

// TransferRoom implements MetaStore.
func (s *SQLite) TransferRoom(ctx context.Context, room, user string, caps Caps) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var owner string
		err := tx.QueryRowContext(ctx, `SELECT owner FROM rooms WHERE id = ?`, room).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
		}
		if err != nil || owner == user {
			return err
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM members WHERE room = ? AND user = ?`, room, user).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notMember(room, user)
		}
		if err != nil {
			return err
		}
		counts, err := userCounts(ctx, tx, user)
		if err != nil {
			return err
		}
		if err := counts.check(user, caps, CapCreated); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rooms SET owner = ? WHERE id = ?`, user, room); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM moderators WHERE room = ? AND user = ?`, room, user)
		return err
	})
	if err != nil {
		return fmt.Errorf("give room %s to %s: %w", room, user, err)
	}
	return nil
}

// DeleteRoom implements MetaStore. The members rows go one statement before the
// room's (their triggers keep user_counts), the moderators with the room; its
// sanctions go by cascade.
func (s *SQLite) DeleteRoom(ctx context.Context, room string) ([]string, error) {
	var members []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		members, err = scanStrings(tx.QueryContext(ctx, `SELECT user FROM members WHERE room = ? ORDER BY user`, room))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE room = ?`, room); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM moderators WHERE room = ?`, room); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM rooms WHERE id = ?`, room)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete room %s: %w", room, err)
	}
	return members, nil
}

// SetModerator implements MetaStore.
func (s *SQLite) SetModerator(ctx context.Context, room, user string, moderator bool) (bool, error) {
	if !moderator {
		removed, err := s.deleteOne(ctx, `DELETE FROM moderators WHERE room = ? AND user = ?`, room, user)
		if err != nil {
			return false, fmt.Errorf("remove moderator %s of room %s: %w", user, room, err)
		}
		return removed, nil
	}
	var added bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM members WHERE room = ? AND user = ?`, room, user).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notMember(room, user)
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO moderators (room, user, created) VALUES (?, ?, ?)
			ON CONFLICT (room, user) DO NOTHING`, room, user, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		added = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("appoint moderator %s of room %s: %w", user, room, err)
	}
	return added, nil
}

// IsModerator implements MetaStore.
func (s *SQLite) IsModerator(ctx context.Context, room, user string) (bool, error) {
	var one int
	err := s.reader.QueryRowContext(ctx, `SELECT 1 FROM moderators WHERE room = ? AND user = ?`, room, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is %s a moderator of room %s: %w", user, room, err)
	}
	return true, nil
}

// ListModerators implements MetaStore.
func (s *SQLite) ListModerators(ctx context.Context, room string, limit int) ([]string, error) {
	users, err := scanStrings(s.reader.QueryContext(ctx, `SELECT user FROM moderators WHERE room = ? ORDER BY user LIMIT ?`, room, limit))
	if err != nil {
		return nil, fmt.Errorf("moderators of room %s: %w", room, err)
	}
	return users, nil
}
