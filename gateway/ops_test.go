package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// TestSubscribeFailureIsUnavailable: a subscribe whose NATS subscription cannot be
// made answers unavailable instead of subscribed-and-silent, and leaves the room as
// it was, so that the retry works.
func TestSubscribeFailureIsUnavailable(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	st := newTestStack(t, nil, func(g *Gateway) {
		subscribe := g.hub.subscribe
		g.hub.subscribe = func(subject string, ch chan *nats.Msg) (*nats.Subscription, error) {
			if failing.Load() && subject == subjects.RoomMsgsT("a") {
				return nil, nats.ErrConnectionDraining
			}
			return subscribe(subject, ch)
		}
	})
	st.logic.join("alice", "a")
	st.logic.store("a", 2)
	alice := st.connect(t, "alice")

	errorsBefore := counterValue(t, "laneim_gateway_nats_subscription_errors_total", "op=subscribe")
	f := alice.call("subscribe", map[string]any{"room": "a"})
	if errorCode(f) != schema.CodeUnavailable {
		t.Fatalf("subscribe without a NATS subscription: %s, want unavailable", f.raw)
	}
	if n := counterValue(t, "laneim_gateway_nats_subscription_errors_total", "op=subscribe") - errorsBefore; n != 1 {
		t.Fatalf("%v subscription errors counted, want 1", n)
	}
	// Still passive: ticks, not bodies.
	r := st.g.hub.get("a")
	r.mu.Lock()
	subscribed, tickSub := r.subscribed, r.tickSub
	r.mu.Unlock()
	if subscribed != 0 || tickSub == nil {
		t.Fatalf("after the failure: %d subscribed, tick subscription %v", subscribed, tickSub)
	}

	failing.Store(false)
	if f := alice.call("subscribe", map[string]any{"room": "a"}); f.Op != schema.OpSubscribed {
		t.Fatalf("subscribe again: %s", f.raw)
	}
	publishFrame(t, st.logic.nc, st.logic.store("a", 1))
	alice.collectMsgs(map[string][]int64{"a": {3}}, 5*time.Second)
}
