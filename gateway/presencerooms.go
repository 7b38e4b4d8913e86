package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// The rooms presence tracks: their member lists, read from logic and kept current by
// member events, within maxTrackedMembers.

// maxTrackedMembers bounds the member entries the tracked rooms hold (about 100 bytes
// each: some 200 MB), so that a user of many large rooms asking about each cannot make
// a gateway hold them all: past it, the rooms nobody watches go, least recently used
// first, and a new room is refused while the watched ones alone pass it.
var maxTrackedMembers = 2_000_000 // a variable for tests

// errPresenceFull refuses a room to track past maxTrackedMembers.
var errPresenceFull = schema.Errorf(schema.CodeUnavailable, "this gateway tracks the presence of too many rooms, try again later")

// roomLocked returns the tracked room id, tracking it (and starting its load with
// token) if it is not; nil past maxTrackedMembers.
func (p *presence) roomLocked(id, token string) *presenceRoom {
	r := p.rooms[id]
	if r == nil {
		if !p.makeRoomLocked() {
			return nil
		}
		r = &presenceRoom{id: id, ready: make(chan struct{}), subs: make(map[*conn]struct{}), used: time.Now()}
		p.rooms[id] = r
		sub, err := p.gw.nc.ChanSubscribe(subjects.RoomEventsT(id), p.ch)
		if err != nil {
			metricSubscriptionErrors.WithLabelValues("subscribe").Inc()
			r.stale = true // tried again by the sweep
		}
		r.eventsSub = sub
	}
	if token != "" {
		r.token = token
	}
	if r.members == nil || r.stale {
		p.startLoadLocked(r)
	}
	return r
}

// startLoadLocked reads the room's members from logic, unless a read runs.
func (p *presence) startLoadLocked(r *presenceRoom) {
	if r.loading {
		return
	}
	token := r.token
	for c := range r.subs {
		if t := c.currentToken(); t != "" {
			token = t
			break
		}
	}
	if token == "" {
		return
	}
	r.loading = true
	p.gw.wg.Go(func() { p.load(r, token) })
}

