package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

type appendWant struct {
	seq  int64
	ts   int64
	body string
	new  bool
}

func checkAppended(t *testing.T, got []Appended, want []appendWant) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Seq != w.seq || g.Ts != w.ts || string(g.Body) != w.body || g.New != w.new {
			t.Errorf("result %d: got seq %d ts %d body %s new %v, want seq %d ts %d body %s new %v",
				i, g.Seq, g.Ts, g.Body, g.New, w.seq, w.ts, w.body, w.new)
		}
	}
}

func TestSQLiteAppend(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		before  [][]NewMessage // batches appended first
		batch   []NewMessage
		want    []appendWant
		rooms   map[string]int64 // LastSeq after the batch
		checkFn func(t *testing.T, s *SQLite)
	}{
		{
			name:  "seqs start at 1 in input order",
			batch: []NewMessage{newMsg("r", "alice", "a", 10), newMsg("r", "bob", "b", 11), newMsg("r", "alice", "c", 12)},
			want: []appendWant{
				{1, 10, `{"text":"a"}`, true}, {2, 11, `{"text":"b"}`, true}, {3, 12, `{"text":"c"}`, true},
			},
			rooms: map[string]int64{"r": 3},
		},
		{
			name:   "continues after earlier batches",
			before: [][]NewMessage{{newMsg("r", "alice", "a", 10), newMsg("r", "alice", "b", 11)}},
			batch:  []NewMessage{newMsg("r", "alice", "c", 12)},
			want:   []appendWant{{3, 12, `{"text":"c"}`, true}},
			rooms:  map[string]int64{"r": 3},
		},
		{
			name:   "rooms mixed in one batch have their own seqs",
			before: [][]NewMessage{{newMsg("b", "alice", "x", 1)}},
			batch: []NewMessage{
				newMsg("a", "alice", "1", 10), newMsg("b", "alice", "1", 11), newMsg("a", "bob", "2", 12),
				newMsg("c", "alice", "1", 13), newMsg("b", "bob", "2", 14),
			},
			want: []appendWant{
				{1, 10, `{"text":"1"}`, true}, {2, 11, `{"text":"1"}`, true}, {2, 12, `{"text":"2"}`, true},
				{1, 13, `{"text":"1"}`, true}, {3, 14, `{"text":"2"}`, true},
			},
			rooms: map[string]int64{"a": 2, "b": 3, "c": 1},
		},
		{
			name: "duplicate nonce within a batch is stored once",
			batch: []NewMessage{
				newMsg("r", "alice", "n", 10), newMsg("r", "bob", "n", 11),
				{Room: "r", User: "alice", Nonce: "n", Ts: 12, Body: json.RawMessage(`"retry"`)},
				newMsg("r", "alice", "m", 13),
			},
			want: []appendWant{
				{1, 10, `{"text":"n"}`, true}, {2, 11, `{"text":"n"}`, true},
				{1, 10, `{"text":"n"}`, false}, {3, 13, `{"text":"m"}`, true},
			},
			rooms: map[string]int64{"r": 3},
		},
		{
			name:   "duplicate nonce across batches keeps seq, ts and body",
			before: [][]NewMessage{{newMsg("r", "alice", "a", 10), newMsg("r", "alice", "b", 11)}},
			batch: []NewMessage{
				{Room: "r", User: "alice", Nonce: "a", Ts: 99, Body: json.RawMessage(`"retry"`)},
				newMsg("r", "alice", "c", 12),
				{Room: "r", User: "alice", Nonce: "b", Ts: 98, Body: json.RawMessage(`"retry"`)},
			},
			want: []appendWant{
				{1, 10, `{"text":"a"}`, false}, {3, 12, `{"text":"c"}`, true}, {2, 11, `{"text":"b"}`, false},
			},
			rooms: map[string]int64{"r": 3},
		},
		{
			name:   "same nonce in another room is another message",
			before: [][]NewMessage{{newMsg("r", "alice", "a", 10)}},
			batch:  []NewMessage{newMsg("s", "alice", "a", 11)},
			want:   []appendWant{{1, 11, `{"text":"a"}`, true}},
			rooms:  map[string]int64{"r": 1, "s": 1},
		},
		{
			name: "body is stored byte for byte",
			batch: []NewMessage{
				{Room: "r", User: "u", Nonce: "1", Ts: 1, Body: json.RawMessage(" {\"a\" : [1, 2.50, \"\\u00e9\"]} ")},
				{Room: "r", User: "u", Nonce: "2", Ts: 2, Body: json.RawMessage(`"héllo \u2028"`)},
			},
			want: []appendWant{
				{1, 1, " {\"a\" : [1, 2.50, \"\\u00e9\"]} ", true}, {2, 2, `"héllo \u2028"`, true},
			},
			rooms: map[string]int64{"r": 2},
			checkFn: func(t *testing.T, s *SQLite) {
				got, _, err := s.Range(ctx, "r", Query{Ascending: true})
				if err != nil {
					t.Fatal(err)
				}
				if string(got[0].Body) != " {\"a\" : [1, 2.50, \"\\u00e9\"]} " || string(got[1].Body) != `"héllo \u2028"` {
					t.Errorf("bodies read back as %q, %q", got[0].Body, got[1].Body)
				}
			},
		},
		{
			name:  "empty batch",
			batch: nil,
			want:  nil,
			rooms: map[string]int64{"r": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTestSQLite(t)
			for _, b := range tt.before {
				if _, err := s.Append(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Append(ctx, tt.batch)
			if err != nil {
				t.Fatal(err)
			}
			checkAppended(t, got, tt.want)
			for i, g := range got {
				if g.Room != tt.batch[i].Room || g.User != tt.batch[i].User {
					t.Errorf("result %d is %s/%s, want %s/%s", i, g.Room, g.User, tt.batch[i].Room, tt.batch[i].User)
				}
			}
			for room, want := range tt.rooms {
				if seq, err := s.LastSeq(ctx, room); err != nil || seq != want {
					t.Errorf("LastSeq(%s) = %d, %v; want %d", room, seq, err, want)
				}
			}
			if tt.checkFn != nil {
				tt.checkFn(t, s)
			}
		})
	}
}

func TestSQLiteAppendCanceled(t *testing.T) {
	s, _ := openTestSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, []NewMessage{newMsg("r", "alice", "a", 1)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context: %v", err)
	}
	// Nothing was stored, and the writer is usable again.
	got := appendRoom(t, s, "r", "n", 1)
	if got[0].Seq != 1 {
		t.Errorf("seq after a canceled append = %d, want 1", got[0].Seq)
	}
}

func TestSQLiteRange(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	appendRoom(t, s, "r", "n", 20)
	appendRoom(t, s, "other", "n", 5)

	seqs := func(from, to int64) []int64 { // inclusive
		var out []int64
		for seq := from; seq <= to; seq++ {
			out = append(out, seq)
		}
		return out
	}
	tests := []struct {
		name     string
		room     string
		q        Query
		wantSeqs []int64
		wantMore bool
	}{
		{"newest", "r", Query{Limit: 5}, seqs(16, 20), true},
		{"newest all", "r", Query{Limit: 20}, seqs(1, 20), false},
		{"newest beyond all", "r", Query{Limit: 50}, seqs(1, 20), false},
		{"default limit", "r", Query{}, seqs(1, 20), false},
		{"negative limit", "r", Query{Limit: -1}, seqs(1, 20), false},
		{"before", "r", Query{Before: 10, Limit: 3}, seqs(7, 9), true},
		{"before reaching the start", "r", Query{Before: 4, Limit: 3}, seqs(1, 3), false},
		{"before 1", "r", Query{Before: 1, Limit: 3}, nil, false},
		{"before beyond the end", "r", Query{Before: 100, Limit: 2}, seqs(19, 20), true},
		{"descending between bounds", "r", Query{After: 5, Before: 10, Limit: 3}, seqs(7, 9), true},
		{"descending between bounds all", "r", Query{After: 5, Before: 10, Limit: 4}, seqs(6, 9), false},
		{"after ascending", "r", Query{After: 5, Limit: 3, Ascending: true}, seqs(6, 8), true},
		{"after ascending to the end", "r", Query{After: 17, Limit: 3, Ascending: true}, seqs(18, 20), false},
		{"after the end", "r", Query{After: 20, Limit: 3, Ascending: true}, nil, false},
		{"ascending from the start", "r", Query{Limit: 2, Ascending: true}, seqs(1, 2), true},
		{"ascending between bounds", "r", Query{After: 5, Before: 10, Limit: 3, Ascending: true}, seqs(6, 8), true},
		{"ascending between bounds all", "r", Query{After: 5, Before: 10, Limit: 4, Ascending: true}, seqs(6, 9), false},
		{"empty interval", "r", Query{After: 5, Before: 6, Ascending: true}, nil, false},
		{"other room", "other", Query{}, seqs(1, 5), false},
		{"unknown room", "nobody", Query{}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := s.Range(ctx, tt.room, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var gotSeqs []int64
			for _, m := range got {
				gotSeqs = append(gotSeqs, m.Seq)
				if m.Room != tt.room || m.User != "alice" || m.Ts != 999+m.Seq ||
					string(m.Body) != fmt.Sprintf(`{"text":"n%d"}`, m.Seq-1) {
					t.Errorf("message %+v, body %s", m, m.Body)
				}
			}
			if !slices.Equal(gotSeqs, tt.wantSeqs) || more != tt.wantMore {
				t.Errorf("got %v more %v, want %v more %v", gotSeqs, more, tt.wantSeqs, tt.wantMore)
			}
		})
	}
}

func TestSQLiteLastSeqs(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	var msgs []NewMessage
	// 1200 rooms cross two chunk boundaries; room i holds i%4 messages.
	var rooms []string
	want := map[string]int64{}
	for i := range 1200 {
		room := "room" + strconv.Itoa(i)
		rooms = append(rooms, room)
		for j := range i % 4 {
			msgs = append(msgs, newMsg(room, "alice", strconv.Itoa(j), 1))
		}
		if i%4 > 0 {
			want[room] = int64(i % 4)
		}
	}
	if _, err := s.Append(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		rooms []string
		want  map[string]int64
	}{
		{"none", nil, map[string]int64{}},
		{"one", []string{"room3"}, map[string]int64{"room3": 3}},
		{"empty room is absent", []string{"room4", "room5", "missing"}, map[string]int64{"room5": 1}},
		{"duplicates", []string{"room2", "room2"}, map[string]int64{"room2": 2}},
		{"many chunks", rooms, want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.LastSeqs(ctx, tt.rooms)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d rooms, want %d", len(got), len(tt.want))
			}
			for room, seq := range tt.want {
				if got[room] != seq {
					t.Errorf("%s: got %d, want %d", room, got[room], seq)
				}
			}
		})
	}
}

