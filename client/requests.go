package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/laneim/laneim/schema"
)

// start sends a request on cn and returns what its reply will arrive on. Whatever
// happens, hook (if set) runs exactly once with the outcome.
func (c *Client) start(ctx context.Context, cn *conn, op string, d []byte, hook func(reply)) (uint64, *pending, error) {
	rid := c.rid.Add(1)
	p := &pending{ch: make(chan reply, 1), hook: hook}
	if err := cn.addPending(rid, p); err != nil {
		if hook != nil {
			hook(reply{err: err})
		}
		return 0, nil, err
	}
	if err := cn.enqueue(ctx, encodeFrame(op, rid, d)); err != nil {
		cn.cancelPending(rid, err)
		return 0, nil, err
	}
	return rid, p, nil
}

// roundTrip sends a request on cn and waits for its reply.
func (c *Client) roundTrip(ctx context.Context, cn *conn, op string, d []byte) (reply, error) {
	rid, p, err := c.start(ctx, cn, op, d, nil)
	if err != nil {
		return reply{}, err
	}
	select {
	case r := <-p.ch:
		return r, r.err
	case <-ctx.Done():
		cn.cancelPending(rid, ctx.Err())
		return reply{}, ctx.Err()
	}
}

// call waits for a connection, sends op and decodes a reply of op want into out
// (which may be nil). An error reply is a *schema.Error.
func (c *Client) call(ctx context.Context, op string, d []byte, want string, out any) error {
	cn, err := c.waitConn(ctx)
	if err != nil {
		return err
	}
	r, err := c.roundTrip(ctx, cn, op, d)
	if err != nil {
		return err
	}
	if r.op != want {
		return unexpectedReply(r, want)
	}
	if out != nil {
		if err := json.Unmarshal(r.d, out); err != nil {
			return &schema.Error{Code: CodeBadFrame, Message: fmt.Sprintf("undecodable %s reply: %v", r.op, err)}
		}
	}
	return nil
}

func unexpectedReply(r reply, want string) error {
	if r.op == schema.OpError {
		return replyError(r.d)
	}
	return &schema.Error{Code: CodeBadFrame, Message: fmt.Sprintf("reply op %q, want %q", r.op, want)}
}

// Request sends any op with a rid and waits for the reply, through a reconnect if one
// is under way. d is encoded as JSON ({} when nil; a json.RawMessage verbatim). It
// returns the reply's op and d; an error reply is returned as a *schema.Error along
// with its op and d. A connection lost before the reply fails it with a *CloseError;
// Request does not retry.
func (c *Client) Request(ctx context.Context, op string, d any) (string, json.RawMessage, error) {
	payload, err := encodeJSON(d)
	if err != nil {
		return "", nil, err
	}
	cn, err := c.waitConn(ctx)
	if err != nil {
		return "", nil, err
	}
	r, err := c.roundTrip(ctx, cn, op, payload)
	if err != nil {
		return "", nil, err
	}
	if r.op == schema.OpError {
		return r.op, r.d, replyError(r.d)
	}
	return r.op, r.d, nil
}

// Subscribe makes the connection receive msgs for room from now on.
func (c *Client) Subscribe(ctx context.Context, room string) (schema.SubscribedD, error) {
	return c.subscribe(ctx, room, nil, false)
}

// SubscribeOptions are the choices of SubscribeWith.
type SubscribeOptions struct {
	// Since, when set, first delivers every message with seq > *Since.
	Since *int64
	// Presence asks for presence events of the room (Event.Presence) while
	// subscribed: first the online count, then who came online or went offline,
	// at most about one event a second. Kept across reconnects.
	Presence bool
}

// SubscribeWith subscribes to room as Subscribe or SubscribeSince do, with presence
// events if opts asks.
func (c *Client) SubscribeWith(ctx context.Context, room string, opts SubscribeOptions) (schema.SubscribedD, error) {
	if opts.Since != nil && *opts.Since < 0 {
		return schema.SubscribedD{}, schema.Errorf(schema.CodeBadRequest, "since %d is negative", *opts.Since)
	}
	return c.subscribe(ctx, room, opts.Since, opts.Presence)
}

