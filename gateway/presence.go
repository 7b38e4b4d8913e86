package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// presence answers who of a room's members is online, and tells the connections that
// subscribed to a room with presence who came online or went offline in it.
//
// Who is online in the cluster is onlineSet's; who belongs to a room is logic's. A
// room someone asks about, or watches, is tracked here: its member list, read once
// from logic in pages of 1,000 (ten requests for 10,000 members, whatever the online
// count) and kept current by the room's member events, and the number of its members
// online, kept as users flip. A query then costs no NATS round trip: the count is
// kept, and a page walks the members in id order from its cursor until it has enough
// online ones (a page of 100 of a 10,000-member room with half online: 11 µs,
// BenchmarkPresencePage). A flip costs a map lookup per tracked room of the user
// (byUser): 0.3 µs and no allocation for one room watched by 100 connections
// (BenchmarkPresenceFlip). Changes of a watched room are coalesced: one presence frame
// per room per interval names them all, encoded once for every subscriber. The
// tracking itself is presencerooms.go's.
type presence struct {
	gw     *Gateway       // set once at construction
	online *onlineSet     // set once at construction
	ch     chan *nats.Msg // set once: tracked rooms' member events, typing notices
	typing *typing        // owned by run
	// runCtx ends member list reads when the gateway stops. Set by start, before
	// any read.
	runCtx context.Context

	// mu is online.mu: a flip and the rooms it touches change together.
	mu     *sync.Mutex
	rooms  map[string]*presenceRoom   // guarded by mu
	byUser map[string][]*presenceRoom // guarded by mu: the loaded rooms each user is a member of
	// members counts the members of every tracked room, against maxTrackedMembers.
	// Guarded by mu.
	members int
}

// presenceRoom is a tracked room. Guarded by presence.mu.
type presenceRoom struct {
	id      string
	members map[string]struct{} // nil until loaded
	sorted  []string            // members in id order: a page starts with a binary search
	online  int                 // members online, when loaded
	// loading is set while a load runs; member events meanwhile wait in pending.
	loading bool
	pending []schema.MemberD
	// ready is closed when the load running (or the next) ends; loadErr is the
	// last load's failure.
	ready   chan struct{}
	loadErr error
	// stale marks members that may have missed events: reloaded by the sweep.
	stale bool
	// token is a member's token for reads of the member list (the last query's);
	// the subscribers' tokens come first.
	token     string
	subs      map[*conn]struct{} // connections subscribed to the room with presence
	changes   map[string]bool    // since the last event: user -> online now
	used      time.Time          // the last query or unwatch
	eventsSub *nats.Subscription
}

// presenceRoomIdle is how long a room nobody watches stays tracked after its last
// query: a client paging the online list or asking again soon costs no reload.
const presenceRoomIdle = time.Minute

// maxPresenceNames bounds the users one presence frame names; more changes in one
// interval (a gateway dying with thousands of users) go in several frames.
const maxPresenceNames = 1000

func newPresence(g *Gateway) *presence {
	mu := new(sync.Mutex)
	p := &presence{
		gw:     g,
		online: newOnlineSet(g.nc, g.cfg.ID, g.cfg.PresenceHeartbeat, g.cfg.PresenceTimeout, mu, g.log),
		ch:     make(chan *nats.Msg, workerQueue),
		mu:     mu,
		rooms:  make(map[string]*presenceRoom),
		byUser: make(map[string][]*presenceRoom),
		runCtx: context.Background(),
	}
	p.typing = newTyping(g)
	p.online.onFlip = p.onFlipLocked
	return p
}

func (p *presence) start(ctx, runCtx context.Context, wg *sync.WaitGroup) error {
	p.runCtx = runCtx
	if err := p.online.start(ctx, runCtx, wg); err != nil {
		return err
	}
	wg.Go(func() { p.run(runCtx) })
	return nil
}

func (p *presence) run(ctx context.Context) {
	typingTick := time.NewTicker(typingFlush)
	defer typingTick.Stop()
	events := time.NewTicker(p.gw.cfg.PresenceInterval)
	defer events.Stop()
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-p.ch:
			room, kind, ok := subjects.ParseRoomSubject(m.Subject)
			switch {
			case !ok:
			case kind == subjects.KindTyping:
				p.typing.received(room, m.Data)
			case kind == subjects.KindEvents:
				p.memberEvent(room, m.Data)
			}
		case <-typingTick.C:
			p.typing.flush()
		case <-events.C:
			p.flushEvents()
		case now := <-sweep.C:
			p.sweep(now)
		}
	}
}

// onFlipLocked follows a user coming online or going offline into the rooms tracked.
func (p *presence) onFlipLocked(user string, online bool) {
	for _, r := range p.byUser[user] {
		if online {
			r.online++
		} else {
			r.online--
		}
		r.noteChange(user, online)
	}
}

// noteChange records a change for the next event, when someone watches; a user who
// flips back within one interval cancels out.
func (r *presenceRoom) noteChange(user string, online bool) {
	if len(r.subs) == 0 {
		return
	}
	if was, ok := r.changes[user]; ok && was != online {
		delete(r.changes, user)
		return
	}
	if r.changes == nil {
		r.changes = make(map[string]bool)
	}
	r.changes[user] = online
}

