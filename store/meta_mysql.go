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

// The MySQL MetaStore answers as the SQLite one does (see meta_sqlite.go): a room
// that does not exist looks like a room without members, and GetRoom tells them apart.
//
// Caps are checked under a row lock of the user in user_locks, taken first in the
// transaction: InnoDB's REPEATABLE READ takes a transaction's snapshot at its first
// plain read, so every count read after the lock sees the commits of the writes that
// held it before. What the user holds is counted, up to the cap, from the rows
// themselves (one index range each, about a millisecond per 10,000 entries), rather
// than kept in a table beside them, so that rows an operator inserts or deletes by
// hand count at once.

// CreateRoom implements MetaStore. A zero Created is set to the current time.
func (s *MySQL) CreateRoom(ctx context.Context, room Room, caps Caps) error {
	if room.Created == 0 {
		room.Created = time.Now().UnixMilli()
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := checkCaps(ctx, tx, room.Owner, caps, CapCreated, CapRooms); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO rooms (id, name, owner, `public`, created) VALUES (?, ?, ?, ?, ?)",
			room.ID, room.Name, room.Owner, room.Public, room.Created)
		if isMySQLError(err, errDupEntry) {
			return schema.ErrExists("room %s exists", room.ID)
		}
		if err != nil {
			return err
		}
		// A members row of the new id left behind by hand (no foreign key refuses one)
		// already makes the owner a member.
		_, err = tx.ExecContext(ctx, "INSERT INTO members (room, `user`, joined) VALUES (?, ?, ?)",
			room.ID, room.Owner, room.Created)
		if isMySQLError(err, errDupEntry) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create room %s: %w", room.ID, classify(err))
	}
	return nil
}

// GetRoom implements MetaStore.
func (s *MySQL) GetRoom(ctx context.Context, id string) (Room, error) {
	room := Room{ID: id}
	err := s.db.QueryRowContext(ctx, "SELECT name, owner, `public`, created FROM rooms WHERE id = ?", id).
		Scan(&room.Name, &room.Owner, &room.Public, &room.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, schema.Errorf(schema.CodeNotFound, "room %s not found", id)
	}
	if err != nil {
		return Room{}, fmt.Errorf("get room %s: %w", id, classify(err))
	}
	return room, nil
}

