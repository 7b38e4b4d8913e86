package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// resync repairs the room sets of local connections when membership events may have
// been lost. Joins and leaves reach the gateway as core NATS events through one
// control channel shared by every user and room: a full channel drops them (nats.go
// reports a slow consumer on the subscription), and so does a NATS reconnect, for
// whatever was published while the gateway was away. A lost leave would leave a
// removed user's connections receiving a private room until they reconnect. So on a
// slow consumer of a user's events subject that user, and on a reconnect every
// connected user, is read again from logic (im.svc.user.rooms), and the connections
// are set to match: rooms the user left are dropped, rooms it joined added, each with
// the member event the connection missed. The relay itself never asks logic.
type resync struct {
	gw   *Gateway      // set once at construction
	wake chan struct{} // capacity 1: work was added

	mu    sync.Mutex
	users map[string]struct{} // guarded by mu: users to read again
	all   bool                // guarded by mu: every connected user
}

// resyncConcurrency bounds a repair's user.rooms reads in flight: after a reconnect
// every connected user is read again, and a logic node serves 64 requests at a time.
const resyncConcurrency = 8

// resyncAttempts bounds how often one user's read is retried at once when its
// membership changed during the read; past it the user waits for the next round.
const resyncAttempts = 3

func newResync(g *Gateway) *resync {
	return &resync{gw: g, wake: make(chan struct{}, 1), users: make(map[string]struct{})}
}

// user schedules a repair of user's connections.
func (s *resync) user(users ...string) {
	s.mu.Lock()
	for _, u := range users {
		s.users[u] = struct{}{}
	}
	s.mu.Unlock()
	s.kick()
}

// everyone schedules a repair of every connection.
func (s *resync) everyone() {
	s.mu.Lock()
	s.all = true
	s.mu.Unlock()
	s.kick()
}

func (s *resync) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the users scheduled so far and clears the schedule.
func (s *resync) take() []string {
	s.mu.Lock()
	all, users := s.all, s.users
	s.all, s.users = false, make(map[string]struct{})
	s.mu.Unlock()
	if all {
		return s.gw.users.names()
	}
	out := make([]string, 0, len(users))
	for u := range users {
		out = append(out, u)
	}
	return out
}

// run repairs what is scheduled until ctx ends; users whose read failed (logic
// unavailable) are tried again after a backoff of 100 ms doubling to 5 s.
func (s *resync) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		failed := s.repair(ctx, s.take())
		if len(failed) == 0 {
			backoff = 100 * time.Millisecond
			continue
		}
		s.gw.hotWarn().Int("users", len(failed)).Msg("membership repair failed; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		s.user(failed...)
	}
}

