package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/laneim/laneim/schema"
)

func TestSQLiteMessageStore(t *testing.T) {
	testMessageStore(t, func(t *testing.T) MessageStore {
		s, _ := openTestSQLite(t)
		return s
	})
}

func BenchmarkAppend(b *testing.B) {
	for _, synchronous := range []string{"normal", "full"} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", synchronous, batch), func(b *testing.B) {
				s, err := OpenSQLite(filepath.Join(b.TempDir(), "bench.db"), SQLiteOptions{Synchronous: synchronous})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				body := json.RawMessage(`{"text":"a typical chat message of some sixty bytes or so"}`)
				msgs := make([]NewMessage, batch)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					for i := range msgs {
						// Ten rooms, as a logic partition's batch mixes rooms.
						msgs[i] = NewMessage{Room: "room" + strconv.Itoa(n%10), User: "alice", Nonce: strconv.Itoa(n), Ts: int64(n), Body: body}
						n++
					}
					if _, err := s.Append(ctx, msgs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

func BenchmarkRange(b *testing.B) {
	s, _ := openTestSQLite(b)
	ctx := context.Background()
	const total = 10000
	for start := 0; start < total; start += 1000 {
		appendRoom(b, s, "r", "n"+strconv.Itoa(start)+"-", 1000)
	}
	tests := []struct {
		name string
		q    func(i int) Query
	}{
		{"newest50", func(int) Query { return Query{Limit: 50} }},
		{"before50", func(i int) Query { return Query{Before: int64(100 + i%(total-100)), Limit: 50} }},
		{"after50", func(i int) Query { return Query{After: int64(i % (total - 50)), Limit: 50, Ascending: true} }},
		{"after200", func(i int) Query { return Query{After: int64(i % (total - 200)), Limit: 200, Ascending: true} }},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := s.Range(ctx, "r", tt.q(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("parallel/newest50", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.Range(ctx, "r", Query{Limit: 50}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func TestSQLiteListMembersHugeLimit(t *testing.T) {
	s, _ := openTestSQLite(t)
	members, _, err := s.ListMembers(context.Background(), "r", "", math.MaxInt)
	if err != nil || len(members) != 0 {
		t.Fatalf("ListMembers with limit MaxInt = %v, %v", members, err)
	}
}

// TestSQLiteEditsMigration: a message log written before edits (no kind, ref) gets the
// columns and the index of edits when it is opened, and its messages can be edited.
func TestSQLiteEditsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "laneim.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
			sender TEXT NOT NULL, nonce TEXT NOT NULL, body BLOB, PRIMARY KEY (room, seq)) WITHOUT ROWID`,
		`CREATE UNIQUE INDEX messages_nonce ON messages (room, sender, nonce)`,
		`INSERT INTO messages VALUES ('r', 1, 1000, 'alice', 'n1', '"old"'), ('r', 2, 1001, 'bob', 'n2', '"two"')`,
		`PRAGMA user_version = 1`,
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
	defer s.Close()
	got, err := s.Append(ctx, []NewMessage{editMsg("r", "alice", "e1", 2000, 1, `"new"`), deleteMsg("r", "bob", "d1", 2000, 2, false)})
	if err != nil || got[0].Seq != 3 || got[1].Seq != 4 {
		t.Fatalf("edit and delete after the migration: %+v, %v", got, err)
	}
	checkLog(t, s, "r", []entryState{
		{`"new"`, schema.KindEdited, 2000},
		{"", schema.KindDeleted, 0},
		{`"new"`, schema.KindEdit, 1},
		{"", schema.KindDelete, 2},
	})
	var version int
	if err := s.reader.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != editsVersion {
		t.Errorf("user_version %d, %v", version, err)
	}
}
