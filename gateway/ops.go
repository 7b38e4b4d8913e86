package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// requestContext bounds a request to logic made for this connection's user, and
// carries the user's token.
func (c *conn) requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(withToken(context.Background(), c.currentToken()), c.gw.cfg.RequestTimeout)
}

// decode decodes a frame's d into v and, with room set, checks the room id it names.
// On failure it answers the client itself and returns false.
func (c *conn) decode(f schema.Frame, v any, room *string) bool {
	err := schema.DecodeD(f.D, v)
	if err == nil && room != nil {
		if e := badRoom(*room); e != nil {
			err = e
		}
	}
	if err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		return false
	}
	return true
}

func badRoom(room string) *schema.Error {
	if schema.ValidID(room) {
		return nil
	}
	return schema.Errorf(schema.CodeBadRequest, "invalid room id %q: 1 to 64 of A-Z a-z 0-9 _ -", room)
}

// subscribe makes the connection receive the room's msgs: first every message after
// since (or none before the room's current seq), then live ones.
func (c *conn) subscribe(f schema.Frame) {
	var d schema.SubscribeD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	if d.Since != nil && *d.Since < 0 {
		c.replyError(f.Rid, schema.Errorf(schema.CodeBadRequest, "since must not be negative"))
		return
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	state, err := c.checkMember(ctx, d.Room)
	if err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		return
	}
	since := state.Seq
	if d.Since != nil {
		since = *d.Since
	}
	r := c.gw.hub.get(d.Room)
	if r == nil {
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of room %s", d.Room))
		return
	}

	r.mu.Lock()
	rc := r.conns[c]
	if rc == nil {
		// Left between the membership check and now.
		r.mu.Unlock()
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of room %s", d.Room))
		return
	}
	if rc.subscribed && d.Since == nil {
		// Already receiving the room: resetting to the current seq could repeat
		// frames relayed meanwhile.
		c.reply(schema.OpSubscribed, f.Rid, schema.SubscribedD{Room: d.Room, Seq: state.Seq})
		c.setPresence(rc, d.Room, d.Presence)
		r.mu.Unlock()
		return
	}
	if !rc.subscribed {
		if limit := c.gw.cfg.MaxSubscriptionsPerConn; int(c.subscriptions.Load()) >= limit {
			r.mu.Unlock()
			metricLimitRefused.WithLabelValues(limitSubscriptions).Inc()
			c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "subscribed to %d rooms, the most %s allows: unsubscribe from one first",
				limit, limitSubscriptions))
			return
		}
		rc.subscribed = true
		r.removePassive(c, rc)
		r.subscribed++
		c.subscriptions.Add(1)
		// Failures are counted; only the msgs subscription matters here.
		_ = r.updateSubscriptions()
		if r.msgsSub == nil {
			r.setPassive(c, rc)
			r.mu.Unlock()
			c.replyError(f.Rid, schema.Errorf(schema.CodeUnavailable, "could not subscribe to room %s, try again", d.Room))
			return
		}
	}
	rc.generation++
	rc.delivered = since
	// Live frames are held from now on; no history is read before the flush.
	rc.catchingUp, rc.flushPending = true, true
	rc.buffer, rc.bufferBytes, rc.overflowed = nil, 0, false
	r.mu.Unlock()

	// The msgs subscription must be live at the server before history is read, or a
	// message stored after the read but relayed before the subscription would be
	// lost between the two.
	err = c.gw.nc.FlushWithContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.conns[c] != rc:
		// Left during the flush. Nothing else changes rc's generation meanwhile: the
		// connection's frames are handled one at a time.
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of room %s", d.Room))
	case err != nil:
		// The subscription may not be live: better no subscription than a silent one.
		r.setPassive(c, rc)
		c.replyError(f.Rid, schema.Errorf(schema.CodeUnavailable, "could not subscribe to room %s, try again", d.Room))
	default:
		// The reply goes before any frame of the room: none goes to the connection
		// until the catch-up starts, here.
		c.reply(schema.OpSubscribed, f.Rid, schema.SubscribedD{Room: d.Room, Seq: state.Seq})
		rc.flushPending = false
		if rc.catchingUp {
			r.startCatchUp(c, rc)
		}
		c.setPresence(rc, d.Room, d.Presence)
	}
}

