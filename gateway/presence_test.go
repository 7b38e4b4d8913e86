package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/laneim/laneim/schema"
)

// trackedRoom tracks room id with members m0..m<n-1>, loaded, and w watching
// connections without sockets (their frames stay queued), as presence.load leaves it.
func trackedRoom(g *Gateway, id string, n, w int) (*presenceRoom, []*conn) {
	p := g.presence
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("m%d", i)
	}
	watchers := make([]*conn, w)
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &presenceRoom{id: id, ready: make(chan struct{}), subs: make(map[*conn]struct{})}
	p.rooms[id] = r
	p.setMembersLocked(r, members)
	for i := range watchers {
		c := &conn{gw: g, user: fmt.Sprintf("w%d", i), wake: make(chan struct{}, 1), rooms: map[string]struct{}{}, writing: true}
		r.subs[c] = struct{}{}
		watchers[i] = c
	}
	return r, watchers
}

// takeQueued returns and clears the frames queued to c.
func takeQueued(c *conn) [][]byte {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	q := c.queue
	c.queue, c.queuedBytes = nil, 0
	return q
}

func presenceEvents(t *testing.T, c *conn) []schema.PresenceEventD {
	t.Helper()
	var out []schema.PresenceEventD
	for _, f := range takeQueued(c) {
		var ev struct {
			Op string                `json:"op"`
			D  schema.PresenceEventD `json:"d"`
		}
		if err := json.Unmarshal(f, &ev); err != nil || ev.Op != schema.OpPresence {
			t.Fatalf("not a presence event: %s", f)
		}
		out = append(out, ev.D)
	}
	return out
}