// load reads the member list after making sure the room's event subscription is
// live, so that no change falls between the two: events that come meanwhile are
// applied after the list.
func (p *presence) load(r *presenceRoom, token string) {
	ctx, cancel := context.WithTimeout(withToken(p.runCtx, token), 4*p.gw.cfg.RequestTimeout)
	defer cancel()
	err := p.gw.nc.FlushWithContext(ctx)
	var members []string
	if err == nil {
		members, err = p.readMembers(ctx, r.id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r.loading = false
	ready := r.ready
	r.ready = make(chan struct{})
	defer close(ready)
	if err != nil {
		metricPresenceRoomLoads.WithLabelValues("failed").Inc()
		r.loadErr, r.stale = err, true
		return
	}
	metricPresenceRoomLoads.WithLabelValues("ok").Inc()
	first := r.members == nil
	p.setMembersLocked(r, members)
	for _, d := range r.pending {
		p.applyMemberLocked(r, d)
	}
	r.pending, r.stale, r.loadErr = nil, false, nil
	if first && p.rooms[r.id] == r {
		frame := r.initialFrame()
		for c := range r.subs {
			c.enqueue(frame)
			metricPresenceEventsWritten.Inc()
		}
	}
}

// maxMemberPages bounds one member list read: a million members.
const maxMemberPages = 1000

func (p *presence) readMembers(ctx context.Context, room string) ([]string, error) {
	var out []string
	after := ""
	for range maxMemberPages {
		var reply schema.MemberListReply
		if err := p.gw.call(ctx, subjects.SvcMemberList, schema.MemberListReq{Room: room, After: after, Limit: schema.MaxMemberLimit}, &reply); err != nil {
			return nil, err
		}
		out = append(out, reply.Members...)
		if !reply.More || len(reply.Members) == 0 {
			return out, nil
		}
		after = reply.Members[len(reply.Members)-1]
	}
	return out, nil
}

// setMembersLocked replaces the room's members. On a reload, the members who joined
// or left while online are changes like any flip.
func (p *presence) setMembersLocked(r *presenceRoom, list []string) {
	fresh := make(map[string]struct{}, len(list))
	for _, user := range list {
		fresh[user] = struct{}{}
	}
	for user := range r.members {
		if _, ok := fresh[user]; !ok {
			p.removeMemberLocked(r, user)
		}
	}
	initial := r.members == nil
	if initial {
		// The first load sorts once rather than inserting 10,000 times.
		r.members = make(map[string]struct{}, len(fresh))
		r.sorted = make([]string, 0, len(fresh))
		for user := range fresh {
			r.sorted = append(r.sorted, user)
		}
		slices.Sort(r.sorted)
		r.sorted = slices.Clip(r.sorted)
	}
	for user := range fresh {
		if _, ok := r.members[user]; !ok {
			p.addMemberLocked(r, user, !initial)
		}
	}
}

// makeRoomLocked makes place for a room to track: true once the members tracked are
// below maxTrackedMembers, dropping the least recently used rooms nobody watches.
func (p *presence) makeRoomLocked() bool {
	for p.members >= maxTrackedMembers {
		var oldest *presenceRoom
		for _, r := range p.rooms {
			if len(r.subs) == 0 && !r.loading && (oldest == nil || r.used.Before(oldest.used)) {
				oldest = r
			}
		}
		if oldest == nil {
			metricPresenceErrors.WithLabelValues("full").Inc()
			return false
		}
		p.dropLocked(oldest.id, oldest)
	}
	return true
}

func (p *presence) addMemberLocked(r *presenceRoom, user string, announce bool) {
	p.members++
	r.members[user] = struct{}{}
	if i, found := slices.BinarySearch(r.sorted, user); !found {
		r.sorted = slices.Insert(r.sorted, i, user)
	}
	p.byUser[user] = append(p.byUser[user], r)
	if p.online.isOnlineLocked(user) {
		r.online++
		if announce {
			r.noteChange(user, true)
		}
	}
}

func (p *presence) removeMemberLocked(r *presenceRoom, user string) {
	p.members--
	delete(r.members, user)
	if i, found := slices.BinarySearch(r.sorted, user); found {
		r.sorted = slices.Delete(r.sorted, i, i+1)
	}
	rooms := p.byUser[user]
	if i := slices.Index(rooms, r); i >= 0 {
		rooms[i] = rooms[len(rooms)-1]
		rooms[len(rooms)-1] = nil
		rooms = rooms[:len(rooms)-1]
	}
	if len(rooms) == 0 {
		delete(p.byUser, user)
	} else {
		p.byUser[user] = rooms
	}
	if p.online.isOnlineLocked(user) {
		r.online--
		r.noteChange(user, false)
	}
}

// memberEvent applies a member event of a tracked room.
func (p *presence) memberEvent(room string, data []byte) {
	var ev struct {
		Op string         `json:"op"`
		D  schema.MemberD `json:"d"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Op != schema.OpMember || !schema.ValidID(ev.D.User) {
		return // another kind of room event, not presence's
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[room]
	switch {
	case r == nil:
	case r.loading:
		r.pending = append(r.pending, ev.D)
	case r.members != nil:
		p.applyMemberLocked(r, ev.D)
	}
}

func (p *presence) applyMemberLocked(r *presenceRoom, d schema.MemberD) {
	_, member := r.members[d.User]
	switch {
	case d.Action == schema.ActionJoin && !member:
		p.addMemberLocked(r, d.User, true)
	case d.Action == schema.ActionLeave && member:
		p.removeMemberLocked(r, d.User)
	}
}

// sweep forgets the rooms nobody watched or asked about for presenceRoomIdle, and
// reloads the stale ones.
func (p *presence) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, r := range p.rooms {
		switch {
		case len(r.subs) == 0 && !r.loading && now.Sub(r.used) > presenceRoomIdle:
			p.dropLocked(id, r)
		case r.eventsSub == nil:
			// The event subscription failed: make it again, then reload.
			if sub, err := p.gw.nc.ChanSubscribe(subjects.RoomEventsT(id), p.ch); err == nil {
				r.eventsSub, r.stale = sub, true
				p.startLoadLocked(r)
			}
		case r.stale:
			p.startLoadLocked(r)
		}
	}
}

func (p *presence) dropLocked(id string, r *presenceRoom) {
	if r.eventsSub != nil {
		_ = r.eventsSub.Unsubscribe()
	}
	p.members -= len(r.members)
	for user := range r.members {
		rooms := p.byUser[user]
		if i := slices.Index(rooms, r); i >= 0 {
			rooms = slices.Delete(rooms, i, i+1)
		}
		if len(rooms) == 0 {
			delete(p.byUser, user)
		} else {
			p.byUser[user] = rooms
		}
	}
	delete(p.rooms, id)
}

// staleAll marks every tracked room's members for a reload: member events may have
// been lost (a NATS reconnect, a dropped message).
func (p *presence) staleAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rooms {
		r.stale = true
		p.startLoadLocked(r)
	}
}