func TestSQLiteLookupNonce(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	appendRoom(t, s, "r", "n", 3)
	tests := []struct {
		name              string
		room, user, nonce string
		wantSeq           int64
		wantFound         bool
	}{
		{"found", "r", "alice", "n1", 2, true},
		{"other user", "r", "bob", "n1", 0, false},
		{"other room", "s", "alice", "n1", 0, false},
		{"unknown nonce", "r", "alice", "zz", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, found, err := s.LookupNonce(ctx, tt.room, tt.user, tt.nonce)
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.wantFound || m.Seq != tt.wantSeq {
				t.Fatalf("got %+v found %v, want seq %d found %v", m, found, tt.wantSeq, tt.wantFound)
			}
			if found && (m.Room != tt.room || m.User != tt.user || m.Ts != 1001 || string(m.Body) != `{"text":"n1"}`) {
				t.Errorf("got %+v body %s", m, m.Body)
			}
		})
	}
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

func TestSQLiteRangeHugeLimit(t *testing.T) {
	s, _ := openTestSQLite(t)
	appendRoom(t, s, "r", "n", 3)
	got, more, err := s.Range(context.Background(), "r", Query{Limit: math.MaxInt, Ascending: true})
	if err != nil || len(got) != 3 || more {
		t.Fatalf("Range with limit MaxInt = %d messages, more %v, %v", len(got), more, err)
	}
	members, _, err := s.ListMembers(context.Background(), "r", "", math.MaxInt)
	if err != nil || len(members) != 0 {
		t.Fatalf("ListMembers with limit MaxInt = %v, %v", members, err)
	}
}
