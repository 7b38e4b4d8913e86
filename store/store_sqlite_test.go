package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func openTestSQLite(tb testing.TB) (*SQLite, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "laneim.db")
	s, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, path
}

func TestSQLiteAppendPersists(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "laneim.db")
	s, err := OpenSQLite(path, SQLiteOptions{Synchronous: "full"})
	if err != nil {
		t.Fatal(err)
	}
	appendRoom(t, s, "r", "n", 3)
	if err := s.CreateRoom(ctx, Room{ID: "r", Name: "R", Owner: "alice"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Reopened: the seq continues, old nonces still dedupe, the room is there.
	s, err = OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Append(ctx, []NewMessage{newMsg("r", "alice", "n1", 5), newMsg("r", "alice", "new", 6)})
	if err != nil {
		t.Fatal(err)
	}
	checkAppended(t, got, []appendWant{{2, 1001, `{"text":"n1"}`, false}, {4, 6, `{"text":"new"}`, true}})
	if _, err := s.GetRoom(ctx, "r"); err != nil {
		t.Errorf("room lost on reopen: %v", err)
	}
}

func TestOpenSQLiteOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		opts    SQLiteOptions
		wantErr bool
	}{
		{"defaults", filepath.Join(dir, "a.db"), SQLiteOptions{}, false},
		{"full", filepath.Join(dir, "b.db"), SQLiteOptions{Synchronous: "FULL", ReadConns: 2}, false},
		{"bad synchronous", filepath.Join(dir, "c.db"), SQLiteOptions{Synchronous: "off"}, true},
		{"memory", ":memory:", SQLiteOptions{}, true},
		{"empty", "", SQLiteOptions{}, true},
		{"question mark", filepath.Join(dir, "d?.db"), SQLiteOptions{}, true},
		{"missing directory", filepath.Join(dir, "nope", "e.db"), SQLiteOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenSQLite(tt.path, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("OpenSQLite: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer s.Close()
			var mode string
			if err := s.reader.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v; want wal", mode, err)
			}
			var synchronous int
			if err := s.writer.QueryRow("PRAGMA synchronous").Scan(&synchronous); err != nil {
				t.Fatal(err)
			}
			wantSync := 1
			if tt.opts.Synchronous != "" {
				wantSync = 2
			}
			if synchronous != wantSync {
				t.Errorf("synchronous = %d, want %d", synchronous, wantSync)
			}
			for _, db := range []*sql.DB{s.writer, s.reader} {
				var foreignKeys, busyTimeout int
				if err := db.QueryRow("PRAGMA foreign_keys").Scan(&foreignKeys); err != nil || foreignKeys != 1 {
					t.Errorf("foreign_keys = %d, %v; want 1", foreignKeys, err)
				}
				if err := db.QueryRow("PRAGMA busy_timeout").Scan(&busyTimeout); err != nil || busyTimeout != 5000 {
					t.Errorf("busy_timeout = %d, %v; want 5000", busyTimeout, err)
				}
			}
			if _, err := s.reader.Exec("DELETE FROM rooms"); err == nil {
				t.Error("reader pool accepted a write")
			}
		})
	}
}

// TestSQLiteReadsDuringAppend runs readers against a stream of appends (run it with
// -race). Every reader must see each room's log as a gapless prefix that only grows.
func TestSQLiteReadsDuringAppend(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	rooms := []string{"r0", "r1", "r2", "r3"}
	const batches, perBatch = 100, 20

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	wg.Go(func() {
		defer close(done)
		for b := range batches {
			msgs := make([]NewMessage, perBatch)
			for i := range msgs {
				msgs[i] = newMsg(rooms[(b+i)%len(rooms)], "alice", fmt.Sprintf("%d-%d", b, i), int64(b))
			}
			if _, err := s.Append(ctx, msgs); err != nil {
				errs <- err
				return
			}
		}
	})
	for reader := range 6 {
		wg.Go(func() {
			room := rooms[reader%len(rooms)]
			var last int64
			for {
				select {
				case <-done:
					return
				default:
				}
				seq, err := s.LastSeq(ctx, room)
				if err != nil {
					errs <- err
					return
				}
				if seq < last {
					errs <- fmt.Errorf("room %s: last seq went from %d to %d", room, last, seq)
					return
				}
				last = seq
				page, _, err := s.Range(ctx, room, Query{Limit: 30})
				if err != nil {
					errs <- err
					return
				}
				for i := 1; i < len(page); i++ {
					if page[i].Seq != page[i-1].Seq+1 {
						errs <- fmt.Errorf("room %s: gap between %d and %d", room, page[i-1].Seq, page[i].Seq)
						return
					}
				}
				if len(page) > 0 && page[len(page)-1].Seq < seq {
					errs <- fmt.Errorf("room %s: newest page ends at %d below last seq %d", room, page[len(page)-1].Seq, seq)
					return
				}
				if _, err := s.LastSeqs(ctx, rooms); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.LastSeqs(ctx, rooms)
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		if got[room] != batches*perBatch/int64(len(rooms)) {
			t.Errorf("room %s ends at %d, want %d", room, got[room], batches*perBatch/len(rooms))
		}
	}
}

// TestSQLiteReadsDoNotWaitForWriter holds the write lock and checks that reads still
// answer: they must not queue behind the writer connection.
func TestSQLiteReadsDoNotWaitForWriter(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	appendRoom(t, s, "r", "n", 3)
	if err := s.CreateRoom(ctx, Room{ID: "r", Owner: "alice"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO messages (room, seq, ts, sender, nonce) VALUES ('r', 4, 0, 'x', 'uncommitted')`); err != nil {
		t.Fatal(err)
	}

	readCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if seq, err := s.LastSeq(readCtx, "r"); err != nil || seq != 3 {
		t.Errorf("LastSeq while writing = %d, %v; want the committed 3", seq, err)
	}
	if page, _, err := s.Range(readCtx, "r", Query{}); err != nil || len(page) != 3 {
		t.Errorf("Range while writing = %d messages, %v", len(page), err)
	}
	if ok, err := s.IsMember(readCtx, "r", "alice"); err != nil || !ok {
		t.Errorf("IsMember while writing = %v, %v", ok, err)
	}
}

// TestSQLiteTwoStoresOneFile opens the file twice, as two processes would, and
// appends from both at once. Append reads before it writes, so only BEGIN IMMEDIATE
// (with busy_timeout) keeps this free of SQLITE_BUSY: a deferred transaction could not
// upgrade its read lock while the other store commits.
func TestSQLiteTwoStoresOneFile(t *testing.T) {
	_, path := openTestSQLite(t)
	other, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	first, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, s := range []*SQLite{first, other} {
		wg.Go(func() {
			room := "room" + strconv.Itoa(i)
			for b := range 50 {
				if _, err := s.Append(context.Background(), []NewMessage{newMsg(room, "alice", strconv.Itoa(b), 1)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := first.LastSeqs(context.Background(), []string{"room0", "room1"})
	if err != nil || got["room0"] != 50 || got["room1"] != 50 {
		t.Errorf("LastSeqs = %v, %v; want 50 each", got, err)
	}
}

// TestSQLiteCheckpointsInBackground: commits do not checkpoint, the checkpointer does:
// committed pages reach the database file while the store stays open.
func TestSQLiteCheckpointsInBackground(t *testing.T) {
	s, path := openTestSQLite(t)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	for i := range 20 {
		appendRoom(t, s, "r", "n"+strconv.Itoa(i)+"-", 100)
	}
	deadline := time.Now().Add(5 * checkpointEvery)
	for size() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes %s after 2,000 commits: no checkpoint ran", size(), 5*checkpointEvery)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
