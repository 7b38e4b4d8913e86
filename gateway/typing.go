package gateway

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// Typing notices go from the typing connection's gateway to every gateway with a
// connection subscribed to the room, on the room's typing subject (subscribed beside
// its msgs subject, delivered into presence's channel, never a delivery worker's): not
// stored, not sequenced, never on the message path. Each gateway gathers the typers
// of a room for typingFlush and writes the room's subscribed connections one typing
// frame naming them all.

// typingFlush is how long a gateway gathers a room's typers before one frame names
// them: a typing indicator shows within about this much, and a room's subscribers get
// two typing frames a second at most, however many type.
const typingFlush = 500 * time.Millisecond

// maxTypingNames bounds the typers one frame names: in a room where hundreds type at
// once, "several people are typing" is all a client can show, and a frame of hundreds
// of names to 10,000 subscribers twice a second would cost more than the room's
// messages. The others are dropped for that frame.
const maxTypingNames = 10

// typing holds the typers heard since the last flush, by room. Owned by presence.run.
type typing struct {
	gw      *Gateway
	pending map[string][]string
}

func newTyping(g *Gateway) *typing { return &typing{gw: g, pending: make(map[string][]string)} }

func (t *typing) received(room string, data []byte) {
	user, err := decodeTyping(data)
	if err != nil {
		metricPresenceErrors.WithLabelValues("malformed").Inc()
		return
	}
	if users := t.pending[room]; len(users) < maxTypingNames && !slices.Contains(users, user) {
		t.pending[room] = append(users, user)
	}
}

// flush writes each room's typers to its subscribed connections. A connection is not
// told of its own user: those few get a frame of their own; the others share one.
func (t *typing) flush() {
	for room, users := range t.pending {
		delete(t.pending, room)
		r := t.gw.hub.get(room)
		if r == nil {
			continue
		}
		slices.Sort(users)
		shared := schema.EncodeFrame(schema.OpTyping, nil, schema.TypingEventD{Room: room, Users: users})
		var own map[string][]byte // frames without the user itself, by user
		r.mu.Lock()
		for c, rc := range r.conns {
			if !rc.subscribed {
				continue
			}
			frame := shared
			if slices.Contains(users, c.user) {
				var ok bool
				if frame, ok = own[c.user]; !ok {
					others := slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == c.user })
					frame = nil
					if len(others) > 0 {
						frame = schema.EncodeFrame(schema.OpTyping, nil, schema.TypingEventD{Room: room, Users: others})
					}
					if own == nil {
						own = make(map[string][]byte)
					}
					own[c.user] = frame
				}
				if frame == nil {
					continue
				}
			}
			c.enqueue(frame)
			metricTypingEvents.Inc()
		}
		r.mu.Unlock()
	}
}

// typing relays that the user is typing in a room it is subscribed to, at most once
// every TypingInterval per connection and room; more often is answered ok and dropped.
func (c *conn) typing(f schema.Frame) {
	var d schema.RoomD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	subscribed, member := false, false
	if r := c.gw.hub.get(d.Room); r != nil {
		r.mu.Lock()
		if rc := r.conns[c]; rc != nil {
			member, subscribed = true, rc.subscribed
		}
		r.mu.Unlock()
	}
	switch {
	case !member:
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of room %s", d.Room))
		return
	case !subscribed:
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "subscribe to room %s before typing in it", d.Room))
		return
	}
	now := time.Now()
	if last, ok := c.typingAt[d.Room]; ok && now.Sub(last) < c.gw.cfg.TypingInterval {
		metricTyping.WithLabelValues("suppressed").Inc()
		c.reply(schema.OpOK, f.Rid, struct{}{})
		return
	}
	if c.typingAt == nil || len(c.typingAt) >= 64 {
		// Forget what no longer limits anything, so that the map stays small.
		for room, at := range c.typingAt {
			if now.Sub(at) >= c.gw.cfg.TypingInterval {
				delete(c.typingAt, room)
			}
		}
		if c.typingAt == nil {
			c.typingAt = make(map[string]time.Time)
		}
	}
	c.typingAt[d.Room] = now
	data, _ := json.Marshal(typingMsg{User: c.user})
	if err := c.gw.nc.Publish(subjects.RoomTypingT(d.Room), data); err != nil {
		metricPresenceErrors.WithLabelValues("publish").Inc()
		c.replyError(f.Rid, schema.Errorf(schema.CodeUnavailable, "typing could not be relayed, try again"))
		return
	}
	metricTyping.WithLabelValues("relayed").Inc()
	c.reply(schema.OpOK, f.Rid, struct{}{})
}