// repair reads users again, resyncConcurrency at a time, and returns those that failed.
func (s *resync) repair(ctx context.Context, users []string) (failed []string) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		slots = make(chan struct{}, resyncConcurrency)
	)
	for _, user := range users {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if !s.gw.resyncUser(ctx, user) {
				mu.Lock()
				failed = append(failed, user)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// resyncUser sets the rooms of user's connections to logic's list, and reports whether
// it could: a failed read, or a membership that kept changing during the reads, is
// left for later. The list is read with one connection's token, a page at a time, up
// to MaxRoomsPerUser rooms, as identify reads it.
func (g *Gateway) resyncUser(ctx context.Context, user string) bool {
	conns := g.users.conns(user)
	if len(conns) == 0 {
		return true
	}
	token := conns[0].currentToken()
	marks := make([]uint64, len(conns))
	for range resyncAttempts {
		for i, c := range conns {
			marks[i] = c.memberMark()
		}
		rooms, complete, err := g.userRooms(ctx, token)
		if err != nil {
			return false
		}
		current := true
		for i, c := range conns {
			current = c.setRooms(rooms, complete, marks[i]) && current
		}
		if current {
			return true
		}
	}
	return false
}

// userRooms reads the rooms of the token's user from logic, in pages, up to
// MaxRoomsPerUser; complete is false when the cap cut the list short.
func (g *Gateway) userRooms(ctx context.Context, token string) (rooms []schema.UserRoom, complete bool, err error) {
	after := ""
	for {
		limit := min(schema.MaxUserRoomsLimit, g.cfg.MaxRoomsPerUser-len(rooms))
		pageCtx, cancel := context.WithTimeout(withToken(ctx, token), g.cfg.RequestTimeout)
		var reply schema.UserRoomsReply
		err := g.call(pageCtx, subjects.SvcUserRooms, schema.UserRoomsReq{After: after, Limit: limit}, &reply)
		cancel()
		if err != nil {
			return nil, false, err
		}
		rooms = append(rooms, reply.Rooms...)
		if !reply.More || len(reply.Rooms) == 0 {
			return rooms, true, nil
		}
		if len(rooms) >= g.cfg.MaxRoomsPerUser {
			return rooms, false, nil
		}
		after = reply.Rooms[len(reply.Rooms)-1].Room
	}
}

// markReady lets repairs apply to the connection: its rooms are joined and ready has
// gone, so member events may follow.
func (c *conn) markReady() {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	c.ready = true
	c.requeueTicksLocked()
}

// memberMark is a count of the connection's membership changes: a room list asked
// for after it applies only while it is unchanged.
func (c *conn) memberMark() uint64 {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	return c.leaves + c.joins
}

// setRooms makes the connection's rooms those of a list logic answered after mark,
// and sends the connection the member events of what changed, which it missed. A list
// the room cap cut short (not complete) says nothing of rooms after its last id, which
// the connection may have joined since: those are kept. It changes nothing and returns
// false when the membership changed since mark (the list may not reflect that change)
// or identify has not joined the user's rooms yet (the connection has not had ready:
// no event may go before it).
func (c *conn) setRooms(rooms []schema.UserRoom, complete bool, mark uint64) bool {
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	if c.tornDown {
		return true
	}
	if c.leaves+c.joins != mark || !c.ready {
		return false
	}
	listed := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		listed[r.Room] = struct{}{}
	}
	last := ""
	if len(rooms) > 0 {
		last = rooms[len(rooms)-1].Room
	}
	for room := range c.rooms {
		if _, ok := listed[room]; !ok && (complete || room < last) {
			metricMembershipRepairs.WithLabelValues(schema.ActionLeave).Inc()
			c.enqueue(schema.EncodeFrame(schema.OpMember, nil, schema.MemberD{Room: room, User: c.user, Action: schema.ActionLeave}))
			c.leaveLocked(room)
		}
	}
	for room := range listed {
		if _, ok := c.rooms[room]; !ok && schema.ValidID(room) {
			metricMembershipRepairs.WithLabelValues(schema.ActionJoin).Inc()
			c.joinLocked(room)
			c.enqueue(schema.EncodeFrame(schema.OpMember, nil, schema.MemberD{Room: room, User: c.user, Action: schema.ActionJoin}))
		}
	}
	return true
}

// onSlowConsumer handles nats.go's report that subject's channel was full and
// messages were dropped: a user's lost events are repaired from logic; a room's
// member events only inform the other members and are counted. Room frames and ticks
// are repaired by the gap fill and the next tick.
func (g *Gateway) onSlowConsumer(subject string) {
	if user, ok := subjects.ParseUserSubject(subject); ok {
		metricEventsDropped.WithLabelValues("slow_consumer").Inc()
		metricMembershipResyncs.WithLabelValues("slow_consumer").Inc()
		g.resync.user(user)
		return
	}
	if _, kind, ok := subjects.ParseRoomSubject(subject); ok && kind == subjects.KindEvents {
		metricEventsDropped.WithLabelValues("slow_consumer").Inc()
	}
}

// onReconnect repairs every connection: events published while the gateway was away
// from NATS never reached it.
func (g *Gateway) onReconnect() {
	metricMembershipResyncs.WithLabelValues("reconnect").Inc()
	g.log.Info().Msg("NATS reconnected; re-reading the membership of every connected user")
	g.resync.everyone()
	g.presence.online.resyncAll("reconnect")
	g.presence.staleAll()
}
