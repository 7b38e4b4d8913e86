package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// memberEvent is the member frame logic publishes.
func memberEvent(room, user, action string) []byte {
	return schema.EncodeFrame(schema.OpMember, nil, schema.MemberD{Room: room, User: user, Action: action})
}

// TestLostLeaveRepairedAfterSlowConsumer: a leave dropped because the gateway's event
// channel was full is repaired from logic: the removed user's connection stops
// receiving the room and is told it left.
func TestLostLeaveRepairedAfterSlowConsumer(t *testing.T) {
	// An event channel of one: the event being handled, one waiting, the next dropped.
	st := newTestStack(t, nil, func(g *Gateway) { g.control = make(chan *nats.Msg, 1) })
	st.logic.join("alice", "a", "b")
	alice := st.connect(t, "alice")
	if f := alice.call("subscribe", map[string]any{"room": "a"}); f.Op != schema.OpSubscribed {
		t.Fatalf("subscribe: %s", f.raw)
	}
	publishFrame(t, st.logic.nc, st.logic.store("a", 1))
	alice.collectMsgs(map[string][]int64{"a": {1}}, 5*time.Second)

	// Hold the event handler on alice's connection, so that events pile up.
	conns := st.g.users.conns("alice")
	if len(conns) != 1 {
		t.Fatalf("%d connections of alice", len(conns))
	}
	c := conns[0]
	c.memberMu.Lock()
	locked := true
	defer func() {
		if locked {
			c.memberMu.Unlock()
		}
	}()
	st.logic.join("alice", "c")
	st.logic.remove("alice", "a")
	slow := counterValue(t, "laneim_gateway_membership_resyncs_total", "trigger=slow_consumer")
	pub := st.logic.nc
	for _, ev := range [][]byte{
		memberEvent("c", "alice", schema.ActionJoin),     // handled, and waits for the lock
		[]byte(`{"op":"read","d":{"room":"b","seq":0}}`), // waits in the channel
		memberEvent("a", "alice", schema.ActionLeave),    // dropped
	} {
		if err := pub.Publish(subjects.UserEventsT("alice"), ev); err != nil {
			t.Fatal(err)
		}
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "no slow consumer reported for alice's events", 5*time.Second, func() bool {
		return counterValue(t, "laneim_gateway_membership_resyncs_total", "trigger=slow_consumer") > slow
	})
	locked = false
	c.memberMu.Unlock()

	f, ok := alice.next(func(f testFrame) bool {
		return f.Op == schema.OpMember && strings.Contains(string(f.D), `"room":"a"`)
	}, 5*time.Second)
	if !ok || !strings.Contains(string(f.D), `"leave"`) {
		t.Fatalf("no leave of room a after the lost event: %s", f.raw)
	}
	if c.isMember("a") || !c.isMember("b") || !c.isMember("c") {
		t.Fatalf("rooms after the repair: %v", c.rooms)
	}
	publishFrame(t, pub, st.logic.store("a", 1))
	if f, ok := alice.next(func(f testFrame) bool { return f.Op == schema.OpMsgs || f.Op == schema.OpTick }, 300*time.Millisecond); ok {
		t.Fatalf("a removed member got %s", f.raw)
	}
}

// TestMalformedEventsCounted: events that cannot be read are dropped with a trace, a
// metric and a rate-limited warning, not silently.
func TestMalformedEventsCounted(t *testing.T) {
	st := newTestStack(t, nil)
	st.logic.join("alice", "a")
	alice := st.connect(t, "alice")
	before := counterValue(t, "laneim_gateway_events_dropped_total", "reason=malformed")
	for _, ev := range []string{`not json`, `{"op":"member","d":{"room":"bad room!","action":"leave"}}`} {
		if err := st.logic.nc.Publish(subjects.UserEventsT("alice"), []byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.logic.nc.Publish(subjects.RoomEventsT("a"), []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "malformed events not counted", 5*time.Second, func() bool {
		return counterValue(t, "laneim_gateway_events_dropped_total", "reason=malformed")-before == 3
	})
	if f, ok := alice.next(func(f testFrame) bool { return f.Op != schema.OpMsgs }, 200*time.Millisecond); ok {
		t.Fatalf("a malformed event reached the client: %s", f.raw)
	}

	warnings := 0
	for range 100 {
		if st.g.hotWarn() != nil {
			warnings++
		}
	}
	if warnings > 5 {
		t.Fatalf("%d of 100 hot-path warnings logged at once", warnings)
	}
}

// TestMemberEventsIdempotent: a membership change made through laneIM is announced
// by logic and again by CDC from the binlog. Each connection applies it, and tells
// its client, once: a second join or leave, or one the connection already knows,
// changes nothing and sends nothing.
func TestMemberEventsIdempotent(t *testing.T) {
	st := newTestStack(t, nil)
	st.logic.join("alice", "a")
	alice := st.connect(t, "alice")
	conns := st.g.users.conns("alice")
	if len(conns) != 1 {
		t.Fatalf("%d connections of alice", len(conns))
	}
	c := conns[0]
	publish := func(room, action string) {
		t.Helper()
		if err := st.logic.nc.Publish(subjects.UserEventsT("alice"), memberEvent(room, "alice", action)); err != nil {
			t.Fatal(err)
		}
	}
	memberFrames := func() []string {
		var got []string
		for {
			f, ok := alice.next(func(f testFrame) bool { return f.Op == schema.OpMember }, 300*time.Millisecond)
			if !ok {
				return got
			}
			got = append(got, string(f.D))
		}
	}

	st.logic.join("alice", "b")
	publish("b", schema.ActionJoin)
	publish("b", schema.ActionJoin) // CDC's copy
	publish("a", schema.ActionJoin) // a room the connection is in already
	if got := memberFrames(); len(got) != 1 || !strings.Contains(got[0], `"room":"b"`) || !strings.Contains(got[0], `"join"`) {
		t.Fatalf("member frames after joins: %q, want one join of b", got)
	}
	if !c.isMember("b") {
		t.Fatal("not in room b after its join")
	}

	st.logic.remove("alice", "a")
	publish("a", schema.ActionLeave)
	publish("a", schema.ActionLeave)
	publish("z", schema.ActionLeave) // a room the connection is not in
	if got := memberFrames(); len(got) != 1 || !strings.Contains(got[0], `"room":"a"`) || !strings.Contains(got[0], `"leave"`) {
		t.Fatalf("member frames after leaves: %q, want one leave of a", got)
	}
	if c.isMember("a") || !c.isMember("b") {
		t.Fatalf("rooms after the leave: %v", c.rooms)
	}
	// The leave took effect: the room's messages no longer reach the connection.
	publishFrame(t, st.logic.nc, st.logic.store("a", 1))
	if f, ok := alice.next(func(f testFrame) bool { return f.Op == schema.OpMsgs || f.Op == schema.OpTick }, 300*time.Millisecond); ok {
		t.Fatalf("a removed member got %s", f.raw)
	}
}
