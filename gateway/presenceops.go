package gateway

import (
	"net/http"

	"github.com/laneim/laneim/schema"
)

// presence answers a page of a room's online members to a member.
func (c *conn) presence(f schema.Frame) {
	var d schema.PresenceD
	if !c.decode(f, &d, &d.Room) {
		return
	}
	limit, e := presenceLimit(d.After, d.Limit)
	if e != nil {
		c.replyError(f.Rid, e)
		return
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	if !c.isMember(d.Room) {
		if _, err := c.checkMember(ctx, d.Room); err != nil {
			c.replyError(f.Rid, schema.AsError(err))
			return
		}
	}
	page, err := c.gw.presence.page(ctx, c.currentToken(), d.Room, d.After, limit)
	if err != nil {
		c.replyError(f.Rid, schema.AsError(err))
		return
	}
	metricPresenceQueries.WithLabelValues("ws").Inc()
	c.reply(schema.OpPresence, f.Rid, page)
}

// presenceLimit checks a presence page's paging: after a user id, 1 to
// MaxPresenceLimit users (default DefaultPresenceLimit).
func presenceLimit(after string, limit *int) (int, *schema.Error) {
	if after != "" && !schema.ValidID(after) {
		return 0, schema.Errorf(schema.CodeBadRequest, "after must be a user id")
	}
	if limit == nil {
		return schema.DefaultPresenceLimit, nil
	}
	if *limit < 1 || *limit > schema.MaxPresenceLimit {
		return 0, schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", schema.MaxPresenceLimit)
	}
	return *limit, nil
}

// setPresence starts or ends the connection's presence events of room, as its latest
// subscribe asked; rc.presence says whether it gets them, so that a connection that
// never asked costs presence's lock nothing. Callers hold the room's mu with the
// connection subscribed, so that an unsubscribe (which unwatches under the same lock)
// cannot come in between.
func (c *conn) setPresence(rc *roomConn, room string, on bool) {
	switch {
	case on:
		rc.presence = c.gw.presence.watch(room, c)
	case rc.presence:
		rc.presence = false
		c.gw.presence.unwatch(room, c)
	}
}

// getPresence answers GET /v1/rooms/{room}/presence: a page of the room's online
// members, to a member only.
func (g *Gateway) getPresence(w http.ResponseWriter, r *http.Request, user string) error {
	room := r.PathValue("room")
	after, n, err := userPage(r, schema.MaxPresenceLimit)
	if err != nil {
		return err
	}
	if n == 0 {
		n = schema.DefaultPresenceLimit
	}
	if err := g.requireMember(r.Context(), room); err != nil {
		return err
	}
	token, _ := r.Context().Value(callerKey{}).(string)
	page, err := g.presence.page(r.Context(), token, room, after, n)
	if err != nil {
		return err
	}
	metricPresenceQueries.WithLabelValues("http").Inc()
	writeJSON(w, http.StatusOK, page)
	return nil
}
