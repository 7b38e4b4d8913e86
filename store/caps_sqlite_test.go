package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

// heldBy reads user's row of user_counts: rooms, created, blocks.
func heldBy(t *testing.T, s *SQLite, user string) [3]int {
	t.Helper()
	var c [3]int
	err := s.reader.QueryRow(`SELECT rooms, created, blocks FROM user_counts WHERE user = ?`, user).Scan(&c[0], &c[1], &c[2])
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return c
}

// TestSQLiteUserCounts: the triggers keep user_counts equal to what each user holds
// through every kind of write.
func TestSQLiteUserCounts(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	caps := Caps{Rooms: 10, Created: 10, Blocks: 10}
	for _, id := range []string{"a", "b", "c"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Owner: "alice"}, caps); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRoom(ctx, Room{ID: "x", Owner: "bob"}, caps); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.AddMember(ctx, id, "bob", caps); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddMember(ctx, "x", "alice", caps); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMember(ctx, "a", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeaveRooms(ctx, "bob", []string{"b", "c", "nosuch"}); err != nil {
		t.Fatal(err)
	}
	for _, blocked := range []string{"m1", "m2", "m3"} {
		if _, err := s.Block(ctx, "bob", blocked, caps); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Unblock(ctx, "bob", "m2"); err != nil {
		t.Fatal(err)
	}
	// A refused write changes no count.
	_, err := s.AddMember(ctx, "a", "alice", Caps{Rooms: 1})
	if err == nil {
		t.Fatal("add past a cap of 1 passed")
	}
	for user, want := range map[string][3]int{"alice": {3, 3, 0}, "bob": {2, 1, 2}} {
		if got := heldBy(t, s, user); got != want {
			t.Errorf("%s holds %v in user_counts, want %v", user, got, want)
		}
	}
}

// TestSQLiteCountsMigration: a database written before user_counts existed gets the
// counts of what each user holds when it is opened, once, and the caps hold on them.
func TestSQLiteCountsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "laneim.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// The metadata tables as the first schema had them, with rows.
	for _, stmt := range []string{
		`CREATE TABLE rooms (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL, owner TEXT NOT NULL,
			public INTEGER NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID`,
		`CREATE TABLE members (room TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
			user TEXT NOT NULL, joined INTEGER NOT NULL, read_seq INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (room, user)) WITHOUT ROWID`,
		`INSERT INTO rooms VALUES ('a', 'A', 'alice', 0, 1), ('b', 'B', 'alice', 0, 1), ('c', 'C', 'bob', 0, 1)`,
		`INSERT INTO members (room, user, joined) VALUES ('a', 'alice', 1), ('b', 'alice', 1),
			('c', 'bob', 1), ('c', 'alice', 1), ('a', 'carol', 1)`,
	} {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string][3]int{"alice": {3, 2, 0}, "bob": {1, 1, 0}, "carol": {1, 0, 0}} {
		if got := heldBy(t, s, user); got != want {
			t.Errorf("%s holds %v, want %v", user, got, want)
		}
	}
	_, err = s.AddMember(ctx, "c", "carol", Caps{Rooms: 1})
	wantCap(t, err, CapRooms, "carol", 1)
	if _, err := s.AddMember(ctx, "c", "carol", Caps{Rooms: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the counts stand, and user_version records that they are kept.
	s, err = OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := heldBy(t, s, "carol"); got != [3]int{2, 0, 0} {
		t.Errorf("carol holds %v after reopening, want 2 rooms", got)
	}
	var version int
	if err := s.reader.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != editsVersion {
		t.Errorf("user_version %d, %v; want %d", version, err, editsVersion)
	}
}