// SubscribeSince subscribes to room and first delivers every message with seq > since.
// Either way the client keeps the room's delivery position from then on, resubscribes
// from it after a reconnect, and drops duplicates and reports gaps (see Event).
// A subscribe interrupted by a lost connection is retried on the next one with
// Reconnect. Calls that fail leave the room unsubscribed as far as the client is
// concerned.
func (c *Client) SubscribeSince(ctx context.Context, room string, since int64) (schema.SubscribedD, error) {
	return c.SubscribeWith(ctx, room, SubscribeOptions{Since: &since})
}

func (c *Client) subscribe(ctx context.Context, room string, since *int64, presence bool) (schema.SubscribedD, error) {
	if !schema.ValidID(room) {
		return schema.SubscribedD{}, schema.Errorf(schema.CodeBadRequest, "room %q is not a valid id", room)
	}
	var prev *subAttempt // the attempt a lost connection interrupted
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			c.forgetAttempt(room, prev)
			return schema.SubscribedD{}, err
		}
		c.roomsMu.Lock()
		st := c.rooms[room]
		var a *subAttempt
		var rid uint64 // of the subscribe this call sent, if sent
		mine := false  // a is this call's, not a resubscribe's
		if prev != nil && st != nil && st.attempt != nil && st.attempt != prev && st.attempt.cn == cn {
			// The reconnect already resubscribed the room on this connection, from the
			// position the client keeps: that attempt answers this call too.
			a = st.attempt
			c.roomsMu.Unlock()
		} else {
			if st == nil {
				st = &roomState{}
				c.rooms[room] = st
			}
			if prev == nil { // a retry keeps what was delivered meanwhile
				st.seq = seqState{}
				if since != nil {
					st.seq = seqState{Last: *since, Known: true}
				}
			}
			a, mine = newSubAttempt(cn), true
			st.attempt, st.presence = a, presence
			from := st.seq.since()
			c.roomsMu.Unlock()
			rid = c.startSubscribe(ctx, cn, room, from, presence, a, false)
		}
		select {
		case <-a.done:
		case <-ctx.Done():
			if !mine {
				return schema.SubscribedD{}, ctx.Err()
			}
			if rid != 0 {
				cn.cancelPending(rid, ctx.Err())
			}
			<-a.done // the hook has run, here or on the reader: the reply may have won
			if a.err != nil {
				c.forgetAttempt(room, a)
				return schema.SubscribedD{}, ctx.Err()
			}
		}
		if a.err == nil {
			return a.res, nil
		}
		if isConnLoss(a.err) && c.cfg.Reconnect {
			prev = a
			continue
		}
		c.forgetAttempt(room, a)
		return schema.SubscribedD{}, a.err
	}
}

// forgetAttempt drops room's subscription if a is still its latest attempt.
func (c *Client) forgetAttempt(room string, a *subAttempt) {
	if a == nil {
		return
	}
	c.roomsMu.Lock()
	defer c.roomsMu.Unlock()
	if st := c.rooms[room]; st != nil && st.attempt == a {
		delete(c.rooms, room)
	}
}

// startSubscribe sends a subscribe for attempt a. The reply is applied on the reader
// goroutine before any frame after it is read, so a subscribe without since gets its
// baseline before the first batch is tracked. With report, a refusal (a resubscribe
// after reconnect: nobody waits for it) drops the room and becomes an error event.
func (c *Client) startSubscribe(ctx context.Context, cn *conn, room string, since *int64, presence bool, a *subAttempt, report bool) (rid uint64) {
	d, _ := json.Marshal(schema.SubscribeD{Room: room, Since: since, Presence: presence}) // plain struct: cannot fail
	hook := func(r reply) {
		a.complete(r)
		refused := a.err != nil && r.err == nil // the server said no
		c.roomsMu.Lock()
		if st := c.rooms[room]; st != nil && st.attempt == a {
			switch {
			case a.err == nil && !st.seq.Known:
				st.seq = seqState{Last: a.res.Seq, Known: true}
			case refused && report:
				delete(c.rooms, room)
			}
		}
		c.roomsMu.Unlock()
		close(a.done)
		if refused && report {
			e := schema.AsError(a.err)
			c.emit(Event{Op: schema.OpError, Err: &schema.ErrorD{
				Code: e.Code, Message: fmt.Sprintf("resubscribe %s: %s", room, e.Message)}})
		}
	}
	rid, _, _ = c.start(ctx, cn, schema.OpSubscribe, d, hook) // the hook sees any failure
	return rid
}