// AddMember implements MetaStore.
func (s *MySQL) AddMember(ctx context.Context, room, user string, caps Caps) (bool, error) {
	var added bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		added = false
		if err := lockUser(ctx, tx, user, caps, CapRooms); err != nil {
			return err
		}
		// A shared lock on the room, as a foreign key would take: the room cannot be
		// deleted under the new member before this commits.
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM rooms WHERE id = ? LOCK IN SHARE MODE`, room).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return schema.Errorf(schema.CodeNotFound, "room %s not found", room)
		}
		if err != nil {
			return err
		}
		// A member already is not refused by a cap it may be over (a cap lowered
		// since): re-adding changes nothing.
		added, err = insertCappedMySQL(ctx, tx, user, caps, CapRooms,
			"SELECT 1 FROM members WHERE room = ? AND `user` = ?",
			"INSERT INTO members (room, `user`, joined) VALUES (?, ?, ?)", room, user, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("add %s to room %s: %w", user, room, classify(err))
	}
	return added, nil
}

// insertCappedMySQL inserts a row of user's unless exists (a query on the insert's
// first two arguments) finds it, after checking the user's cap on such rows; it
// reports whether it inserted. The caller has locked the user (lockUser).
func insertCappedMySQL(ctx context.Context, tx *sql.Tx, user string, caps Caps, capName, exists, insert string, args ...any) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, exists, args[0], args[1]).Scan(&one)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if err := countCaps(ctx, tx, user, caps, capName); err != nil {
		return false, err
	}
	_, err = tx.ExecContext(ctx, insert, args...)
	if isMySQLError(err, errDupEntry) {
		// Inserted meanwhile by a write that checked no cap, or by hand.
		return false, nil
	}
	return err == nil, err
}

// RemoveMember implements MetaStore.
func (s *MySQL) RemoveMember(ctx context.Context, room, user string) (bool, error) {
	var removed bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM members WHERE room = ? AND `user` = ?", room, user)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if removed = n == 1; err != nil || !removed {
			return err
		}
		// A moderator who leaves stops being one.
		_, err = tx.ExecContext(ctx, "DELETE FROM moderators WHERE room = ? AND `user` = ?", room, user)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("remove %s from room %s: %w", user, room, classify(err))
	}
	return removed, nil
}

// deleteOne runs a DELETE of at most one row and reports whether it deleted one.
func (s *MySQL) deleteOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// leaveChunk is how many rooms one statement of LeaveRooms names: logic sends at most
// 500, so one statement each to find and delete them.
const leaveChunk = 500

// LeaveRooms implements MetaStore: in one transaction, the rooms user is in are found
// and locked (SELECT ... FOR UPDATE), then exactly those rows deleted, two statements
// per 500 rooms rather than one round trip per room.
func (s *MySQL) LeaveRooms(ctx context.Context, user string, rooms []string) ([]string, error) {
	unique := make([]string, 0, len(rooms))
	seen := make(map[string]bool, len(rooms))
	for _, room := range rooms {
		if !seen[room] {
			seen[room] = true
			unique = append(unique, room)
		}
	}
	var left []string
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		left = left[:0]
		member := make(map[string]bool, len(unique))
		for start := 0; start < len(unique); start += leaveChunk {
			chunk := unique[start:min(start+leaveChunk, len(unique))]
			in, args := inList(user, chunk)
			found, err := scanStrings(tx.QueryContext(ctx, "SELECT room FROM members WHERE `user` = ? AND room IN "+in+" FOR UPDATE", args...))
			if err != nil {
				return err
			}
			if len(found) == 0 {
				continue
			}
			in, args = inList(user, found)
			if _, err := tx.ExecContext(ctx, "DELETE FROM members WHERE `user` = ? AND room IN "+in, args...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM moderators WHERE `user` = ? AND room IN "+in, args...); err != nil {
				return err
			}
			for _, room := range found {
				member[room] = true
			}
		}
		for _, room := range unique {
			if member[room] {
				left = append(left, room)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s leaves %d rooms: %w", user, len(rooms), classify(err))
	}
	return left, nil
}

// inList returns "(?, ?, ...)" for values and the arguments first, values...
func inList(first string, values []string) (string, []any) {
	args := make([]any, 0, len(values)+1)
	args = append(args, first)
	for _, v := range values {
		args = append(args, v)
	}
	return "(" + strings.Repeat("?, ", len(values)-1) + "?)", args
}

// IsMember implements MetaStore.
func (s *MySQL) IsMember(ctx context.Context, room, user string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM members WHERE room = ? AND `user` = ?", room, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is %s member of room %s: %w", user, room, classify(err))
	}
	return true, nil
}

// AreMembers implements MembersChecker: one query per 500 pairs, a range of the
// primary key for each (MySQL 8 and MariaDB both read a row-constructor IN so).
func (s *MySQL) AreMembers(ctx context.Context, pairs [][2]string) ([]bool, error) {
	const chunkSize = 500
	out := make([]bool, len(pairs))
	for start := 0; start < len(pairs); start += chunkSize {
		chunk := pairs[start:min(start+chunkSize, len(pairs))]
		var query strings.Builder
		query.WriteString("SELECT room, `user` FROM members WHERE (room, `user`) IN (")
		args := make([]any, 0, 2*len(chunk))
		for i, p := range chunk {
			if i > 0 {
				query.WriteString(", ")
			}
			query.WriteString("(?, ?)")
			args = append(args, p[0], p[1])
		}
		query.WriteString(")")
		found, err := s.memberPairs(ctx, query.String(), args)
		if err != nil {
			return nil, fmt.Errorf("check %d memberships: %w", len(pairs), classify(err))
		}
		for i, p := range chunk {
			out[start+i] = found[p]
		}
	}
	return out, nil
}

func (s *MySQL) memberPairs(ctx context.Context, query string, args []any) (map[[2]string]bool, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[[2]string]bool)
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		found[p] = true
	}
	return found, rows.Err()
}

// CountMembers implements MetaStore. It counts index entries of the primary key;
// callers in the request path sit behind the metadata cache.
func (s *MySQL) CountMembers(ctx context.Context, room string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE room = ?`, room).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count members of room %s: %w", room, classify(err))
	}
	return n, nil
}