// checkMember asks logic whether the user belongs to room (the gateway's own view may
// lag a join by a moment) and registers the membership here. A leave processed while
// logic was answering makes the answer stale, so the question is asked again.
func (c *conn) checkMember(ctx context.Context, room string) (schema.RoomStateReply, error) {
	if c.refusedLately(room) {
		return schema.RoomStateReply{}, schema.Errorf(schema.CodeForbidden, "not a member of room %s", room)
	}
	for range 3 {
		leaves := c.leaveCount()
		var state schema.RoomStateReply
		if err := c.gw.call(ctx, subjects.SvcRoomState, schema.RoomStateReq{Room: room}, &state); err != nil {
			return state, err
		}
		if !state.Member {
			c.refused(room)
			return state, schema.Errorf(schema.CodeForbidden, "not a member of room %s", room)
		}
		if c.joinIfNoLeave(room, leaves) {
			return state, nil
		}
	}
	return schema.RoomStateReply{}, schema.Errorf(schema.CodeUnavailable, "membership is changing, try again")
}

func (c *conn) unsubscribe(f schema.Frame) {
	var d schema.RoomD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	if !c.isMember(d.Room) {
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of room %s", d.Room))
		return
	}
	if r := c.gw.hub.get(d.Room); r != nil {
		r.mu.Lock()
		if rc := r.conns[c]; rc != nil {
			r.setPassive(c, rc)
		}
		r.mu.Unlock()
	}
	c.reply(schema.OpUnsubscribed, f.Rid, schema.RoomD{Room: d.Room})
}

// checkSend validates a send as docs/protocol.md requires, before anything is published.
func checkSend(d *schema.SendD, maxBody int) *schema.Error {
	if e := badRoom(d.Room); e != nil {
		return e
	}
	if !schema.ValidNonce(d.Nonce) {
		return schema.Errorf(schema.CodeBadRequest, "nonce must be 1 to 64 printable ASCII characters")
	}
	if len(d.Body) == 0 {
		return schema.Errorf(schema.CodeBadRequest, "body is required")
	}
	if len(d.Body) > maxBody {
		return schema.Errorf(schema.CodeTooLarge, "body is %d bytes, at most %d", len(d.Body), maxBody)
	}
	if !json.Valid(d.Body) || !utf8.Valid(d.Body) {
		return schema.Errorf(schema.CodeBadRequest, "body is not UTF-8 JSON")
	}
	return nil
}

func (c *conn) send(f schema.Frame) {
	var d schema.SendD
	if !c.decode(f, &d, nil) { // checkSend checks the room
		return
	}
	if e := checkSend(&d, c.gw.cfg.MaxBodyBytes); e != nil {
		c.replyError(f.Rid, e)
		return
	}
	c.submit(f.Rid, d.Room, d.Nonce, "", d.Body)
}

// checkTarget validates the message seq an edit or a delete names. Whether it exists,
// and whose it is, logic's store tells.
func checkTarget(seq int64) *schema.Error {
	if seq < 1 {
		return schema.Errorf(schema.CodeBadRequest, "seq must be a message's seq, 1 or more")
	}
	return nil
}

// editMessage replaces the body of one of the user's messages: an entry of the room's log,
// acked like a send.
func (c *conn) editMessage(f schema.Frame) {
	var d schema.EditD
	if !c.decode(f, &d, nil) {
		return
	}
	send := schema.SendD{Room: d.Room, Nonce: d.Nonce, Body: d.Body}
	if e := checkSend(&send, c.gw.cfg.MaxBodyBytes); e != nil {
		c.replyError(f.Rid, e)
		return
	}
	if e := checkTarget(d.Seq); e != nil {
		c.replyError(f.Rid, e)
		return
	}
	c.submit(f.Rid, d.Room, d.Nonce, schema.MarkHeader(schema.KindEdit, d.Seq), d.Body)
}

// deleteMessage deletes a message: the user's own, or any as the room's owner or moderator.
func (c *conn) deleteMessage(f schema.Frame) {
	var d schema.DeleteD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	if !schema.ValidNonce(d.Nonce) {
		c.replyError(f.Rid, schema.Errorf(schema.CodeBadRequest, "nonce must be 1 to 64 printable ASCII characters"))
		return
	}
	if e := checkTarget(d.Seq); e != nil {
		c.replyError(f.Rid, e)
		return
	}
	c.submit(f.Rid, d.Room, d.Nonce, schema.MarkHeader(schema.KindDelete, d.Seq), nil)
}

// submit hands a checked send, edit or delete to ingest and answers its ack.
func (c *conn) submit(rid json.RawMessage, room, nonce, mark string, body json.RawMessage) {
	if !c.isMember(room) {
		ctx, cancel := c.requestContext()
		_, err := c.checkMember(ctx, room)
		cancel()
		if err != nil {
			c.replyError(rid, schema.AsError(err))
			return
		}
	}
	c.gw.sends.submit(room, c.user, c.currentToken(), nonce, mark, body, func(ack schema.SendAck) {
		if ack.Err != nil {
			c.replyError(rid, ack.Err)
			return
		}
		c.reply(schema.OpAck, rid, schema.AckD{Room: ack.Room, Nonce: ack.Nonce, Seq: ack.Seq, Ts: ack.Ts})
	})
}

