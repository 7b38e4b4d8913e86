package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/store"
)

// reconnectGateway makes the embedded nats-server drop gateway i's connection, which
// then reconnects on its own.
func reconnectGateway(t *testing.T, s *devstack.Stack, i int) {
	t.Helper()
	name := "laneim-gateway-" + string(rune('0'+i))
	connz, err := s.NATS.NATS().Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range connz.Conns {
		if c.Name == name {
			if err := s.NATS.NATS().DisconnectClientByID(c.Cid); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no NATS connection named %s", name)
}

// TestLostLeaveRepairedAfterReconnect: a removal whose event never reached the
// gateway (here made behind logic's back, through the metadata cache, which keeps
// itself true but publishes no member event, as if it had been published while the
// gateway was away from NATS) takes effect once the gateway reconnects: the
// removed user is told it left and receives nothing more of the private room. A lost
// join is picked up the same way.
func TestLostLeaveRepairedAfterReconnect(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "r", "alice", false, "bob")
	room(t, s, "joined", "alice", false)
	alice := connectTo(t, s, 1, "alice")
	bob := connect(t, s, "bob")
	bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	alice.call("send", sendD("r", "1", "before"))
	bob.collect("r", 1, 1, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if removed, err := s.Cache.RemoveMember(ctx, "r", "bob"); err != nil || !removed {
		t.Fatalf("remove bob in the store: %v, %v", removed, err)
	}
	if added, err := s.Cache.AddMember(ctx, "joined", "bob", store.Caps{Rooms: 100}); err != nil || !added {
		t.Fatalf("add bob in the store: %v, %v", added, err)
	}
	// The gateway has not heard of it: bob still receives the room.
	alice.call("send", sendD("r", "2", "lost leave"))
	bob.collect("r", 2, 2, 5*time.Second)

	reconnectGateway(t, s, 0)
	events := map[string]string{}
	for len(events) < 2 {
		f, ok := bob.next(func(f frame) bool { return f.Op == "member" }, 15*time.Second)
		if !ok {
			t.Fatalf("bob's member events after the gateway reconnected: %v, want a leave of r and a join of joined", events)
		}
		var d struct{ Room, User, Action string }
		_ = json.Unmarshal(f.D, &d)
		events[d.Room] = d.Action
	}
	if events["r"] != "leave" || events["joined"] != "join" {
		t.Fatalf("bob's member events after the gateway reconnected: %v", events)
	}
	alice.call("send", sendD("joined", "j", "to the joined room"))
	if _, ok := bob.next(func(f frame) bool { return isTick(f) && strings.Contains(string(f.D), `"joined"`) }, 5*time.Second); !ok {
		t.Fatal("no tick of the joined room")
	}
	alice.call("send", sendD("r", "3", "after"))
	if f, ok := bob.next(func(f frame) bool {
		return (f.Op == "msgs" || isTick(f)) && strings.Contains(string(f.D), `"room":"r"`)
	}, 500*time.Millisecond); ok {
		t.Fatalf("removed member got %s", f.raw)
	}
	bob.expectError("subscribe", map[string]any{"room": "r"}, "forbidden")
	if n := metric(t, s, `laneim_gateway_membership_repairs_total{action="leave"}`); n < 1 {
		t.Fatalf("%v leaves repaired", n)
	}
}
