package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/testsvc"
)

// openTestMySQL opens the store on a fresh database of the shared MariaDB.
func openTestMySQL(t *testing.T) (*MySQL, string) {
	t.Helper()
	dsn := testsvc.MySQL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := OpenMySQL(ctx, dsn, MySQLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func TestMySQLMeta(t *testing.T) {
	testMetaStore(t, func(t *testing.T) MetaStore {
		s, _ := openTestMySQL(t)
		return s
	})
}

func TestMySQLAreMembers(t *testing.T) {
	testAreMembers(t, func(t *testing.T) MetaStore {
		s, _ := openTestMySQL(t)
		return s
	})
}

func TestMySQLConfig(t *testing.T) {
	tests := []struct {
		name        string
		dsn         string
		opts        MySQLOptions
		wantErr     bool
		wantTimeout time.Duration
		wantLock    string
	}{
		{"plain", "laneim:pw@tcp(db:3306)/laneim", MySQLOptions{}, false, 5 * time.Second, "5"},
		{"options", "laneim@tcp(db)/laneim", MySQLOptions{DialTimeout: time.Second, LockWaitSeconds: 2}, false, time.Second, "2"},
		{"the dsn wins", "laneim@tcp(db)/laneim?timeout=3s&innodb_lock_wait_timeout=9", MySQLOptions{DialTimeout: time.Second}, false, 3 * time.Second, "9"},
		{"no database", "laneim@tcp(db:3306)/", MySQLOptions{}, true, 0, ""},
		{"not a dsn", "mysql://laneim@db/laneim", MySQLOptions{}, true, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := MySQLConfig(tt.dsn, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("MySQLConfig: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !cfg.InterpolateParams || cfg.MultiStatements || !cfg.RejectReadOnly {
				t.Errorf("driver flags: %+v", cfg)
			}
			if cfg.Timeout != tt.wantTimeout || cfg.ReadTimeout != 30*time.Second || cfg.WriteTimeout != 30*time.Second {
				t.Errorf("timeouts %v %v %v, want dial %v", cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout, tt.wantTimeout)
			}
			if got := cfg.Params["innodb_lock_wait_timeout"]; got != tt.wantLock {
				t.Errorf("innodb_lock_wait_timeout %q, want %q", got, tt.wantLock)
			}
		})
	}
}

// TestMySQLConcurrentOpen: nodes starting together on an empty database apply each
// migration once, and every one of them opens.
func TestMySQLConcurrentOpen(t *testing.T) {
	dsn := testsvc.MySQL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const nodes = 6
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			s, err := OpenMySQL(ctx, dsn, MySQLOptions{MaxConns: 2})
			if err == nil {
				err = s.CreateRoom(ctx, Room{ID: fmt.Sprintf("r%d", i), Owner: "u"}, Caps{})
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	migrations, err := schema.MySQLMigrations()
	if err != nil {
		t.Fatal(err)
	}
	db := rawMySQL(t, dsn)
	var rows, distinct, last int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM schema_migrations`).Scan(&rows, &distinct, &last); err != nil {
		t.Fatal(err)
	}
	if rows != len(migrations) || distinct != rows || last != migrations[len(migrations)-1].Version {
		t.Errorf("schema_migrations: %d rows, %d versions, last %d; want each of %d once", rows, distinct, last, len(migrations))
	}
	// Opening again applies nothing and keeps the data.
	s, err := OpenMySQL(ctx, dsn, MySQLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rooms, _, err := s.UserRooms(ctx, "u", "", 0); err != nil || len(rooms) != nodes {
		t.Errorf("after reopening, u is in %d rooms, %v; want %d", len(rooms), err, nodes)
	}
}

func rawMySQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMySQLHandEdits: rows operators change by hand in SQL count as they are: a
// membership deleted by hand is gone and frees a place under the cap, one inserted by
// hand is a membership and takes one.
func TestMySQLHandEdits(t *testing.T) {
	ctx := context.Background()
	s, dsn := openTestMySQL(t)
	db := rawMySQL(t, dsn)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Name: "N" + id, Owner: "owner"}, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	caps := Caps{Rooms: 2}
	for _, id := range []string{"a", "b"} {
		if _, err := s.AddMember(ctx, id, "u", caps); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("DELETE FROM members WHERE room = 'a' AND `user` = 'u'"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.IsMember(ctx, "a", "u"); err != nil || ok {
		t.Fatalf("IsMember after a delete by hand = %v, %v", ok, err)
	}
	if added, err := s.AddMember(ctx, "c", "u", caps); err != nil || !added {
		t.Fatalf("add into the place a delete by hand freed: %v, %v", added, err)
	}
	if _, err := db.Exec("INSERT INTO members (room, `user`, joined) VALUES ('a', 'v', 1), ('b', 'v', 1)"); err != nil {
		t.Fatal(err)
	}
	_, err := s.AddMember(ctx, "c", "v", caps)
	wantCap(t, err, CapRooms, "v", 2)
	if _, err := db.Exec("UPDATE rooms SET name = 'renamed' WHERE id = 'b'"); err != nil {
		t.Fatal(err)
	}
	rooms, _, err := s.UserRooms(ctx, "v", "", 0)
	if err != nil || len(rooms) != 2 || rooms[1] != (UserRoom{Room: "b", Name: "renamed"}) {
		t.Fatalf("v's rooms after edits by hand: %+v, %v", rooms, err)
	}
}

// TestMySQLOutage: while the server is down, reads and writes fail within their
// deadline with an error logic answers as unavailable; once it is back, the same
// store serves again.
func TestMySQLOutage(t *testing.T) {
	m := testsvc.StartMariaDB(t)
	m.Exec(t, "", "CREATE DATABASE laneim CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	ctx := context.Background()
	s, err := OpenMySQL(ctx, m.DSN("laneim"), MySQLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateRoom(ctx, Room{ID: "r", Owner: "alice"}, Caps{Rooms: 10}); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	writes := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"add", func(ctx context.Context) error {
			_, err := s.AddMember(ctx, "r", "bob", Caps{Rooms: 10})
			return err
		}},
		{"create", func(ctx context.Context) error { return s.CreateRoom(ctx, Room{ID: "s", Owner: "bob"}, Caps{}) }},
		{"set read", func(ctx context.Context) error {
			_, err := s.SetRead(ctx, "alice", "r", 3)
			return err
		}},
		{"is member", func(ctx context.Context) error {
			_, err := s.IsMember(ctx, "r", "alice")
			return err
		}},
	}
	for _, w := range writes {
		t.Run("down "+w.name, func(t *testing.T) {
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			err := w.call(callCtx)
			took := time.Since(start)
			if !errors.Is(err, schema.ErrUnavailable) || schema.AsError(err).Code != schema.CodeUnavailable {
				t.Fatalf("%s while the server is down: %v, want unavailable", w.name, err)
			}
			if took > 6*time.Second {
				t.Errorf("%s took %v to fail", w.name, took)
			}
			t.Logf("%s failed after %v: %v (the client reads %q)", w.name, took.Round(time.Millisecond), err, schema.AsError(err).Message)
		})
	}

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if added, err := s.AddMember(callCtx, "r", "bob", Caps{Rooms: 10}); err != nil || !added {
		t.Fatalf("add after the server is back: %v, %v", added, err)
	}
	if ok, err := s.IsMember(callCtx, "r", "bob"); err != nil || !ok {
		t.Fatalf("IsMember after the server is back: %v, %v", ok, err)
	}
}

// TestMySQLUnreachable: opening a store on a port nobody listens on fails at once
// with unavailable rather than hanging.
func TestMySQLUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := OpenMySQL(ctx, "laneim@tcp(127.0.0.1:1)/laneim", MySQLOptions{})
	if !errors.Is(err, schema.ErrUnavailable) {
		t.Fatalf("OpenMySQL on a closed port: %v, want unavailable", err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("took %v to fail", took)
	}
}

// TestMySQLLockHeld: a write that waits for a row lock another session holds (an
// operator's open transaction) gives up at its deadline, or at the lock wait when that
// comes first, with unavailable; it succeeds once the lock is released.
func TestMySQLLockHeld(t *testing.T) {
	ctx := context.Background()
	dsn := testsvc.MySQL(t)
	s, err := OpenMySQL(ctx, dsn, MySQLOptions{LockWaitSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateRoom(ctx, Room{ID: "r", Owner: "alice"}, Caps{Rooms: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddMember(ctx, "r", "bob", Caps{Rooms: 10}); err != nil {
		t.Fatal(err)
	}
	operator, err := rawMySQL(t, dsn).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer operator.Rollback()
	if _, err := operator.Exec("SELECT * FROM user_locks WHERE `user` = 'carol' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Exec("UPDATE members SET read_seq = 7 WHERE room = 'r' AND `user` = 'bob'"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		deadline time.Duration
		call     func(ctx context.Context) error
	}{
		{"deadline first", 300 * time.Millisecond, func(ctx context.Context) error {
			_, err := s.AddMember(ctx, "r", "carol", Caps{Rooms: 10})
			return err
		}},
		{"lock wait first", 10 * time.Second, func(ctx context.Context) error {
			_, err := s.SetRead(ctx, "bob", "r", 9)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			callCtx, cancel := context.WithTimeout(ctx, tt.deadline)
			defer cancel()
			start := time.Now()
			err := tt.call(callCtx)
			took := time.Since(start)
			if !errors.Is(err, schema.ErrUnavailable) {
				t.Fatalf("write behind a held lock: %v, want unavailable", err)
			}
			if limit := min(tt.deadline, time.Second) + 2*time.Second; took > limit {
				t.Errorf("took %v to give up, want under %v", took, limit)
			}
			t.Logf("gave up after %v: %v", took.Round(time.Millisecond), err)
		})
	}

	if err := operator.Rollback(); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AddMember(ctx, "r", "carol", Caps{Rooms: 10}); err != nil || !added {
		t.Fatalf("add once the lock is released: %v, %v", added, err)
	}
	if seq, err := s.SetRead(ctx, "bob", "r", 9); err != nil || seq != 9 {
		t.Fatalf("SetRead once the lock is released: %d, %v", seq, err)
	}
}
