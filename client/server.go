package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// Server calls laneIM's server API (docs/protocol.md, Server API) for a product's
// backend: the HTTP API with owner rights in every room, acting as any user. Over
// HTTP it authenticates with an API key (NewServerHTTP); over NATS with the server
// role's credential (NewServerNATS): the two answer alike, route for route. Safe for
// concurrent use.
type Server struct {
	// do sends one request acting as user ("" for the server's default, system).
	do func(ctx context.Context, user, method, path string, body, out any) error // set once at construction
}

// DefaultServerUser is the user a server request acts as when it names none.
const DefaultServerUser = "system"

// NewServerHTTP returns a Server calling the gateway at base (http://host:port) with
// apiKey, one of the server's api_keys. hc nil means http.DefaultClient.
func NewServerHTTP(base, apiKey string, hc *http.Client) *Server {
	h := &HTTP{Base: base, Token: apiKey, Client: hc}
	return &Server{do: func(ctx context.Context, user, method, path string, body, out any) error {
		return h.do(ctx, method, path, body, out, func(r *http.Request) {
			if user != "" {
				r.Header.Set("Laneim-User", user)
			}
		})
	}}
}

// ServerInboxPrefix is the reply subject prefix the server role may read: a NATS
// connection for NewServerNATS must be made with
// nats.CustomInboxPrefix(client.ServerInboxPrefix).
var ServerInboxPrefix = subjects.InboxPrefixT(subjects.RoleServer)

// serverNATSTimeout bounds a request over NATS whose context has no deadline: a send
// waits up to 10 s for its ack on the gateway.
const serverNATSTimeout = 15 * time.Second

// NewServerNATS returns a Server calling the server API over nc, connected with the
// server role's credential (user "server") and ServerInboxPrefix. Any gateway
// answers; none answering is unavailable.
func NewServerNATS(nc *nats.Conn) *Server {
	return &Server{do: func(ctx context.Context, user, method, path string, body, out any) error {
		req := schema.ServerRequest{Method: method, Path: path, User: user}
		if body != nil {
			payload, err := encodeJSON(body)
			if err != nil {
				return err
			}
			req.Body = payload
		}
		data, err := json.Marshal(req)
		if err != nil {
			return err
		}
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, serverNATSTimeout)
			defer cancel()
		}
		msg, err := nc.RequestWithContext(ctx, subjects.ServerAPI, data)
		if err != nil {
			return &schema.Error{Code: schema.CodeUnavailable, Message: fmt.Sprintf("%s %s over NATS: %v", method, path, err),
				Status: http.StatusServiceUnavailable}
		}
		var resp schema.ServerResponse
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return fmt.Errorf("client: %s %s: decode the reply: %w", method, path, err)
		}
		if resp.Status < 200 || resp.Status > 299 {
			return httpError(resp.Status, resp.Body)
		}
		if out == nil || len(resp.Body) == 0 || bytes.Equal(resp.Body, []byte("null")) {
			return nil
		}
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
		}
		return nil
	}}
}

// Do sends method path (a route of docs/protocol.md's HTTP API, with its query)
// acting as user ("" for system), with body encoded as JSON, and decodes a 2xx answer
// into out; any other answer is a *schema.Error, as HTTP.Do's.
func (s *Server) Do(ctx context.Context, user, method, path string, body, out any) error {
	return s.do(ctx, user, method, path, body, out)
}

// Posted is a message's place in its room's log.
type Posted struct {
	Seq int64 `json:"seq"`
	Ts  int64 `json:"ts"`
}

// Post sends body (any JSON value) into room as user (a bot, or "" for system), who
// need not be a member; retrying with the same nonce answers the stored message's
// place.
func (s *Server) Post(ctx context.Context, room, user, nonce string, body any) (Posted, error) {
	var out Posted
	err := s.do(ctx, user, http.MethodPost, roomPath(room)+"/messages", map[string]any{"nonce": nonce, "body": body}, &out)
	return out, err
}

// CreateRoom creates room (a random id when "") named name ("" for the id), owned by
// owner ("" for system).
func (s *Server) CreateRoom(ctx context.Context, owner, room, name string, public bool) (schema.RoomInfo, error) {
	var info schema.RoomInfo
	body := map[string]any{"public": public}
	if room != "" {
		body["room"] = room
	}
	if name != "" {
		body["name"] = name
	}
	err := s.do(ctx, owner, http.MethodPost, "/v1/rooms", body, &info)
	return info, err
}

// AddMember adds user to room; its sessions and the members' hear of it.
func (s *Server) AddMember(ctx context.Context, room, user string) error {
	return s.do(ctx, "", http.MethodPut, roomPath(room)+"/members/"+url.PathEscape(user), nil, nil)
}

// RemoveMember removes user from room.
func (s *Server) RemoveMember(ctx context.Context, room, user string) error {
	return s.do(ctx, "", http.MethodDelete, roomPath(room)+"/members/"+url.PathEscape(user), nil, nil)
}

// RenameRoom renames room.
func (s *Server) RenameRoom(ctx context.Context, room, name string) (schema.RoomInfo, error) {
	var info schema.RoomInfo
	err := s.do(ctx, "", http.MethodPatch, roomPath(room), map[string]string{"name": name}, &info)
	return info, err
}

// DeleteRoom deletes room with its history.
func (s *Server) DeleteRoom(ctx context.Context, room string) error {
	return s.do(ctx, "", http.MethodDelete, roomPath(room), nil, nil)
}

// Presence returns a page of room's online members after the user id after ("" from
// the first), at most limit (0 for the server's default).
func (s *Server) Presence(ctx context.Context, room, after string, limit int) (schema.PresencePage, error) {
	query := url.Values{}
	if after != "" {
		query.Set("after", after)
	}
	if limit > 0 {
		query.Set("limit", strconv.Itoa(limit))
	}
	path := roomPath(room) + "/presence"
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var page schema.PresencePage
	err := s.do(ctx, "", http.MethodGet, path, nil, &page)
	return page, err
}

// Kick closes every session of user, on every gateway, with 4003 and reason (at most
// schema.MaxKickReason bytes; "" for the default).
func (s *Server) Kick(ctx context.Context, user, reason string) error {
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	return s.do(ctx, "", http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/kick", body, nil)
}

func roomPath(room string) string { return "/v1/rooms/" + url.PathEscape(room) }
