package e2e

import (
	"fmt"
	"github.com/laneim/laneim/configs"
	"sync/atomic"
	"testing"
	"time"
)

// TestSinceCatchUpWhileSending subscribes with since in the middle of a room's history
// while a sender keeps sending: the subscriber must see every seq after since exactly
// once and in order, across the history/live boundary.
func TestSinceCatchUpWhileSending(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways, c.RateLimit = 2, 0 })
	room(t, s, "busy", "alice", false, "bob")
	alice := connect(t, s, "alice")
	const before = 450 // more than two history pages
	for i := range before {
		alice.write("send", sendD("busy", fmt.Sprintf("a%d", i), i))
	}
	if seq := ackSeq(t, alice.call("send", sendD("busy", "last-before", "x"))); seq != before+1 {
		t.Fatalf("seq %d after %d sends", seq, before+1)
	}

	var sent atomic.Int64
	sent.Store(before + 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sender := connect(t, s, "alice")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := sender.call("send", sendD("busy", fmt.Sprintf("live%d", i), i))
			if f.Op == "ack" {
				sent.Add(1)
			}
		}
	}()

	time.Sleep(20 * time.Millisecond)
	// Bob on the other gateway, catching up from seq 100.
	bob := connectTo(t, s, 1, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "busy", "since": 100}, "subscribed")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	last := sent.Load()
	bob.collect("busy", 101, last, 15*time.Second)
	// Nothing after the last seq either.
	if f, ok := bob.next(func(f frame) bool { return f.Op == "msgs" }, 300*time.Millisecond); ok {
		t.Fatalf("extra frame after seq %d: %s", last, f.raw)
	}
}

// TestResubscribeSinceZero replays a room from the start.
func TestResubscribeSinceZero(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false)
	alice := connect(t, s, "alice")
	for i := range 5 {
		alice.call("send", sendD("r", fmt.Sprint(i), i))
	}
	alice.mustCall("subscribe", map[string]any{"room": "r", "since": 0}, "subscribed")
	alice.collect("r", 1, 5, 5*time.Second)
	alice.mustCall("unsubscribe", map[string]any{"room": "r"}, "unsubscribed")
	alice.call("send", sendD("r", "after-unsub", 1))
	if f, ok := alice.next(func(f frame) bool { return f.Op == "msgs" }, 300*time.Millisecond); ok {
		t.Fatalf("msgs after unsubscribe: %s", f.raw)
	}
	alice.mustCall("subscribe", map[string]any{"room": "r", "since": 3}, "subscribed")
	alice.collect("r", 4, 6, 5*time.Second)
}
