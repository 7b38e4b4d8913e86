package logic

import (
	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// publishMember announces a membership change. The user concerned learns it on its
// own subject (its gateways add or drop the room for its connections); every other
// member learns it on the room's events subject. Logic publishes these itself rather
// than through pusher so that a removal is on its way to every gateway, flushed,
// before the HTTP call that made it returns.
func (l *Logic) publishMember(room, user, action string) {
	l.publishMemberUnflushed(room, user, action)
	l.flushEvents()
}

// publishMemberUnflushed is publishMember for many changes at once: flushEvents
// after the last one puts them all on their way with one round trip.
func (l *Logic) publishMemberUnflushed(room, user, action string) {
	frame := schema.EncodeFrame(schema.OpMember, nil, schema.MemberD{Room: room, User: user, Action: action})
	l.publishUserEvent(user, frame)
	if err := l.nc.Publish(subjects.RoomEventsT(room), frame); err != nil {
		l.cfg.Logger.Warn().Err(err).Msg("publish member event")
	}
}

// publishRoom announces a change of a room (a rename, a new owner, a moderator) to
// every member's sessions on the room's events subject, flushed before the reply.
func (l *Logic) publishRoom(d schema.RoomEventD) {
	frame := schema.EncodeFrame(schema.OpRoom, nil, d)
	if err := l.nc.Publish(subjects.RoomEventsT(d.Room), frame); err != nil {
		l.cfg.Logger.Warn().Err(err).Msg("publish room event")
	}
	l.flushEvents()
}

// publishUserEvent publishes an encoded event on user's own subject.
func (l *Logic) publishUserEvent(user string, frame []byte) {
	if err := l.nc.Publish(subjects.UserEventsT(user), frame); err != nil {
		l.cfg.Logger.Warn().Err(err).Msg("publish user event")
	}
}

func (l *Logic) flushEvents() {
	if err := l.nc.Flush(); err != nil {
		l.cfg.Logger.Warn().Err(err).Msg("flush member event")
	}
}

// publishRead tells the user's other sessions that room is read up to seq; the header
// names the session that did it, which its gateway skips.
func (l *Logic) publishRead(user, session, room string, seq int64) {
	msg := nats.NewMsg(subjects.UserEventsT(user))
	msg.Header.Set(subjects.HeaderSession, session)
	msg.Data = schema.EncodeFrame(schema.OpRead, nil, schema.TickD{Room: room, Seq: seq})
	if err := l.nc.PublishMsg(msg); err != nil {
		l.cfg.Logger.Warn().Err(err).Msg("publish read event")
	}
}
