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

// Mutes and bans in the SQLite store. A room's rows go with it (ON DELETE CASCADE);
// a ban's members row goes through the members triggers, which take the moderator
// row and the user's room count along.

// Sanction implements MetaStore.
func (s *SQLite) Sanction(ctx context.Context, sanction Sanction) (bool, error) {
	if sanction.Created == 0 {
		sanction.Created = time.Now().UnixMilli()
	}
	var member bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rooms WHERE id = ?`, sanction.Room).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", sanction.Room)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO room_sanctions (room, user, kind, until_ms, by_user, reason, created)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (room, user, kind) DO UPDATE SET until_ms = excluded.until_ms, by_user = excluded.by_user,
				reason = excluded.reason, created = excluded.created`,
			sanction.Room, sanction.User, sanction.Kind, sanction.Until, sanction.By, sanction.Reason, sanction.Created); err != nil {
			return err
		}
		if sanction.Kind != SanctionBan {
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE room = ? AND user = ?`, sanction.Room, sanction.User)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		member = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s %s in room %s: %w", sanction.Kind, sanction.User, sanction.Room, err)
	}
	return member, nil
}

// Lift implements MetaStore.
func (s *SQLite) Lift(ctx context.Context, room, user, kind string) (bool, error) {
	lifted, err := s.deleteOne(ctx, `DELETE FROM room_sanctions WHERE room = ? AND user = ? AND kind = ?`, room, user, kind)
	if err != nil {
		return false, fmt.Errorf("lift the %s of %s in room %s: %w", kind, user, room, err)
	}
	return lifted, nil
}

// GetSanction implements MetaStore.
func (s *SQLite) GetSanction(ctx context.Context, room, user, kind string) (Sanction, bool, error) {
	out := Sanction{Room: room, User: user, Kind: kind}
	err := s.reader.QueryRowContext(ctx, `SELECT until_ms, by_user, reason, created FROM room_sanctions
		WHERE room = ? AND user = ? AND kind = ?`, room, user, kind).Scan(&out.Until, &out.By, &out.Reason, &out.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return Sanction{}, false, nil
	}
	if err != nil {
		return Sanction{}, false, fmt.Errorf("the %s of %s in room %s: %w", kind, user, room, err)
	}
	return out, true, nil
}

// Sanctions implements MetaStore.
func (s *SQLite) Sanctions(ctx context.Context, room, kind, after string, now int64, limit int) ([]Sanction, bool, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT user, until_ms, by_user, reason, created FROM room_sanctions
		WHERE room = ? AND kind = ? AND user > ? AND (until_ms = 0 OR until_ms > ?) ORDER BY user LIMIT ?`,
		room, kind, after, now, limit+1)
	out, more, err := scanSanctions(rows, err, room, kind, limit)
	if err != nil {
		return nil, false, fmt.Errorf("%ss of room %s: %w", kind, room, err)
	}
	return out, more, nil
}

// scanSanctions reads the rows of a Sanctions query that asked for limit+1.
func scanSanctions(rows *sql.Rows, err error, room, kind string, limit int) ([]Sanction, bool, error) {
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []Sanction
	for rows.Next() {
		s := Sanction{Room: room, Kind: kind}
		if err := rows.Scan(&s.User, &s.Until, &s.By, &s.Reason, &s.Created); err != nil {
			return nil, false, err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// mutesChunk is how many rooms one RoomMutes statement names: an ingest batch holds
// at most a few hundred.
const mutesChunk = 500

// RoomMutes implements MetaStore: one primary key lookup per room, a statement per
// 500 rooms.
func (s *SQLite) RoomMutes(ctx context.Context, rooms []string, now int64) (map[string]map[string]int64, error) {
	out, err := roomMutes(ctx, s.reader, rooms, now, "user")
	if err != nil {
		return nil, fmt.Errorf("mutes of %d rooms: %w", len(rooms), err)
	}
	return out, nil
}

// roomMutes runs RoomMutes on db, whose user column is spelt userColumn.
func roomMutes(ctx context.Context, db *sql.DB, rooms []string, now int64, userColumn string) (map[string]map[string]int64, error) {
	out := make(map[string]map[string]int64)
	for start := 0; start < len(rooms); start += mutesChunk {
		chunk := rooms[start:min(start+mutesChunk, len(rooms))]
		args := make([]any, 0, len(chunk)+1)
		for _, room := range chunk {
			args = append(args, room)
		}
		args = append(args, now)
		rows, err := db.QueryContext(ctx, "SELECT room, "+userColumn+", until_ms FROM room_sanctions WHERE room IN ("+
			strings.Repeat("?, ", len(chunk)-1)+"?) AND kind = '"+SanctionMute+"' AND (until_ms = 0 OR until_ms > ?)", args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var room, user string
			var until int64
			if err := rows.Scan(&room, &user, &until); err != nil {
				rows.Close()
				return nil, err
			}
			if out[room] == nil {
				out[room] = make(map[string]int64)
			}
			out[room][user] = until
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