func (c *conn) history(f schema.Frame) {
	var d schema.HistoryD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	req := schema.HistoryReq{Room: d.Room, Before: d.Before, After: d.After}
	if d.Limit != nil {
		if *d.Limit < 1 || *d.Limit > schema.MaxHistoryLimit {
			c.replyError(f.Rid, schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", schema.MaxHistoryLimit))
			return
		}
		req.Limit = *d.Limit
	}
	if !c.isMember(d.Room) && c.refusedLately(d.Room) {
		c.replyError(f.Rid, schema.Errorf(schema.CodeForbidden, "not a member of room %s", d.Room))
		return
	}
	if !c.histories.tryAcquire() {
		c.replyError(f.Rid, schema.Errorf(schema.CodeRateLimited, "at most %d history reads at a time, catch-ups included", maxHistoriesInFlight))
		return
	}
	rid := f.Rid
	// History reads run off the read loop so that heartbeats and sends are not held
	// up behind a slow page.
	c.gw.wg.Go(func() {
		defer c.histories.release()
		ctx, cancel := c.requestContext()
		defer cancel()
		var reply schema.HistoryReply
		if err := c.gw.call(ctx, subjects.SvcHistory, req, &reply); err != nil {
			if errors.Is(err, schema.ErrForbidden) {
				c.refused(d.Room)
			}
			c.replyError(rid, schema.AsError(err))
			return
		}
		msgs, more, err := reply.Page()
		if err != nil {
			c.replyError(rid, schema.Errorf(schema.CodeInternal, "bad history page"))
			return
		}
		c.enqueue(schema.AppendHistoryFrame(nil, rid, d.Room, msgs, more))
	})
}

// listRooms answers a page of the user's rooms: what follows ready's first page.
func (c *conn) listRooms(f schema.Frame) {
	var d schema.RoomsD
	if !c.decode(f, &d, nil) {
		return
	}
	req, e := userRoomsReq(d.After, d.Limit)
	if e != nil {
		c.replyError(f.Rid, e)
		return
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	var reply schema.UserRoomsReply
	if err := c.gw.call(ctx, subjects.SvcUserRooms, req, &reply); err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		return
	}
	c.reply(schema.OpRooms, f.Rid, roomsPage(reply))
}

// userRoomsReq checks a client's paging of its room list: after a room id, 1 to
// MaxUserRoomsLimit rooms.
func userRoomsReq(after string, limit *int) (schema.UserRoomsReq, *schema.Error) {
	req := schema.UserRoomsReq{After: after}
	if after != "" && !schema.ValidID(after) {
		return req, schema.Errorf(schema.CodeBadRequest, "after must be a room id")
	}
	if limit != nil {
		if *limit < 1 || *limit > schema.MaxUserRoomsLimit {
			return req, schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", schema.MaxUserRoomsLimit)
		}
		req.Limit = *limit
	}
	return req, nil
}

func roomsPage(reply schema.UserRoomsReply) schema.RoomsPage {
	if reply.Rooms == nil {
		reply.Rooms = []schema.UserRoom{}
	}
	return schema.RoomsPage{Rooms: reply.Rooms, More: reply.More}
}

func (c *conn) read(f schema.Frame) {
	var d schema.ReadD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	var reply schema.Reply
	err := c.gw.call(ctx, subjects.SvcReadSet, schema.ReadSetReq{Session: c.session, Room: d.Room, Seq: d.Seq}, &reply)
	if err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		return
	}
	c.reply(schema.OpOK, f.Rid, struct{}{})
}

// watch replaces the rooms whose ticks the connection gets as soon as they come
// (ticks.go). Rooms it is not passive in are kept but tick nothing; no logic call is
// made, so a watch reveals nothing about rooms.
func (c *conn) watch(f schema.Frame) {
	var d schema.WatchD
	if !c.decode(f, &d, nil) {
		return
	}
	if len(d.Rooms) > schema.MaxWatchedRooms {
		c.replyError(f.Rid, schema.Errorf(schema.CodeBadRequest, "watch names %d rooms, at most %d", len(d.Rooms), schema.MaxWatchedRooms))
		return
	}
	for _, r := range d.Rooms {
		if e := badRoom(r); e != nil {
			c.replyError(f.Rid, e)
			return
		}
	}
	c.setWatched(d.Rooms)
	c.reply(schema.OpOK, f.Rid, struct{}{})
}
