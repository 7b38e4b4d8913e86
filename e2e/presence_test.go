package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/gateway"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// presencePage asks c for a page of room's online members.
func presencePage(t *testing.T, c *wsClient, d map[string]any) schema.PresencePage {
	t.Helper()
	f := c.mustCall("presence", d, "presence")
	var p schema.PresencePage
	if err := json.Unmarshal(f.D, &p); err != nil {
		t.Fatalf("bad presence page %s: %v", f.raw, err)
	}
	return p
}

// waitPresence asks until room's online members are want (gateways learn of each
// other's users within a fraction of a second).
func waitPresence(t *testing.T, c *wsClient, room string, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := presencePage(t, c, map[string]any{"room": room})
		if p.Online == len(want) && slices.Equal(p.Users, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s online: %d %v, want %v", room, p.Online, p.Users, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// presenceEvent waits for c's next presence event of room.
func presenceEvent(t *testing.T, c *wsClient, room string, timeout time.Duration) (schema.PresenceEventD, time.Time, bool) {
	t.Helper()
	f, ok := c.next(func(f frame) bool { return f.Op == "presence" && len(f.Rid) == 0 }, timeout)
	if !ok {
		return schema.PresenceEventD{}, time.Time{}, false
	}
	var ev schema.PresenceEventD
	if err := json.Unmarshal(f.D, &ev); err != nil || ev.Room != room {
		t.Fatalf("bad presence event %s: %v", f.raw, err)
	}
	return ev, time.Now(), true
}

func httpPresence(t *testing.T, s *devstack.Stack, gateway int, user, query string, want int) schema.PresencePage {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL(gateway)+"/v1/rooms/lobby/presence"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token(t, s, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET presence%s as %s on gateway %d: status %d, want %d", query, user, gateway, resp.StatusCode, want)
	}
	var p schema.PresencePage
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return p
}

// TestPresenceAcrossGateways: the online members of a room, counted and listed over
// WebSocket and HTTP with members connected to two gateways; a user with two
// connections stays online until both close; events name each change, coalesced, seen
// across gateways; non-members are refused.
func TestPresenceAcrossGateways(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "lobby", "alice", false, "bob", "carol", "dave", "u1", "u2", "u3", "u4", "u5")
	room(t, s, "other", "eve", true)

	alice := connectTo(t, s, 0, "alice")
	bob0 := connectTo(t, s, 0, "bob")
	bob1 := connectTo(t, s, 1, "bob")
	alice.mustCall("subscribe", map[string]any{"room": "lobby", "presence": true}, "subscribed")
	// The first event gives the count as the subscribe found it.
	if ev, _, ok := presenceEvent(t, alice, "lobby", 5*time.Second); !ok || ev.Online < 1 || len(ev.On)+len(ev.Off) != 0 {
		t.Fatalf("first presence event %+v, %v", ev, ok)
	}
	waitPresence(t, alice, "lobby", "alice", "bob")

	// carol comes online on gateway 1: alice, on gateway 0, is told.
	carol := connectTo(t, s, 1, "carol")
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, _, ok := presenceEvent(t, alice, "lobby", time.Until(deadline))
		if !ok {
			t.Fatal("no presence event naming carol")
		}
		if slices.Contains(ev.On, "carol") {
			if ev.Online != 3 {
				t.Fatalf("event %+v: want 3 online", ev)
			}
			break
		}
	}

	// HTTP, on either gateway, to a member not connected at all; paged.
	for gw := range 2 {
		p := httpPresence(t, s, gw, "dave", "", http.StatusOK)
		if p.Online != 3 || !slices.Equal(p.Users, []string{"alice", "bob", "carol"}) || p.More {
			t.Fatalf("gateway %d: %+v", gw, p)
		}
	}
	p := httpPresence(t, s, 1, "dave", "?limit=2", http.StatusOK)
	if p.Online != 3 || !slices.Equal(p.Users, []string{"alice", "bob"}) || !p.More {
		t.Fatalf("first page of 2: %+v", p)
	}
	p = httpPresence(t, s, 1, "dave", "?limit=2&after=bob", http.StatusOK)
	if !slices.Equal(p.Users, []string{"carol"}) || p.More {
		t.Fatalf("page after bob: %+v", p)
	}
	page := presencePage(t, bob1, map[string]any{"room": "lobby", "after": "alice", "limit": 1})
	if page.Online != 3 || !slices.Equal(page.Users, []string{"bob"}) || !page.More {
		t.Fatalf("ws page after alice: %+v", page)
	}
	httpPresence(t, s, 0, "dave", "?limit=0", http.StatusBadRequest)
	httpPresence(t, s, 0, "dave", "?limit=1001", http.StatusBadRequest)
	bob1.expectError("presence", map[string]any{"room": "lobby", "after": "not valid!"}, "bad_request")

	// Not members: forbidden, over both transports, a public room included.
	eve := connectTo(t, s, 1, "eve")
	eve.expectError("presence", map[string]any{"room": "lobby"}, "forbidden")
	eve.expectError("presence", map[string]any{"room": "nosuchroom"}, "forbidden")
	httpPresence(t, s, 1, "eve", "", http.StatusForbidden)
	alice.expectError("presence", map[string]any{"room": "other"}, "forbidden")

	// bob closes one of his two connections: still online. Closing the other takes
	// him offline, and alice hears of it.
	_ = bob1.ws.Close()
	time.Sleep(2 * time.Second)
	waitPresence(t, alice, "lobby", "alice", "bob", "carol")
	_ = bob0.ws.Close()
	deadline = time.Now().Add(10 * time.Second)
	for {
		ev, _, ok := presenceEvent(t, alice, "lobby", time.Until(deadline))
		if !ok {
			t.Fatal("no presence event naming bob offline")
		}
		if slices.Contains(ev.On, "bob") {
			t.Fatalf("bob came online again: %+v", ev)
		}
		if slices.Contains(ev.Off, "bob") {
			if ev.Online != 2 {
				t.Fatalf("event %+v: want 2 online", ev)
			}
			break
		}
	}
	waitPresence(t, alice, "lobby", "alice", "carol")

	// Five members come online on gateway 1 at once: alice gets every one of them
	// named, in few frames, at most about one a second.
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		connectTo(t, s, 1, u)
	}
	seen := map[string]bool{}
	var times []time.Time
	deadline = time.Now().Add(10 * time.Second)
	for len(seen) < 5 {
		ev, at, ok := presenceEvent(t, alice, "lobby", time.Until(deadline))
		if !ok {
			t.Fatalf("presence events named %v of u1..u5", seen)
		}
		for _, u := range ev.On {
			seen[u] = true
		}
		times = append(times, at)
		if len(seen) == 5 && ev.Online != 7 {
			t.Fatalf("last event %+v: want 7 online", ev)
		}
	}
	if len(times) > 3 {
		t.Fatalf("%d presence frames for 5 users coming online at once", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 700*time.Millisecond {
			t.Fatalf("presence frames %v apart: want at most about one a second", gap)
		}
	}

	// Unsubscribing ends the events; carol leaving brings alice nothing more.
	alice.mustCall("unsubscribe", map[string]any{"room": "lobby"}, "unsubscribed")
	_ = carol.ws.Close()
	if ev, _, ok := presenceEvent(t, alice, "lobby", 2500*time.Millisecond); ok {
		t.Fatalf("presence event after unsubscribe: %+v", ev)
	}
}