// resubscribe restores the application's subscriptions on a new connection, each from
// the last seq delivered. It runs before the connection is published, so no call of
// the application's can interleave a subscribe of its own.
func (c *Client) resubscribe(cn *conn) {
	type sub struct {
		room     string
		since    *int64
		presence bool
		a        *subAttempt
	}
	c.roomsMu.Lock()
	subs := make([]sub, 0, len(c.rooms))
	for room, st := range c.rooms {
		a := newSubAttempt(cn)
		st.attempt = a
		subs = append(subs, sub{room, st.seq.since(), st.presence, a})
	}
	c.roomsMu.Unlock()
	for _, s := range subs {
		c.startSubscribe(c.lifetime, cn, s.room, s.since, s.presence, s.a, true)
	}
	c.roomsMu.Lock()
	watched := c.watched
	c.roomsMu.Unlock()
	if watched != nil {
		// Best effort: should it fail, the rooms still tick, at the usual pace, and
		// the next connection tries again.
		c.wg.Go(func() { _, _ = c.roundTrip(c.lifetime, cn, schema.OpWatch, watched) })
	}
}

// Watch names up to schema.MaxWatchedRooms passive rooms whose ticks the server sends
// at once instead of at the connection's next ticks event (about once a second). It
// replaces the previous set (none: clear it) and is restored after a reconnect.
func (c *Client) Watch(ctx context.Context, rooms ...string) error {
	if len(rooms) > schema.MaxWatchedRooms {
		return schema.Errorf(schema.CodeBadRequest, "%d rooms to watch, at most %d", len(rooms), schema.MaxWatchedRooms)
	}
	for _, r := range rooms {
		if !schema.ValidID(r) {
			return schema.Errorf(schema.CodeBadRequest, "room %q is not a valid id", r)
		}
	}
	payload, err := json.Marshal(schema.WatchD{Rooms: append([]string{}, rooms...)})
	if err != nil {
		return err
	}
	c.roomsMu.Lock()
	c.watched = payload
	if len(rooms) == 0 {
		c.watched = nil
	}
	c.roomsMu.Unlock()
	return c.call(ctx, schema.OpWatch, payload, schema.OpOK, nil)
}

// Unsubscribe makes the connection passive in room again and forgets the room's
// position. Messages already on their way may still arrive, undeduplicated.
func (c *Client) Unsubscribe(ctx context.Context, room string) error {
	if !schema.ValidID(room) {
		return schema.Errorf(schema.CodeBadRequest, "room %q is not a valid id", room)
	}
	cn, err := c.waitConn(ctx)
	if err != nil {
		return err
	}
	c.roomsMu.Lock()
	delete(c.rooms, room)
	c.roomsMu.Unlock()
	d, _ := json.Marshal(schema.RoomD{Room: room})
	r, err := c.roundTrip(ctx, cn, schema.OpUnsubscribe, d)
	if err != nil {
		if isConnLoss(err) && c.cfg.Reconnect {
			return nil // the next connection starts passive in every room
		}
		return err
	}
	if r.op != schema.OpUnsubscribed {
		return unexpectedReply(r, schema.OpUnsubscribed)
	}
	return nil
}

// Send sends body to room with a fresh random nonce; see SendNonce.
func (c *Client) Send(ctx context.Context, room string, body any) (schema.AckD, error) {
	return c.SendNonce(ctx, room, NewNonce(), body)
}