// watch makes c, subscribed to room, receive the room's presence events: first one
// with the online count (once the members are known), then the changes. False: it
// will not (presence is full).
func (p *presence) watch(room string, c *conn) bool {
	p.mu.Lock()
	r := p.roomLocked(room, c.currentToken())
	if r == nil {
		// Past maxTrackedMembers with every room watched: no presence events for
		// this subscribe (counted in laneim_gateway_presence_errors_total{kind="full"}).
		p.mu.Unlock()
		return false
	}
	_, already := r.subs[c]
	r.subs[c] = struct{}{}
	var frame []byte
	if !already && r.members != nil {
		frame = r.initialFrame()
	}
	p.mu.Unlock()
	if frame != nil {
		c.enqueue(frame)
		metricPresenceEventsWritten.Inc()
	}
	return true
}

// unwatch ends c's presence events of room.
func (p *presence) unwatch(room string, c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rooms[room]; r != nil {
		if _, ok := r.subs[c]; ok {
			delete(r.subs, c)
			r.used = time.Now()
		}
	}
}

func (r *presenceRoom) initialFrame() []byte {
	return schema.EncodeFrame(schema.OpPresence, nil, schema.PresenceEventD{Room: r.id, Online: r.online})
}

// page answers a page of room's online members, ordered by user id, after after. The
// caller has checked that the user of token is a member.
func (p *presence) page(ctx context.Context, token, room, after string, limit int) (schema.PresencePage, error) {
	p.mu.Lock()
	r := p.roomLocked(room, token)
	if r == nil {
		p.mu.Unlock()
		return schema.PresencePage{}, errPresenceFull
	}
	r.used = time.Now()
	ready := r.ready
	loaded := r.members != nil && !r.stale
	p.mu.Unlock()
	if !loaded {
		select {
		case <-ready:
		case <-ctx.Done():
			return schema.PresencePage{}, schema.Errorf(schema.CodeUnavailable, "the member list of room %s did not come in time", room)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.members == nil {
		if r.loadErr != nil {
			return schema.PresencePage{}, schema.AsError(r.loadErr)
		}
		return schema.PresencePage{}, schema.Errorf(schema.CodeUnavailable, "the member list of room %s could not be read", room)
	}
	// From the first member after after, in id order, until limit online ones and
	// one more: a lookup per member passed, as many as the page needs when most are
	// online, the whole list at worst.
	out := schema.PresencePage{Room: room, Online: r.online, Users: make([]string, 0, min(limit, r.online))}
	start, found := slices.BinarySearch(r.sorted, after)
	if found {
		start++
	}
	for _, user := range r.sorted[start:] {
		if !p.online.isOnlineLocked(user) {
			continue
		}
		if len(out.Users) == limit {
			out.More = true
			break
		}
		out.Users = append(out.Users, user)
	}
	return out, nil
}

// flushEvents sends every watched room's changes since the last flush: one frame (more
// past maxPresenceNames names) per room, the same bytes for each subscriber.
func (p *presence) flushEvents() {
	type delivery struct {
		events []schema.PresenceEventD
		frames [][]byte
		conns  []*conn
	}
	var out []delivery
	p.mu.Lock()
	for _, r := range p.rooms {
		if len(r.changes) == 0 {
			continue
		}
		if len(r.subs) == 0 || r.members == nil {
			clear(r.changes)
			continue
		}
		var on, off []string
		for user, online := range r.changes {
			if online {
				on = append(on, user)
			} else {
				off = append(off, user)
			}
		}
		clear(r.changes)
		slices.Sort(on)
		slices.Sort(off)
		var d delivery
		for len(on)+len(off) > 0 || d.events == nil {
			ev := schema.PresenceEventD{Room: r.id, Online: r.online}
			n := min(len(on), maxPresenceNames)
			ev.On, on = on[:n], on[n:]
			n = min(len(off), maxPresenceNames-n)
			ev.Off, off = off[:n], off[n:]
			d.events = append(d.events, ev)
		}
		d.conns = make([]*conn, 0, len(r.subs))
		for c := range r.subs {
			d.conns = append(d.conns, c)
		}
		out = append(out, d)
	}
	p.mu.Unlock()
	// Encoded out of the lock, which the online set shares.
	for _, d := range out {
		for _, ev := range d.events {
			d.frames = append(d.frames, schema.EncodeFrame(schema.OpPresence, nil, ev))
			metricPresenceEvents.Inc()
		}
		for _, c := range d.conns {
			c.enqueueFrames(d.frames, nil)
		}
		metricPresenceEventsWritten.Add(float64(len(d.conns) * len(d.frames)))
	}
}

// onSlowConsumer repairs what a dropped presence message may have broken; false if
// sub is none of presence's.
func (p *presence) onSlowConsumer(sub *nats.Subscription) bool {
	if p.online.owns(sub) {
		p.online.resyncAll("slow_consumer")
		return true
	}
	room, kind, ok := subjects.ParseRoomSubject(sub.Subject)
	if !ok || kind != subjects.KindEvents {
		return ok && kind == subjects.KindTyping // a lost typing notice is superseded by the next
	}
	p.mu.Lock()
	r := p.rooms[room]
	mine := r != nil && r.eventsSub == sub
	p.mu.Unlock()
	if mine {
		p.staleAll()
	}
	return mine
}