// TestTypingAcrossGateways: a typing op reaches the room's subscribers on both
// gateways as one typing frame, not the typer itself, at most once per 3 s per
// connection and room; a member not subscribed and a non-member are refused.
func TestTypingAcrossGateways(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "lobby", "alice", false, "bob", "carol")
	room(t, s, "other", "eve", true)
	alice := connectTo(t, s, 0, "alice")
	bob := connectTo(t, s, 1, "bob")
	carol := connectTo(t, s, 1, "carol") // a member, passive
	eve := connectTo(t, s, 1, "eve")
	for _, c := range []*wsClient{alice, bob} {
		c.mustCall("subscribe", map[string]any{"room": "lobby"}, "subscribed")
	}
	isTyping := func(f frame) bool { return f.Op == "typing" }
	typingUsers := func(f frame) []string {
		var d schema.TypingEventD
		if err := json.Unmarshal(f.D, &d); err != nil || d.Room != "lobby" {
			t.Fatalf("bad typing event %s", f.raw)
		}
		return d.Users
	}

	bob.mustCall("typing", map[string]any{"room": "lobby"}, "ok")
	f, ok := alice.next(isTyping, 5*time.Second)
	if !ok || !slices.Equal(typingUsers(f), []string{"bob"}) {
		t.Fatalf("alice's typing event: %s", f.raw)
	}
	// Within 3 s, again: answered, not relayed.
	for range 5 {
		bob.mustCall("typing", map[string]any{"room": "lobby"}, "ok")
	}
	if f, ok := alice.next(isTyping, 2*time.Second); ok {
		t.Fatalf("a typing event within 3 s of the last: %s", f.raw)
	}
	// bob never hears of his own typing; carol, passive, hears nothing.
	if f, ok := bob.next(isTyping, 100*time.Millisecond); ok {
		t.Fatalf("bob told of his own typing: %s", f.raw)
	}
	if f, ok := carol.next(isTyping, 100*time.Millisecond); ok {
		t.Fatalf("a passive member got typing: %s", f.raw)
	}
	// Past 3 s it is relayed again; alice's typing reaches bob on the other gateway.
	time.Sleep(1200 * time.Millisecond)
	bob.mustCall("typing", map[string]any{"room": "lobby"}, "ok")
	alice.mustCall("typing", map[string]any{"room": "lobby"}, "ok")
	if f, ok := alice.next(isTyping, 5*time.Second); !ok || !slices.Equal(typingUsers(f), []string{"bob"}) {
		t.Fatalf("alice's second typing event: %s", f.raw)
	}
	if f, ok := bob.next(isTyping, 5*time.Second); !ok || !slices.Equal(typingUsers(f), []string{"alice"}) {
		t.Fatalf("bob's typing event: %s", f.raw)
	}

	carol.expectError("typing", map[string]any{"room": "lobby"}, "forbidden")
	eve.expectError("typing", map[string]any{"room": "lobby"}, "forbidden")
	eve.expectError("typing", map[string]any{"room": "bad id!"}, "bad_request")
	// Typing is not a message: the room's log is untouched.
	h := alice.mustCall("history", map[string]any{"room": "lobby"}, "history").batch(t)
	if msgs, _ := h.Messages(); len(msgs) != 0 {
		t.Fatalf("typing left messages in the log: %+v", msgs)
	}
}