// SendNonce sends body to room with nonce and waits for the ack. body is encoded as
// JSON; a json.RawMessage is sent byte for byte. When no ack comes within
// SendTimeout, or the connection drops (with Reconnect), it sends again with the same
// nonce, which the server stores once: it returns when the ack comes, the server
// refuses (a *schema.Error), or ctx ends.
func (c *Client) SendNonce(ctx context.Context, room, nonce string, body any) (schema.AckD, error) {
	if !schema.ValidID(room) {
		return schema.AckD{}, schema.Errorf(schema.CodeBadRequest, "room %q is not a valid id", room)
	}
	if !schema.ValidNonce(nonce) {
		return schema.AckD{}, schema.Errorf(schema.CodeBadRequest, "nonce %q is not 1 to 64 printable ASCII characters", nonce)
	}
	encoded, err := encodeJSON(body)
	if err != nil {
		return schema.AckD{}, err
	}
	if body == nil {
		encoded = []byte("null")
	}
	d := make([]byte, 0, len(room)+len(nonce)+len(encoded)+32)
	d = append(d, `{"room":`...)
	d = appendString(d, room)
	d = append(d, `,"nonce":`...)
	d = appendString(d, nonce)
	d = append(d, `,"body":`...)
	d = append(d, encoded...)
	d = append(d, '}')
	return c.submit(ctx, schema.OpSend, d)
}

// Edit replaces the body of the user's message seq in room with a fresh nonce; see
// EditNonce.
func (c *Client) Edit(ctx context.Context, room string, seq int64, body any) (schema.AckD, error) {
	return c.EditNonce(ctx, room, NewNonce(), seq, body)
}

// EditNonce replaces the body of the user's message seq in room (the edit op) and
// waits for the ack, whose seq is the edit's own entry in the room's log. It retries
// as SendNonce does; a retry with the nonce is stored once. The server refuses an
// edit of another user's message (forbidden), of a seq that is no message
// (not_found: none, or deleted; bad_request: an edit or a delete).
func (c *Client) EditNonce(ctx context.Context, room, nonce string, seq int64, body any) (schema.AckD, error) {
	if err := checkMarked(room, nonce, seq); err != nil {
		return schema.AckD{}, err
	}
	encoded, err := encodeJSON(body)
	if err != nil {
		return schema.AckD{}, err
	}
	if body == nil {
		encoded = []byte("null")
	}
	d, err := json.Marshal(schema.EditD{Room: room, Nonce: nonce, Seq: seq, Body: encoded})
	if err != nil {
		return schema.AckD{}, err
	}
	return c.submit(ctx, schema.OpEdit, d)
}

// Delete deletes message seq of room with a fresh nonce; see DeleteNonce.
func (c *Client) Delete(ctx context.Context, room string, seq int64) (schema.AckD, error) {
	return c.DeleteNonce(ctx, room, NewNonce(), seq)
}

// DeleteNonce deletes message seq of room (the delete op: the user's own message, or
// any as the room's owner or moderator) and waits for the ack, whose seq is the
// delete's own entry in the room's log. It retries as SendNonce does.
func (c *Client) DeleteNonce(ctx context.Context, room, nonce string, seq int64) (schema.AckD, error) {
	if err := checkMarked(room, nonce, seq); err != nil {
		return schema.AckD{}, err
	}
	d, err := json.Marshal(schema.DeleteD{Room: room, Nonce: nonce, Seq: seq})
	if err != nil {
		return schema.AckD{}, err
	}
	return c.submit(ctx, schema.OpDelete, d)
}

func checkMarked(room, nonce string, seq int64) error {
	switch {
	case !schema.ValidID(room):
		return schema.Errorf(schema.CodeBadRequest, "room %q is not a valid id", room)
	case !schema.ValidNonce(nonce):
		return schema.Errorf(schema.CodeBadRequest, "nonce %q is not 1 to 64 printable ASCII characters", nonce)
	case seq < 1:
		return schema.Errorf(schema.CodeBadRequest, "seq %d is no message's", seq)
	}
	return nil
}

// submit sends a send, edit or delete frame's d until it is acked, refused, or ctx
// ends: again with the same d (and so the same nonce) after SendTimeout or a lost
// connection.
func (c *Client) submit(ctx context.Context, op string, d []byte) (schema.AckD, error) {
	for {
		cn, err := c.waitConn(ctx)
		if err != nil {
			return schema.AckD{}, err
		}
		attempt, cancel := context.WithTimeout(ctx, c.cfg.SendTimeout)
		r, err := c.roundTrip(attempt, cn, op, d)
		cancel()
		if err == nil {
			if r.op != schema.OpAck {
				return schema.AckD{}, unexpectedReply(r, schema.OpAck)
			}
			var ack schema.AckD
			if err := json.Unmarshal(r.d, &ack); err != nil {
				return schema.AckD{}, &schema.Error{Code: CodeBadFrame, Message: "undecodable ack: " + err.Error()}
			}
			return ack, nil
		}
		switch {
		case ctx.Err() != nil:
			return schema.AckD{}, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded): // this attempt's timeout
		case isConnLoss(err) && c.cfg.Reconnect:
		default:
			return schema.AckD{}, err
		}
	}
}

