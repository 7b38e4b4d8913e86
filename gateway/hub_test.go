package gateway

import (
	"fmt"
	"testing"
	"time"
)

// sameShard returns two room ids of one hub shard.
func sameShard() (string, string) {
	first := "room0"
	for i := 1; ; i++ {
		id := fmt.Sprintf("room%d", i)
		if fnv32(id)%hubShards == fnv32(first)%hubShards {
			return first, id
		}
	}
}

// testConn is a connection with no socket whose frames stay queued: a write loop
// "runs", so none is started.
func testConn(g *Gateway, user string) *conn {
	return &conn{gw: g, user: user, wake: make(chan struct{}, 1), rooms: map[string]struct{}{}, writing: true}
}

// TestShardNotHeldForRoomLock: a room whose lock is held for long (a relay to
// thousands of members) holds up joins of that room only, not joins and lookups of
// the other rooms of its shard.
func TestShardNotHeldForRoomLock(t *testing.T) {
	g := newTestGateway(t, Config{})
	busy, other := sameShard()
	r, _ := subscribedRoom(g, busy, 1)

	r.mu.Lock() // a long relay
	locked := true
	unlock := func() {
		if locked {
			locked = false
			r.mu.Unlock()
		}
	}
	defer unlock()
	joinedBusy := make(chan struct{})
	go func() {
		testConn(g, "a").join(busy) // waits for the relay
		close(joinedBusy)
	}()
	time.Sleep(50 * time.Millisecond) // the join above is waiting by now

	joinedOther := make(chan struct{})
	go func() {
		testConn(g, "b").join(other)
		if g.hub.get(other) == nil {
			t.Error("joined room not found")
		}
		close(joinedOther)
	}()
	select {
	case <-joinedOther:
	case <-time.After(2 * time.Second):
		t.Fatal("a join of another room of the shard waited for the busy room's lock")
	}
	select {
	case <-joinedBusy:
		t.Fatal("a join of the busy room did not wait for its lock")
	default:
	}
	unlock()
	<-joinedBusy
}

// TestLeaveAndJoinRace: joins and leaves of one room racing each other leave the hub
// with exactly the rooms that have connections, subscribed as they should be.
func TestLeaveAndJoinRace(t *testing.T) {
	g := newTestGateway(t, Config{})
	conns := make([]*conn, 8)
	for i := range conns {
		conns[i] = testConn(g, fmt.Sprint("u", i))
	}
	done := make(chan struct{})
	for _, c := range conns {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 300 {
				c.join("r")
				c.leave("r")
			}
		}()
	}
	for range conns {
		<-done
	}
	if r := g.hub.get("r"); r != nil {
		t.Fatalf("room kept with %d connections after every one left", len(r.conns))
	}
	conns[0].join("r")
	r := g.hub.get("r")
	if r == nil || len(r.conns) != 1 || r.tickSub == nil || r.eventsSub == nil {
		t.Fatalf("room after a rejoin: %+v", r)
	}
}
