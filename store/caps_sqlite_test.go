package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/laneim/laneim/schema"
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

// wantCap fails unless err is a *CapError of the cap name for user, at limit.
func wantCap(t *testing.T, err error, name, user string, limit int) {
	t.Helper()
	var ce *CapError
	if !errors.As(err, &ce) || *ce != (CapError{Cap: name, User: user, Max: limit}) {
		t.Fatalf("got %v, want the %s cap of %d on %s", err, name, limit, user)
	}
}

func TestSQLiteCaps(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	caps := Caps{Rooms: 3, Created: 2}

	// Creating counts against both caps of the owner.
	for _, id := range []string{"a", "b"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Owner: "alice"}, caps); err != nil {
			t.Fatal(err)
		}
	}
	err := s.CreateRoom(ctx, Room{ID: "c", Owner: "alice"}, caps)
	wantCap(t, err, CapCreated, "alice", 2)
	if _, err := s.GetRoom(ctx, "c"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("a refused create made the room: %v", err)
	}
	if got := heldBy(t, s, "alice"); got != [3]int{2, 2, 0} {
		t.Fatalf("alice holds %v, want 2 rooms, 2 created", got)
	}

	// Bob creates rooms of his own and adds alice to them up to her rooms cap.
	for _, id := range []string{"x", "y"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Owner: "bob"}, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	if added, err := s.AddMember(ctx, "x", "alice", caps); err != nil || !added {
		t.Fatalf("add to x: %v, %v", added, err)
	}
	_, err = s.AddMember(ctx, "y", "alice", caps)
	wantCap(t, err, CapRooms, "alice", 3)
	if ok, _ := s.IsMember(ctx, "y", "alice"); ok {
		t.Fatal("a refused add made alice a member")
	}
	// Adding a member again is no new membership: never refused.
	if added, err := s.AddMember(ctx, "x", "alice", caps); err != nil || added {
		t.Fatalf("re-add at the cap: %v, %v", added, err)
	}
	// At her rooms cap, alice may not create a room either, whatever Created allows.
	err = s.CreateRoom(ctx, Room{ID: "d", Owner: "alice"}, Caps{Rooms: 3, Created: 10})
	wantCap(t, err, CapRooms, "alice", 3)
	// A zero cap is none.
	if added, err := s.AddMember(ctx, "y", "alice", Caps{}); err != nil || !added {
		t.Fatalf("add without caps: %v, %v", added, err)
	}
	// Leaving frees a place under a cap.
	if _, err := s.RemoveMember(ctx, "x", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMember(ctx, "y", "alice"); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AddMember(ctx, "y", "alice", caps); err != nil || !added {
		t.Fatalf("add after leaving: %v, %v", added, err)
	}
	if got := heldBy(t, s, "alice"); got != [3]int{3, 2, 0} {
		t.Fatalf("alice holds %v, want 3 rooms, 2 created", got)
	}
	if got := heldBy(t, s, "bob"); got != [3]int{2, 2, 0} {
		t.Fatalf("bob holds %v, want 2 rooms, 2 created", got)
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
	if err := s.reader.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != countsVersion {
		t.Errorf("user_version %d, %v; want %d", version, err, countsVersion)
	}
}