// History fetches a page of a room's messages (the history op).
func (c *Client) History(ctx context.Context, d schema.HistoryD) (schema.Batch, error) {
	payload, err := json.Marshal(d)
	if err != nil {
		return schema.Batch{}, err
	}
	var b schema.Batch
	err = c.call(ctx, schema.OpHistory, payload, schema.OpHistory, &b)
	return b, err
}

// Rooms asks for a page of the user's rooms after the room id after (from the first
// when empty), limit of them at most (0: the server's default, 500). Ready holds the
// first page; when Ready().More, the rest follow from Rooms(ctx, the last room of
// Ready, 0), and so on while the page says More. A page may hold fewer rooms than
// limit and still have more.
func (c *Client) Rooms(ctx context.Context, after string, limit int) (schema.RoomsPage, error) {
	d := schema.RoomsD{After: after}
	if limit != 0 {
		d.Limit = &limit
	}
	payload, err := json.Marshal(d)
	if err != nil {
		return schema.RoomsPage{}, err
	}
	var page schema.RoomsPage
	err = c.call(ctx, schema.OpRooms, payload, schema.OpRooms, &page)
	return page, err
}

// Presence asks a page of room's online members (a member only): how many are online
// in all, and up to limit of them (0: the server's default, 100; at most 1000) after
// the user id after, ordered by id. Page on More.
func (c *Client) Presence(ctx context.Context, room, after string, limit int) (schema.PresencePage, error) {
	d := schema.PresenceD{Room: room, After: after}
	if limit != 0 {
		d.Limit = &limit
	}
	payload, err := json.Marshal(d)
	if err != nil {
		return schema.PresencePage{}, err
	}
	var page schema.PresencePage
	err = c.call(ctx, schema.OpPresence, payload, schema.OpPresence, &page)
	return page, err
}

// Typing tells the room's other subscribers that the user is typing; the room must be
// subscribed. Call it on keystrokes: the server relays it at most every 3 s per
// connection and room, and answers the others without relaying them.
func (c *Client) Typing(ctx context.Context, room string) error {
	payload, err := json.Marshal(schema.RoomD{Room: room})
	if err != nil {
		return err
	}
	return c.call(ctx, schema.OpTyping, payload, schema.OpOK, nil)
}

// Read marks room read up to seq.
func (c *Client) Read(ctx context.Context, room string, seq int64) error {
	payload, err := json.Marshal(schema.ReadD{Room: room, Seq: seq})
	if err != nil {
		return err
	}
	return c.call(ctx, schema.OpRead, payload, schema.OpOK, nil)
}

// Refresh replaces the session's token with token, a newer one of the same user, so
// that the server does not close the session (4001) when the old one expires. Later
// reconnects identify with Config.Token or TokenFunc as before: keep them current too.
func (c *Client) Refresh(ctx context.Context, token string) (schema.RefreshedD, error) {
	var out schema.RefreshedD
	payload, err := json.Marshal(schema.IdentifyD{Token: token})
	if err != nil {
		return out, err
	}
	err = c.call(ctx, schema.OpRefresh, payload, schema.OpOK, &out)
	return out, err
}

// NewNonce returns a random nonce: 16 bytes of crypto/rand, base64url (22 characters).
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// encodeJSON encodes v as JSON without HTML escaping (bodies are relayed byte for
// byte, so "<" stays "<"): {} for nil, a json.RawMessage as it is once checked.
func encodeJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, schema.Errorf(schema.CodeBadRequest, "raw JSON is not valid")
		}
		return v, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, schema.Errorf(schema.CodeBadRequest, "encode: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
