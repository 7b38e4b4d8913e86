package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/testsvc"
)

// TestDevStackOnCQL runs the dev stack with its message history on a real Cassandra
// node: sends and their acks, a retried nonce, history pages both ways over WebSocket
// and HTTP, a catch-up with since while sends go on, the room list's last seqs, and the
// history kept across a restart of the stack.
func TestDevStackOnCQL(t *testing.T) {
	hosts, keyspace := testsvc.CQL(t), testsvc.CQLKeyspace(t)
	dir := t.TempDir()
	onCQL := func(c *configs.Config) {
		c.CQLHosts, c.CQLKeyspace = strings.Join(hosts, ","), keyspace
		c.Gateways, c.RateLimit = 2, 0
	}
	s := startStack(t, dir, onCQL)
	if _, ok := s.Messages.(*store.CQL); !ok {
		t.Fatalf("message store is %T, want *store.CQL", s.Messages)
	}
	room(t, s, "r", "alice", false, "bob")
	alice := connect(t, s, "alice")

	const before = 120
	rids := make([]int, before)
	for i := range before {
		rids[i] = alice.write("send", sendD("r", fmt.Sprintf("n%d", i), i))
	}
	for i, rid := range rids {
		if seq := ackSeq(t, alice.reply(rid)); seq != int64(i+1) {
			t.Fatalf("send %d acked with seq %d", i, seq)
		}
	}
	if seq := ackSeq(t, alice.call("send", sendD("r", "n7", 7))); seq != 8 {
		t.Fatalf("retried nonce n7 acked with seq %d, want 8", seq)
	}

	checkPage := func(what string, b schema.Batch, from, to int64, more bool) {
		t.Helper()
		msgs, err := b.Messages()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(msgs)) != to-from+1 || b.More == nil || *b.More != more {
			t.Fatalf("%s: %d messages more %v, want %d to %d more %v", what, len(msgs), b.More, from, to, more)
		}
		for i, m := range msgs {
			if m.Seq != from+int64(i) || m.User != "alice" || string(m.Body) != fmt.Sprint(m.Seq-1) {
				t.Fatalf("%s: message %d is %+v body %s", what, i, m, m.Body)
			}
		}
	}
	checkPage("newest", alice.mustCall("history", map[string]any{"room": "r"}, "history").batch(t), 71, 120, true)
	checkPage("before 71", alice.mustCall("history", map[string]any{"room": "r", "before": 71, "limit": 200}, "history").batch(t), 1, 70, false)
	checkPage("after 100", alice.mustCall("history", map[string]any{"room": "r", "after": 100, "limit": 10}, "history").batch(t), 101, 110, true)
	var page schema.Batch
	if err := json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/rooms/r/messages?after=115", nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	checkPage("HTTP after 115", page, 116, 120, false)

	// Bob catches up from seq 100 on the other gateway while alice keeps sending.
	var sent atomic.Int64
	sent.Store(before)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sender := connect(t, s, "alice")
		for i := before; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if f := sender.call("send", sendD("r", fmt.Sprintf("n%d", i), i)); f.Op == "ack" {
				sent.Add(1)
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	bob := connectTo(t, s, 1, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r", "since": 100}, "subscribed")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	last := sent.Load()
	msgs := bob.collect("r", 101, last, 15*time.Second)
	for _, m := range msgs {
		if string(m.Body) != fmt.Sprint(m.Seq-1) {
			t.Fatalf("seq %d has body %s", m.Seq, m.Body)
		}
	}
	if last == before {
		t.Fatal("no send was acked during the catch-up")
	}

	// The room list carries the room's last seq, from the CQL store.
	var rooms struct{ Rooms []schema.UserRoom }
	if err := json.Unmarshal(mustHTTP(t, s, "bob", "GET", "/v1/me/rooms", nil, http.StatusOK), &rooms); err != nil {
		t.Fatal(err)
	}
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].Seq != last {
		t.Fatalf("bob's rooms %+v, want r at seq %d", rooms.Rooms, last)
	}

	// A new stack on the same data dir and keyspace has the history and goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s.Close(ctx)
	cancel()
	s = startStack(t, dir, onCQL)
	alice = connect(t, s, "alice")
	if seq := ackSeq(t, alice.call("send", sendD("r", "after-restart", last))); seq != last+1 {
		t.Fatalf("first send after the restart got seq %d, want %d", seq, last+1)
	}
	checkPage("after the restart", alice.mustCall("history", map[string]any{"room": "r", "before": 51}, "history").batch(t), 1, 50, false)
}