// TestClientPresenceAndTyping: the Go client's presence page, presence and typing
// events, and its resubscribe after a cut asking for presence again.
func TestClientPresenceAndTyping(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	room(t, s, "lobby", "alice", false, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	net := &cuttable{}
	alice, err := client.Dial(ctx, client.Config{
		URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: token(t, s, "alice"),
		Reconnect: true, BackoffMin: 10 * time.Millisecond,
		Dialer: &websocket.Dialer{NetDialContext: net.dial},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if _, err := alice.SubscribeWith(ctx, "lobby", client.SubscribeOptions{Presence: true}); err != nil {
		t.Fatal(err)
	}
	// The first event, the count alone, comes once the gateway has the member list;
	// changes are named after it.
	select {
	case ev := <-alice.Events():
		if ev.Presence == nil || ev.Presence.Online != 1 {
			t.Fatalf("first event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no first presence event")
	}
	bob, err := client.Dial(ctx, client.Config{URL: "ws://" + s.Addrs[1] + "/v1/ws", Token: token(t, s, "bob")})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := bob.Subscribe(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	waitEvent := func(what string, keep func(client.Event) bool) client.Event {
		t.Helper()
		for {
			select {
			case ev := <-alice.Events():
				if keep(ev) {
					return ev
				}
			case <-ctx.Done():
				t.Fatalf("no %s event", what)
			}
		}
	}
	waitEvent("presence naming bob", func(ev client.Event) bool {
		return ev.Presence != nil && slices.Contains(ev.Presence.On, "bob") && ev.Presence.Online == 2
	})
	page, err := alice.Presence(ctx, "lobby", "", 1)
	if err != nil || page.Online != 2 || !slices.Equal(page.Users, []string{"alice"}) || !page.More {
		t.Fatalf("presence page %+v, %v", page, err)
	}
	if err := bob.Typing(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	waitEvent("typing", func(ev client.Event) bool {
		return ev.Typing != nil && slices.Equal(ev.Typing.Users, []string{"bob"})
	})

	// Cut alice off: she reconnects, resubscribes with presence, and hears of bob
	// going offline.
	net.cut()
	waitEvent("ready", func(ev client.Event) bool { return ev.Op == "ready" })
	waitEvent("presence after the reconnect", func(ev client.Event) bool { return ev.Presence != nil })
	_ = bob.Close()
	waitEvent("presence naming bob offline", func(ev client.Event) bool {
		return ev.Presence != nil && slices.Contains(ev.Presence.Off, "bob") && ev.Presence.Online == 1
	})
	if _, err := bob.Presence(ctx, "lobby", "", 0); err == nil {
		t.Fatal("a closed client asked presence")
	}
	var e *schema.Error
	if _, err := alice.Presence(ctx, "nosuch", "", 0); !errors.As(err, &e) || e.Code != schema.CodeForbidden {
		t.Fatalf("presence of a room alice is not in: %v", err)
	}
}

// TestPresenceGatewayDies: a gateway that loses NATS without a word (its process died,
// its link was cut) has its users taken offline by the others within a few seconds.
func TestPresenceGatewayDies(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "lobby", "alice", false, "zed")
	nc, err := s.Connect(subjects.RoleGateway)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	doomed, err := gateway.New(gateway.Config{ID: "doomed", Secret: s.Secret}, nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := doomed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(doomed.Handler())
	defer srv.Close()
	defer doomed.Shutdown(ctx)

	alice := connect(t, s, "alice")
	alice.mustCall("subscribe", map[string]any{"room": "lobby", "presence": true}, "subscribed")
	if _, _, ok := presenceEvent(t, alice, "lobby", 5*time.Second); !ok {
		t.Fatal("no first presence event")
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"op": "identify", "d": map[string]any{"token": token(t, s, "zed")}}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, alice, "lobby", "alice", "zed")

	nc.Close()
	died := time.Now()
	for {
		ev, _, ok := presenceEvent(t, alice, "lobby", 15*time.Second)
		if !ok {
			t.Fatal("zed never went offline")
		}
		if slices.Contains(ev.Off, "zed") {
			break
		}
	}
	if took := time.Since(died); took < 2*time.Second || took > 8*time.Second {
		t.Fatalf("zed went offline %v after his gateway died, want about the 4 s timeout", took)
	}
	waitPresence(t, alice, "lobby", "alice")
}
