package gateway

import (
	"encoding/json"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// onEvent relays an event of the room to every member connection of the room: a
// member event, and a ban, to all but those of the user concerned, who get it on
// their own subject; any other room event (a rename, a new owner, a moderator, a
// mute) to all.
func (r *room) onEvent(data []byte) {
	var ev struct {
		Op string         `json:"op"`
		D  schema.MemberD `json:"d"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		r.gw.droppedEvent(err, "room event")
		return
	}
	skip := ev.D.User
	if ev.Op == schema.OpRoom && ev.D.Action != schema.RoomBanned {
		skip = ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		if skip == "" || c.user != skip {
			c.enqueue(data)
		}
	}
}

// onUserEvent applies and relays an event for every session of user: its own joins
// and leaves (which change what the connections receive) and read sync. A join or
// leave may come twice, from logic and from CDC reading the same change in the
// binlog: each connection applies and relays it only if it changes its rooms.
func (g *Gateway) onUserEvent(user string, m *nats.Msg) {
	var ev struct {
		Op string          `json:"op"`
		D  json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		g.droppedEvent(err, "user event")
		return
	}
	conns := g.users.conns(user)
	switch ev.Op {
	case schema.OpMember:
		var d schema.MemberD
		if err := json.Unmarshal(ev.D, &d); err != nil || !schema.ValidID(d.Room) {
			g.droppedEvent(err, "member event")
			return
		}
		for _, c := range conns {
			c.applyMember(d, m.Data)
		}
	case schema.OpRoom:
		// A deleted room, announced to each member on its own subject: every session
		// drops the room as on its leave, and gets this event in place of the leave.
		// A ban of the user comes after the leave it caused: relayed as it is.
		var d schema.RoomEventD
		if err := json.Unmarshal(ev.D, &d); err != nil || !schema.ValidID(d.Room) ||
			(d.Action != schema.RoomDeleted && d.Action != schema.RoomBanned) {
			g.droppedEvent(err, "room event")
			return
		}
		if d.Action == schema.RoomBanned {
			for _, c := range conns {
				c.enqueue(m.Data)
			}
			return
		}
		leave := schema.MemberD{Room: d.Room, User: user, Action: schema.ActionLeave}
		for _, c := range conns {
			c.applyMember(leave, m.Data)
		}
	case schema.OpKick:
		// The server API's kick (logic publishes it), or an operator's:
		// nats pub im.user.<user>.events '{"op":"kick","d":{"reason":"..."}}'
		var d schema.KickD
		// A kick without a readable reason still kicks, with the default one.
		_ = json.Unmarshal(ev.D, &d)
		if d.Reason == "" {
			d.Reason = "kicked"
		}
		for _, c := range conns {
			c.close(schema.CloseKicked, d.Reason)
		}
	case schema.OpRead:
		origin := m.Header.Get(subjects.HeaderSession)
		for _, c := range conns {
			if c.session != origin {
				c.enqueue(m.Data)
			}
		}
	}
}

// droppedEvent counts an event that could not be read, and warns (rate-limited).
func (g *Gateway) droppedEvent(err error, what string) {
	metricEventsDropped.WithLabelValues("malformed").Inc()
	g.hotWarn().Err(err).Msg("malformed " + what + " dropped")
}
