package logic

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// TestMutesTable: entries are used while fresh, loaded again after muteTTL, kept
// past it only as a fallback, and a drop during a load keeps the load out.
func TestMutesTable(t *testing.T) {
	m := newMutes()
	start := time.Unix(1000, 0)
	_, _, load, epoch := m.get([]string{"a", "b"}, start)
	if len(load) != 2 {
		t.Fatalf("an empty table loads %v", load)
	}
	m.put(load, map[string]map[string]int64{"a": {"bob": 0}}, epoch, start)
	held, _, load, _ := m.get([]string{"a", "b"}, start.Add(muteTTL-time.Millisecond))
	if len(load) != 0 || held["a"]["bob"] != 0 || len(held["a"]) != 1 || held["b"] != nil {
		t.Fatalf("fresh entries: held %v, load %v", held, load)
	}
	_, stale, load, _ := m.get([]string{"a"}, start.Add(muteTTL))
	if len(load) != 1 || len(stale["a"]) != 1 {
		t.Fatalf("after the TTL: stale %v, load %v", stale, load)
	}
	if _, stale, _, _ := m.get([]string{"a"}, start.Add(muteKeep)); stale != nil {
		t.Fatalf("past muteKeep an entry still answers: %v", stale)
	}
	// A drop while a load is under way: the load is not stored.
	_, _, load, epoch = m.get([]string{"c"}, start)
	m.drop("c")
	m.put(load, map[string]map[string]int64{"c": {"eve": 0}}, epoch, start)
	if _, _, load, _ := m.get([]string{"c"}, start); len(load) != 1 {
		t.Fatal("a load that raced a drop was stored")
	}
	m.drop("")
	if _, _, load, _ := m.get([]string{"a"}, start); len(load) != 1 {
		t.Fatal("a drop of every room kept one")
	}

	for _, tt := range []struct {
		users map[string]int64
		muted bool
	}{
		{nil, false},
		{map[string]int64{"bob": 0}, true},
		{map[string]int64{"bob": 5001}, true},
		{map[string]int64{"bob": 5000}, false},
		{map[string]int64{"eve": 0}, false},
	} {
		if muted, _ := mutedUntil(tt.users, "bob", 5000); muted != tt.muted {
			t.Errorf("mutedUntil(%v, bob, 5000) = %v", tt.users, muted)
		}
	}
}

// TestMuteAcrossLogicNodes: a mute written through one logic node drops the room's
// mutes another node holds, which then refuses the muted user's sends; an unmute
// lets them through again.
func TestMuteAcrossLogicNodes(t *testing.T) {
	srv := embednats.StartTest(t)
	db, err := store.OpenSQLite(filepath.Join(t.TempDir(), "laneim.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	secret := []byte("test-secret-of-at-least-32-bytes!!")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes []*Logic
	var conns []*nats.Conn
	for i := range 2 {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		l, err := New(Config{Secret: secret, Node: "logic-" + strconv.Itoa(i), Logger: zerolog.Nop()}, nc, db, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
		nodes = append(nodes, l)
		conns = append(conns, nc)
	}
	if err := db.CreateRoom(ctx, store.Room{ID: "r", Name: "r", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddMember(ctx, "r", "bob", store.Caps{}); err != nil {
		t.Fatal(err)
	}
	muted := func(l *Logic) bool {
		mutes, err := l.roomMutes(ctx, []string{"r"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m, _ := mutedUntil(mutes["r"], "bob", time.Now().UnixMilli())
		return m
	}
	// Both nodes hold "nobody is muted in r".
	for i, l := range nodes {
		if muted(l) {
			t.Fatalf("node %d: bob muted before any mute", i)
		}
	}
	call := func(l *Logic, req schema.SanctionReq) {
		// Straight to one node's handler, so that the other hears of it only through
		// the announcement.
		data, _ := json.Marshal(req)
		if _, err := l.sanctionSet(ctx, "alice", data); err != nil {
			t.Fatal(err)
		}
	}
	for step, lift := range []bool{false, true} {
		call(nodes[0], schema.SanctionReq{Room: "r", Target: "bob", Kind: store.SanctionMute, Lift: lift})
		if muted(nodes[0]) == lift {
			t.Fatalf("step %d: the writing node did not apply it at once", step)
		}
		deadline := time.Now().Add(2 * time.Second) // far inside muteTTL
		for muted(nodes[1]) == lift {
			if time.Now().After(deadline) {
				t.Fatalf("step %d: the other node still holds the old mutes", step)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// An unreadable announcement drops everything.
	muted(nodes[1])
	if err := conns[0].Publish(subjects.CacheInvalT(schema.TableSanctions), []byte("{")); err != nil {
		t.Fatal(err)
	}
	if err := conns[0].Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, _, load, _ := nodes[1].mutes.get([]string{"r"}, time.Now()); len(load) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an unreadable announcement kept the table")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkMutesCheck: the mute check of one ingest batch of 256 sends in 16 rooms
// whose mutes the table holds, as ingest does it (one get, then a lookup a send).
func BenchmarkMutesCheck(b *testing.B) {
	m := newMutes()
	now := time.Now()
	rooms := make([]string, 16)
	loaded := make(map[string]map[string]int64)
	for i := range rooms {
		rooms[i] = "room" + strconv.Itoa(i)
		if i%4 == 0 {
			loaded[rooms[i]] = map[string]int64{"spammer": 0}
		}
	}
	_, _, load, epoch := m.get(rooms, now)
	m.put(load, loaded, epoch, now)
	b.ReportAllocs()
	for b.Loop() {
		held, _, _, _ := m.get(rooms, now)
		for i := range 256 {
			if muted, _ := mutedUntil(held[rooms[i%16]], "user", now.UnixMilli()); muted {
				b.Fatal("muted")
			}
		}
	}
}

// TestMutesStoreDown: with the metadata store failing, a room whose mutes were read
// within muteKeep keeps them (sends go on, a mute still refuses), and a room never
// read fails the batch (it is retried) rather than let a muted user through.
func TestMutesStoreDown(t *testing.T) {
	db, err := store.OpenSQLite(filepath.Join(t.TempDir(), "laneim.db"), store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &Logic{meta: db, mutes: newMutes(), hotLog: logging.NewRateLimited(time.Second, 1), cfg: Config{Logger: zerolog.Nop()}}
	ctx := context.Background()
	now := time.Now()
	_, _, load, epoch := l.mutes.get([]string{"known"}, now)
	l.mutes.put(load, map[string]map[string]int64{"known": {"bob": 0}}, epoch, now.Add(-muteTTL))
	db.Close()
	before := testutil.ToFloat64(metricMuteLoadErrors)
	mutes, err := l.roomMutes(ctx, []string{"known"}, now)
	if err != nil || len(mutes["known"]) != 1 {
		t.Fatalf("a known room with the store down: %v, %v", mutes, err)
	}
	if got := testutil.ToFloat64(metricMuteLoadErrors) - before; got != 1 {
		t.Fatalf("load errors counted: %v", got)
	}
	if _, err := l.roomMutes(ctx, []string{"known", "unknown"}, now); err == nil {
		t.Fatal("a room never read answered with the store down")
	}
	if _, err := l.roomMutes(ctx, []string{"known"}, now.Add(muteKeep)); err == nil {
		t.Fatal("an entry past muteKeep answered with the store down")
	}
}
