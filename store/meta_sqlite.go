package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/laneim/laneim/schema"
)

// defaultMembersLimit is the page size of ListMembers with limit <= 0.
const defaultMembersLimit = 100

// defaultUserRoomsLimit is the page size of UserRooms with limit <= 0: 500 rooms with
// 64-byte ids and 200-byte names are at most about 700 KB even as JSON that escapes
// every byte of every name, under NATS's 1 MiB payload limit.
const defaultUserRoomsLimit = 500

// The MetaStore methods below answer for a room that does not exist as for a room
// without members (IsMember false, CountMembers 0, RemoveMember false): GetRoom is the
// way to tell a missing room apart. AddMember and SetRead fail with not_found.

// CreateRoom implements MetaStore. A zero Created is set to the current time.
func (s *SQLite) CreateRoom(ctx context.Context, room Room, caps Caps) error {
	if room.Created == 0 {
		room.Created = time.Now().UnixMilli()
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		counts, err := userCounts(ctx, tx, room.Owner)
		if err != nil {
			return err
		}
		if err := counts.check(room.Owner, caps, CapCreated, CapRooms); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO rooms (id, name, owner, public, created)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			room.ID, room.Name, room.Owner, room.Public, room.Created)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return schema.ErrExists("room %s exists", room.ID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (room, user, joined) VALUES (?, ?, ?)`,
			room.ID, room.Owner, room.Created)
		return err
	})
	if err != nil {
		return fmt.Errorf("create room %s: %w", room.ID, err)
	}
	return nil
}

// GetRoom implements MetaStore.
func (s *SQLite) GetRoom(ctx context.Context, id string) (Room, error) {
	room := Room{ID: id}
	err := s.reader.QueryRowContext(ctx, `SELECT name, owner, public, created FROM rooms WHERE id = ?`, id).
		Scan(&room.Name, &room.Owner, &room.Public, &room.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, schema.Errorf(schema.CodeNotFound, "room %s not found", id)
	}
	if err != nil {
		return Room{}, fmt.Errorf("get room %s: %w", id, err)
	}
	return room, nil
}

// AddMember implements MetaStore.
func (s *SQLite) AddMember(ctx context.Context, room, user string, caps Caps) (bool, error) {
	var added bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		// Checked explicitly rather than through the foreign key, whose violation
		// error does not say which key failed.
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rooms WHERE id = ?`, room).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
		}
		if err != nil {
			return err
		}
		// A member already is not refused by a cap it may be over (a cap lowered
		// since): re-adding changes nothing.
		added, err = insertCapped(ctx, tx, user, caps, CapRooms,
			`SELECT 1 FROM members WHERE room = ? AND user = ?`,
			`INSERT INTO members (room, user, joined) VALUES (?, ?, ?)`, room, user, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("add %s to room %s: %w", user, room, err)
	}
	return added, nil
}

// insertCapped inserts a row of user's unless exists (a query on the insert's first
// two arguments) finds it, after checking the user's cap on such rows; it reports
// whether it inserted. A row already there passes whatever the cap says now.
func insertCapped(ctx context.Context, tx *sql.Tx, user string, caps Caps, capName, exists, insert string, args ...any) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, exists, args[0], args[1]).Scan(&one)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	counts, err := userCounts(ctx, tx, user)
	if err != nil {
		return false, err
	}
	if err := counts.check(user, caps, capName); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, insert, args...); err != nil {
		return false, err
	}
	return true, nil
}

// RemoveMember implements MetaStore.
func (s *SQLite) RemoveMember(ctx context.Context, room, user string) (bool, error) {
	removed, err := s.deleteOne(ctx, `DELETE FROM members WHERE room = ? AND user = ?`, room, user)
	if err != nil {
		return false, fmt.Errorf("remove %s from room %s: %w", user, room, err)
	}
	return removed, nil
}