// TestPresenceEventsCoalesce: a room's changes between two flushes make one frame,
// the same bytes for every watcher, naming each user once; a user who flips back
// within the interval is not named; membership changes of online users count.
func TestPresenceEventsCoalesce(t *testing.T) {
	g := newTestGateway(t, Config{})
	online := g.presence.online
	r, watchers := trackedRoom(g, "big", 10000, 3)
	for i := range 50 {
		online.localUp(fmt.Sprintf("m%d", i))
	}
	online.localUp("m50")
	online.localDown("m50") // back within the interval: not named
	online.localUp("stranger")
	g.presence.flushEvents()
	var first []byte
	for i, c := range watchers {
		q := takeQueued(c)
		if len(q) != 1 {
			t.Fatalf("watcher %d got %d frames, want 1", i, len(q))
		}
		if i == 0 {
			first = q[0]
		} else if &q[0][0] != &first[0] {
			t.Fatal("watchers got copies of the frame, not the same bytes")
		}
	}
	var ev struct{ D schema.PresenceEventD }
	if err := json.Unmarshal(first, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.D.Online != 50 || len(ev.D.On) != 50 || len(ev.D.Off) != 0 || slices.Contains(ev.D.On, "m50") || !slices.IsSorted(ev.D.On) {
		t.Fatalf("event %+v", ev.D)
	}
	g.presence.flushEvents()
	if evs := presenceEvents(t, watchers[0]); len(evs) != 0 {
		t.Fatalf("a flush without changes sent %+v", evs)
	}

	// m0 goes offline, m1 leaves the room, the stranger joins it: online, so named.
	online.localDown("m0")
	g.presence.memberEvent("big", []byte(`{"op":"member","d":{"room":"big","user":"m1","action":"leave"}}`))
	g.presence.memberEvent("big", []byte(`{"op":"member","d":{"room":"big","user":"stranger","action":"join"}}`))
	g.presence.flushEvents()
	evs := presenceEvents(t, watchers[1])
	if len(evs) != 1 || evs[0].Online != 49 || !slices.Equal(evs[0].Off, []string{"m0", "m1"}) || !slices.Equal(evs[0].On, []string{"stranger"}) {
		t.Fatalf("events %+v", evs)
	}
	if r.online != 49 {
		t.Fatalf("room counts %d online", r.online)
	}
	for _, c := range watchers {
		takeQueued(c)
	}

	// 2,500 changes at once: several frames, each within maxPresenceNames names.
	for i := 100; i < 2600; i++ {
		online.localUp(fmt.Sprintf("m%d", i))
	}
	g.presence.flushEvents()
	evs = presenceEvents(t, watchers[2])
	names := 0
	for _, ev := range evs {
		if len(ev.On)+len(ev.Off) > maxPresenceNames || ev.Online != 49+2500 {
			t.Fatalf("event of %d names, online %d", len(ev.On)+len(ev.Off), ev.Online)
		}
		names += len(ev.On)
	}
	if len(evs) != 3 || names != 2500 {
		t.Fatalf("%d frames naming %d users, want 3 naming 2500", len(evs), names)
	}
}

// TestPresencePage: pages of the online members in id order, counted in all.
func TestPresencePage(t *testing.T) {
	g := newTestGateway(t, Config{})
	trackedRoom(g, "big", 10000, 0)
	for _, u := range []string{"m7", "m3", "m9999", "stranger"} {
		g.presence.online.localUp(u)
	}
	var all []string
	after := ""
	for {
		page, err := g.presence.page(t.Context(), "token", "big", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if page.Online != 3 {
			t.Fatalf("page %+v: want 3 online", page)
		}
		all = append(all, page.Users...)
		if !page.More {
			break
		}
		after = page.Users[len(page.Users)-1]
	}
	if !slices.Equal(all, []string{"m3", "m7", "m9999"}) {
		t.Fatalf("pages listed %v", all)
	}
}

// BenchmarkPresencePage: a page of 100 of a 10,000-member room with 5,000 online, as
// the presence op answers it once the room is tracked: no NATS, a pass in memory.
func BenchmarkPresencePage(b *testing.B) {
	g := newTestGateway(b, Config{})
	trackedRoom(g, "big", 10000, 0)
	for i := 0; i < 10000; i += 2 {
		g.presence.online.localUp(fmt.Sprintf("m%d", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.presence.page(b.Context(), "token", "big", "", 100); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPresenceFlip: a member of a 10,000-member room watched by 100 connections
// coming online and going offline: what each change costs the gateway, whatever the
// room's size.
func BenchmarkPresenceFlip(b *testing.B) {
	g := newTestGateway(b, Config{})
	trackedRoom(g, "big", 10000, 100)
	online := g.presence.online
	b.ReportAllocs()
	for b.Loop() {
		online.localUp("m42")
		online.localDown("m42")
	}
}

// TestPresenceTracksBoundedMembers: past maxTrackedMembers the least recently used
// room nobody watches goes to make place; with every room watched a new one is
// refused.
func TestPresenceTracksBoundedMembers(t *testing.T) {
	defer func(n int) { maxTrackedMembers = n }(maxTrackedMembers)
	maxTrackedMembers = 15000
	g := newTestGateway(t, Config{})
	p := g.presence
	a, _ := trackedRoom(g, "a", 10000, 0)
	b, _ := trackedRoom(g, "b", 6000, 1)
	a.used, b.used = time.Now().Add(-time.Minute), time.Now().Add(-2*time.Minute)
	p.mu.Lock()
	c := p.roomLocked("c", "")
	_, aTracked := p.rooms["a"]
	_, bTracked := p.rooms["b"]
	members := p.members
	p.mu.Unlock()
	if c == nil || aTracked || !bTracked || members != 6000 {
		t.Fatalf("room c %v, a tracked %v, b (watched) tracked %v, %d members", c != nil, aTracked, bTracked, members)
	}
	// b is watched and c is loading: nothing can go.
	maxTrackedMembers = 5000
	p.mu.Lock()
	c.loading = true
	d := p.roomLocked("d", "")
	p.mu.Unlock()
	if d != nil {
		t.Fatal("a room was tracked past the bound with nothing to drop")
	}
	if _, err := p.page(t.Context(), "token", "e", "", 10); err == nil {
		t.Fatal("a page of a room past the bound answered")
	}
}

// TestTypingFrames: a room's typers of one flush make one frame for its subscribed
// connections, naming at most maxTypingNames of them, the typer's own connections
// told of the others only.
func TestTypingFrames(t *testing.T) {
	g := newTestGateway(t, Config{})
	_, conns := subscribedRoom(g, "busy", 3)
	conns[0].user = "u03"
	for i := range 15 {
		g.presence.typing.received("busy", []byte(fmt.Sprintf(`{"user":"u%02d"}`, i)))
	}
	g.presence.typing.received("busy", []byte(`{"user":"not valid!"}`))
	g.presence.typing.flush()
	users := func(c *conn) []string {
		q := takeQueued(c)
		if len(q) != 1 {
			t.Fatalf("%d typing frames, want 1", len(q))
		}
		var ev struct{ D schema.TypingEventD }
		if err := json.Unmarshal(q[0], &ev); err != nil || ev.D.Room != "busy" {
			t.Fatalf("typing frame %s", q[0])
		}
		return ev.D.Users
	}
	if got := users(conns[1]); len(got) != maxTypingNames || !slices.IsSorted(got) || got[0] != "u00" {
		t.Fatalf("typing names %v", got)
	}
	if got := users(conns[0]); len(got) != maxTypingNames-1 || slices.Contains(got, "u03") {
		t.Fatalf("u03's own connection was told %v", got)
	}
	users(conns[2])
	g.presence.typing.flush()
	if q := takeQueued(conns[2]); len(q) != 0 {
		t.Fatalf("a flush without typers wrote %d frames", len(q))
	}
}