// ListMembers implements MetaStore. A limit <= 0 means 100.
func (s *MySQL) ListMembers(ctx context.Context, room, after string, limit int) ([]string, bool, error) {
	if limit <= 0 {
		limit = defaultMembersLimit
	}
	users, err := scanStrings(s.db.QueryContext(ctx,
		"SELECT `user` FROM members WHERE room = ? AND `user` > ? ORDER BY `user` LIMIT ?", room, after, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("list members of room %s: %w", room, classify(err))
	}
	more := len(users) > limit
	if more {
		users = users[:limit]
	}
	return users, more, nil
}

// UserRooms implements MetaStore. A limit <= 0 means 500.
func (s *MySQL) UserRooms(ctx context.Context, user, after string, limit int) ([]UserRoom, bool, error) {
	if limit <= 0 {
		limit = defaultUserRoomsLimit
	}
	rooms, err := s.userRooms(ctx, user, after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("rooms of %s: %w", user, classify(err))
	}
	more := len(rooms) > limit
	if more {
		rooms = rooms[:limit]
	}
	return rooms, more, nil
}

func (s *MySQL) userRooms(ctx context.Context, user, after string, limit int) ([]UserRoom, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT m.room, r.name, m.read_seq "+
		"FROM members m JOIN rooms r ON r.id = m.room "+
		"WHERE m.`user` = ? AND m.room > ? ORDER BY m.room LIMIT ?", user, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rooms := make([]UserRoom, 0, min(limit, 1024))
	for rows.Next() {
		var r UserRoom
		if err := rows.Scan(&r.Room, &r.Name, &r.ReadSeq); err != nil {
			return nil, err
		}
		rooms = append(rooms, r)
	}
	return rooms, rows.Err()
}

// SetRead implements MetaStore. It fails with not_found when user is not a member of
// room.
func (s *MySQL) SetRead(ctx context.Context, user, room string, seq int64) (int64, error) {
	// The update matches only when it raises the read seq, so a repeated or stale
	// receipt writes nothing to the binlog; the current value is then read instead.
	res, err := s.db.ExecContext(ctx, "UPDATE members SET read_seq = ? WHERE room = ? AND `user` = ? AND read_seq < ?",
		seq, room, user, seq)
	if err != nil {
		return 0, fmt.Errorf("set read of %s in room %s: %w", user, room, classify(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return seq, nil
	}
	var readSeq int64
	err = s.db.QueryRowContext(ctx, "SELECT read_seq FROM members WHERE room = ? AND `user` = ?", room, user).Scan(&readSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, schema.Errorf(schema.CodeNotFound, "%s is not a member of room %s", user, room)
	}
	if err != nil {
		return 0, fmt.Errorf("set read of %s in room %s: %w", user, room, classify(err))
	}
	return readSeq, nil
}

// lockUser locks user's row of user_locks for the rest of tx, creating it if needed,
// when one of the caps named by which is set; without a cap there is nothing to
// serialize. An INSERT ... ON DUPLICATE KEY UPDATE takes the row's exclusive lock
// whether or not the row was there, where INSERT IGNORE and then SELECT ... FOR UPDATE
// would take a shared lock first and deadlock two adds of one user.
func lockUser(ctx context.Context, tx *sql.Tx, user string, caps Caps, which ...string) error {
	if !capsSet(caps, which) {
		return nil
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO user_locks (`user`) VALUES (?) ON DUPLICATE KEY UPDATE `user` = `user`", user)
	return err
}

// checkCaps locks user and fails with a *CapError when one more of each of which
// would pass its cap.
func checkCaps(ctx context.Context, tx *sql.Tx, user string, caps Caps, which ...string) error {
	if err := lockUser(ctx, tx, user, caps, which...); err != nil {
		return err
	}
	return countCaps(ctx, tx, user, caps, which...)
}

// capQueries count what a user holds of each cap, up to the cap (the second
// argument): the count stops at the cap, so its cost is bounded by it.
var capQueries = map[string]string{
	CapRooms:   "SELECT COUNT(*) FROM (SELECT 1 FROM members WHERE `user` = ? LIMIT ?) held",
	CapCreated: "SELECT COUNT(*) FROM (SELECT 1 FROM rooms WHERE owner = ? LIMIT ?) held",
	CapBlocks:  "SELECT COUNT(*) FROM (SELECT 1 FROM blocks WHERE `user` = ? LIMIT ?) held",
}

// countCaps fails with a *CapError when one more of each of which would pass its
// cap. The caller has locked user (lockUser).
func countCaps(ctx context.Context, tx *sql.Tx, user string, caps Caps, which ...string) error {
	for _, name := range which {
		limit := capOf(caps, name)
		if limit <= 0 {
			continue
		}
		var have int
		if err := tx.QueryRowContext(ctx, capQueries[name], user, limit).Scan(&have); err != nil {
			return err
		}
		if have >= limit {
			return &CapError{Cap: name, User: user, Max: limit}
		}
	}
	return nil
}

func capOf(caps Caps, name string) int {
	switch name {
	case CapRooms:
		return caps.Rooms
	case CapCreated:
		return caps.Created
	case CapBlocks:
		return caps.Blocks
	}
	return 0
}

func capsSet(caps Caps, which []string) bool {
	for _, name := range which {
		if capOf(caps, name) > 0 {
			return true
		}
	}
	return false
}

// scanStrings reads the single string column of rows, closing them.
func scanStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