// deleteOne runs a DELETE of at most one row and reports whether it deleted one.
func (s *SQLite) deleteOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.writer.ExecContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// LeaveRooms implements MetaStore. At most a few hundred rooms a call are expected
// (logic allows 500): one transaction, one statement per room.
func (s *SQLite) LeaveRooms(ctx context.Context, user string, rooms []string) ([]string, error) {
	var left []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		left = left[:0]
		seen := make(map[string]bool, len(rooms))
		for _, room := range rooms {
			if seen[room] {
				continue
			}
			seen[room] = true
			res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE room = ? AND user = ?`, room, user)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				left = append(left, room)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s leaves %d rooms: %w", user, len(rooms), err)
	}
	return left, nil
}

// IsMember implements MetaStore.
func (s *SQLite) IsMember(ctx context.Context, room, user string) (bool, error) {
	var one int
	err := s.isMember.QueryRowContext(ctx, room, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is %s member of room %s: %w", user, room, err)
	}
	return true, nil
}

// areMembersChunk bounds the pairs of one AreMembers query: 1,000 parameters, far
// below SQLite's limit of 32,766, for any ingest batch (256 sends by default).
const areMembersChunk = 500

// AreMembers implements MembersChecker with one query per 500 pairs.
func (s *SQLite) AreMembers(ctx context.Context, pairs [][2]string) ([]bool, error) {
	out := make([]bool, len(pairs))
	for start := 0; start < len(pairs); start += areMembersChunk {
		chunk := pairs[start:min(start+areMembersChunk, len(pairs))]
		var query strings.Builder
		query.WriteString(`SELECT room, user FROM members WHERE (room, user) IN (VALUES `)
		args := make([]any, 0, 2*len(chunk))
		for i, p := range chunk {
			if i > 0 {
				query.WriteString(", ")
			}
			query.WriteString("(?, ?)")
			args = append(args, p[0], p[1])
		}
		query.WriteString(")")
		rows, err := s.reader.QueryContext(ctx, query.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("check %d memberships: %w", len(pairs), err)
		}
		found := make(map[[2]string]bool, len(chunk))
		for rows.Next() {
			var p [2]string
			if err := rows.Scan(&p[0], &p[1]); err != nil {
				rows.Close()
				return nil, fmt.Errorf("check %d memberships: %w", len(pairs), err)
			}
			found[p] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("check %d memberships: %w", len(pairs), err)
		}
		for i, p := range chunk {
			out[start+i] = found[p]
		}
	}
	return out, nil
}

// CountMembers implements MetaStore. It counts index entries, about a millisecond per
// 10,000 members; callers in the request path sit behind the metadata cache.
func (s *SQLite) CountMembers(ctx context.Context, room string) (int, error) {
	var n int
	err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE room = ?`, room).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count members of room %s: %w", room, err)
	}
	return n, nil
}

// ListMembers implements MetaStore. A limit <= 0 means 100.
func (s *SQLite) ListMembers(ctx context.Context, room, after string, limit int) ([]string, bool, error) {
	if limit <= 0 {
		limit = defaultMembersLimit
	}
	rows, err := s.listMembers.QueryContext(ctx, room, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list members of room %s: %w", room, err)
	}
	defer rows.Close()
	users := make([]string, 0, min(limit, 1024)+1)
	for rows.Next() {
		var user string
		if err := rows.Scan(&user); err != nil {
			return nil, false, fmt.Errorf("list members of room %s: %w", room, err)
		}
		users = append(users, user)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list members of room %s: %w", room, err)
	}
	more := len(users) > limit
	if more {
		users = users[:limit]
	}
	return users, more, nil
}

// UserRooms implements MetaStore. A limit <= 0 means 500.
func (s *SQLite) UserRooms(ctx context.Context, user, after string, limit int) ([]UserRoom, bool, error) {
	if limit <= 0 {
		limit = defaultUserRoomsLimit
	}
	rows, err := s.userRooms.QueryContext(ctx, user, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("rooms of %s: %w", user, err)
	}
	defer rows.Close()
	rooms := make([]UserRoom, 0, min(limit, 1024)+1)
	for rows.Next() {
		var r UserRoom
		if err := rows.Scan(&r.Room, &r.Name, &r.ReadSeq); err != nil {
			return nil, false, fmt.Errorf("rooms of %s: %w", user, err)
		}
		rooms = append(rooms, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("rooms of %s: %w", user, err)
	}
	more := len(rooms) > limit
	if more {
		rooms = rooms[:limit]
	}
	return rooms, more, nil
}

// SetRead implements MetaStore. It fails with not_found when user is not a member of
// room.
func (s *SQLite) SetRead(ctx context.Context, user, room string, seq int64) (int64, error) {
	// The update matches only when it raises the read seq, so a repeated or stale
	// receipt writes nothing to the WAL; the current value is then read instead.
	var readSeq int64
	err := s.setRead.QueryRowContext(ctx, seq, room, user, seq).Scan(&readSeq)
	if err == nil {
		return readSeq, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("set read of %s in room %s: %w", user, room, err)
	}
	err = s.readSeq.QueryRowContext(ctx, room, user).Scan(&readSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, schema.Errorf(schema.CodeNotFound, "%s is not a member of room %s", user, room)
	}
	if err != nil {
		return 0, fmt.Errorf("set read of %s in room %s: %w", user, room, err)
	}
	return readSeq, nil
}

// counts is a user's row of user_counts.
type counts struct{ rooms, created, blocks int }

// userCounts reads user's counts inside a write transaction, so that a cap checked on
// them holds until the write commits. A user without a row holds nothing.
func userCounts(ctx context.Context, tx *sql.Tx, user string) (counts, error) {
	var c counts
	err := tx.QueryRowContext(ctx, `SELECT rooms, created, blocks FROM user_counts WHERE user = ?`, user).
		Scan(&c.rooms, &c.created, &c.blocks)
	if errors.Is(err, sql.ErrNoRows) {
		return counts{}, nil
	}
	return c, err
}

// check fails with a *CapError when one more of each of which would pass its cap.
func (c counts) check(user string, caps Caps, which ...string) error {
	for _, name := range which {
		var have, limit int
		switch name {
		case CapRooms:
			have, limit = c.rooms, caps.Rooms
		case CapCreated:
			have, limit = c.created, caps.Created
		case CapBlocks:
			have, limit = c.blocks, caps.Blocks
		}
		if limit > 0 && have >= limit {
			return &CapError{Cap: name, User: user, Max: limit}
		}
	}
	return nil
}
