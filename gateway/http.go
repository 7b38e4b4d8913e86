package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	stdlog "log"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// maxHTTPBody caps an HTTP request body; message bodies are capped separately.
const maxHTTPBody = 1 << 16

// Handler serves docs/protocol.md's WebSocket and HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", g.ServeWS)
	mux.HandleFunc("POST /v1/rooms", g.authed(g.createRoom))
	mux.HandleFunc("GET /v1/rooms/{room}", g.authed(g.getRoom))
	mux.HandleFunc("PUT /v1/rooms/{room}/members/{user}", g.authed(g.addMember))
	mux.HandleFunc("DELETE /v1/rooms/{room}/members/{user}", g.authed(g.removeMember))
	mux.HandleFunc("GET /v1/rooms/{room}/members", g.authed(g.listMembers))
	mux.HandleFunc("GET /v1/rooms/{room}/presence", g.authed(g.getPresence))
	mux.HandleFunc("GET /v1/rooms/{room}/messages", g.authed(g.getMessages))
	mux.HandleFunc("POST /v1/rooms/{room}/messages", g.authed(g.postMessage))
	mux.HandleFunc("PATCH /v1/rooms/{room}/messages/{seq}", g.authed(g.editMessage))
	mux.HandleFunc("DELETE /v1/rooms/{room}/messages/{seq}", g.authed(g.deleteMessage))
	mux.HandleFunc("PATCH /v1/rooms/{room}", g.authed(g.renameRoom))
	mux.HandleFunc("DELETE /v1/rooms/{room}", g.authed(g.deleteRoom))
	mux.HandleFunc("PUT /v1/rooms/{room}/owner", g.authed(g.transferRoom))
	mux.HandleFunc("PUT /v1/rooms/{room}/moderators/{user}", g.authed(g.addModerator))
	mux.HandleFunc("DELETE /v1/rooms/{room}/moderators/{user}", g.authed(g.removeModerator))
	mux.HandleFunc("PUT /v1/rooms/{room}/mutes/{user}", g.authed(g.sanction("mute", false)))
	mux.HandleFunc("DELETE /v1/rooms/{room}/mutes/{user}", g.authed(g.sanction("mute", true)))
	mux.HandleFunc("GET /v1/rooms/{room}/mutes", g.authed(g.listSanctions("mute")))
	mux.HandleFunc("PUT /v1/rooms/{room}/bans/{user}", g.authed(g.sanction("ban", false)))
	mux.HandleFunc("DELETE /v1/rooms/{room}/bans/{user}", g.authed(g.sanction("ban", true)))
	mux.HandleFunc("GET /v1/rooms/{room}/bans", g.authed(g.listSanctions("ban")))
	mux.HandleFunc("PUT /v1/rooms/{room}/read", g.authed(g.putRead))
	mux.HandleFunc("GET /v1/me/rooms", g.authed(g.myRooms))
	mux.HandleFunc("POST /v1/me/rooms/leave", g.authed(g.leaveRooms))
	mux.HandleFunc("POST /v1/users/{user}/kick", g.authed(g.kickUser))
	mux.HandleFunc("GET /v1/me/blocks", g.authed(g.listBlocks))
	mux.HandleFunc("PUT /v1/me/blocks/{user}", g.authed(g.block))
	mux.HandleFunc("DELETE /v1/me/blocks/{user}", g.authed(g.unblock))
	mux.HandleFunc("POST /v1/dev/token", g.devToken)
	mux.HandleFunc("GET /v1/status", g.status)
	mux.HandleFunc("GET /v1/gateways", g.gateways)
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.Handle("GET /metrics", promhttp.Handler())
	if g.cfg.Dev {
		// Profiles of the whole dev process, for `go tool pprof`: dev only, as
		// profiles expose internals.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, schema.Errorf(schema.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	}
	mux.HandleFunc("/", notFound)
	if g.cfg.Dev && g.cfg.Web != nil {
		// The browser demo: its pages and scripts; the API's own paths stay JSON.
		mux.Handle("GET /{$}", g.cfg.Web)
		mux.Handle("GET /web/", g.cfg.Web)
	}
	return mux
}

// NewHTTPServer returns an http.Server for Handler with every timeout set: a request
// (headers and body) must arrive within HTTPReadTimeout, its answer within the longest
// wait of a handler (a send's ack) plus a margin, and an idle keep-alive connection
// is closed after HTTPIdleTimeout.
func (g *Gateway) NewHTTPServer() *http.Server {
	return &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: min(5*time.Second, g.cfg.HTTPReadTimeout),
		ReadTimeout:       g.cfg.HTTPReadTimeout,
		WriteTimeout:      max(g.cfg.SendTimeout, g.cfg.RequestTimeout) + 5*time.Second,
		IdleTimeout:       g.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    g.cfg.MaxHeaderBytes,
		ErrorLog:          httpErrorLog(g.log),
	}
}

// httpErrorLog sends net/http's own messages (accept errors, bad TLS handshakes) to
// the gateway's log instead of the standard logger.
func httpErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(log.With().Str("component", "http").Logger(), "", 0)
}

type authedHandler func(w http.ResponseWriter, r *http.Request, user string) error

// authed checks the bearer token (or API key, see authenticate), then runs h and
// answers its error.
func (g *Gateway) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, token, server, e := g.authenticate(r)
		if e != nil {
			writeError(w, e)
			return
		}
		// Requests to logic forward the token: logic acts only as its subject.
		ctx := withToken(r.Context(), token)
		if server {
			ctx = context.WithValue(ctx, serverKey{}, true)
		}
		r = r.WithContext(ctx)
		if !server && !g.httpRate.allow(user) {
			metricRateLimited.Inc()
			writeError(w, schema.Errorf(schema.CodeRateLimited, "over %g requests a second", g.cfg.RateLimit))
			return
		}
		for _, name := range []string{"room", "user"} {
			if v := r.PathValue(name); v != "" && !schema.ValidID(v) {
				writeError(w, schema.Errorf(schema.CodeBadRequest, "invalid %s id %q: 1 to 64 of A-Z a-z 0-9 _ -", name, v))
				return
			}
		}
		if err := h(w, r, user); err != nil {
			writeError(w, schema.AsError(err))
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *schema.Error) {
	metricErrors.WithLabelValues(e.Code).Inc()
	writeJSON(w, e.HTTPStatus(), map[string]schema.ErrorD{"error": {Code: e.Code, Message: e.Message}})
}

// readBody decodes a JSON request body into v; an empty body leaves v as it is.
func readBody(r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxHTTPBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return schema.Errorf(schema.CodeTooLarge, "request body over %d bytes", maxHTTPBody)
		}
		return schema.Errorf(schema.CodeBadRequest, "read body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return schema.Errorf(schema.CodeBadRequest, "body is not the expected JSON: %v", err)
	}
	return nil
}

// queryInt reads an optional integer query parameter.
func queryInt(r *http.Request, name string) (*int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, schema.Errorf(schema.CodeBadRequest, "%s must be an integer", name)
	}
	return &n, nil
}

// requireMember asks logic whether the request's caller (its token in ctx) may use
// room as a member: forbidden otherwise.
func (g *Gateway) requireMember(ctx context.Context, room string) error {
	var state schema.RoomStateReply
	if err := g.call(ctx, subjects.SvcRoomState, schema.RoomStateReq{Room: room}, &state); err != nil {
		return err
	}
	if !state.Member {
		return schema.Errorf(schema.CodeForbidden, "not a member of room %s", room)
	}
	return nil
}

// userPage reads the query of a page of user ids: after, a user id when given, and
// limit, 1 to max when given (0 when absent: the service's default).
func userPage(r *http.Request, max int) (after string, limit int, err error) {
	after = r.URL.Query().Get("after")
	if after != "" && !schema.ValidID(after) {
		return "", 0, schema.Errorf(schema.CodeBadRequest, "after must be a user id")
	}
	n, err := queryInt(r, "limit")
	if err != nil {
		return "", 0, err
	}
	if n != nil {
		if *n < 1 || *n > int64(max) {
			return "", 0, schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", max)
		}
		limit = int(*n)
	}
	return after, limit, nil
}

func (g *Gateway) createRoom(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Room   string `json:"room"`
		Name   string `json:"name"`
		Public bool   `json:"public"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if body.Room != "" && !schema.ValidID(body.Room) {
		return schema.Errorf(schema.CodeBadRequest, "invalid room id %q: 1 to 64 of A-Z a-z 0-9 _ -", body.Room)
	}
	var reply schema.RoomReply
	req := schema.RoomCreateReq{Room: body.Room, Name: body.Name, Public: body.Public}
	if err := g.call(r.Context(), subjects.SvcRoomCreate, req, &reply); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, reply.Room)
	return nil
}

func (g *Gateway) getRoom(w http.ResponseWriter, r *http.Request, user string) error {
	var reply schema.RoomReply
	if err := g.call(r.Context(), subjects.SvcRoomGet, schema.RoomGetReq{Room: r.PathValue("room")}, &reply); err != nil {
		return err
	}
	if reply.Moderators == nil {
		reply.Moderators = []string{}
	}
	writeJSON(w, http.StatusOK, schema.RoomDetail{RoomInfo: reply.Room, Moderators: reply.Moderators})
	return nil
}

func (g *Gateway) addMember(w http.ResponseWriter, r *http.Request, user string) error {
	return g.member(w, r, user, subjects.SvcMemberAdd)
}

func (g *Gateway) removeMember(w http.ResponseWriter, r *http.Request, user string) error {
	return g.member(w, r, user, subjects.SvcMemberRemove)
}

func (g *Gateway) member(w http.ResponseWriter, r *http.Request, user, subject string) error {
	var reply schema.Reply
	req := schema.MemberReq{Room: r.PathValue("room"), Target: r.PathValue("user")}
	if err := g.call(r.Context(), subject, req, &reply); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) listMembers(w http.ResponseWriter, r *http.Request, user string) error {
	after, limit, err := userPage(r, schema.MaxMemberLimit)
	if err != nil {
		return err
	}
	req := schema.MemberListReq{Room: r.PathValue("room"), After: after, Limit: limit}
	var reply schema.MemberListReply
	if err := g.call(r.Context(), subjects.SvcMemberList, req, &reply); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": reply.Members, "more": reply.More})
	return nil
}

func (g *Gateway) getMessages(w http.ResponseWriter, r *http.Request, user string) error {
	room := r.PathValue("room")
	req := schema.HistoryReq{Room: room}
	var err error
	if req.Before, err = queryInt(r, "before"); err != nil {
		return err
	}
	if req.After, err = queryInt(r, "after"); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	if limit != nil {
		if *limit < 1 || *limit > schema.MaxHistoryLimit {
			return schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", schema.MaxHistoryLimit)
		}
		req.Limit = int(*limit)
	}
	var reply schema.HistoryReply
	if err := g.call(r.Context(), subjects.SvcHistory, req, &reply); err != nil {
		return err
	}
	msgs, more, err := reply.Page()
	if err != nil {
		return schema.Errorf(schema.CodeInternal, "bad history page")
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(schema.AppendBatch(nil, room, msgs, &more))
	return nil
}

func (g *Gateway) postMessage(w http.ResponseWriter, r *http.Request, user string) error {
	d := schema.SendD{Room: r.PathValue("room")}
	if err := readBody(r, &d); err != nil {
		return err
	}
	d.Room = r.PathValue("room")
	if e := checkSend(&d, g.cfg.MaxBodyBytes); e != nil {
		return e
	}
	return g.submitHTTP(w, r, user, d.Room, d.Nonce, "", d.Body)
}

// editMessage: PATCH /v1/rooms/{room}/messages/{seq} {"nonce","body"}, the edit op.
func (g *Gateway) editMessage(w http.ResponseWriter, r *http.Request, user string) error {
	seq, err := pathSeq(r)
	if err != nil {
		return err
	}
	var d schema.SendD
	if err := readBody(r, &d); err != nil {
		return err
	}
	d.Room = r.PathValue("room")
	if e := checkSend(&d, g.cfg.MaxBodyBytes); e != nil {
		return e
	}
	return g.submitHTTP(w, r, user, d.Room, d.Nonce, schema.MarkHeader(schema.KindEdit, seq), d.Body)
}

// deleteMessage: DELETE /v1/rooms/{room}/messages/{seq} {"nonce"}, the delete op.
func (g *Gateway) deleteMessage(w http.ResponseWriter, r *http.Request, user string) error {
	seq, err := pathSeq(r)
	if err != nil {
		return err
	}
	var d struct {
		Nonce string `json:"nonce"`
	}
	if err := readBody(r, &d); err != nil {
		return err
	}
	if !schema.ValidNonce(d.Nonce) {
		return schema.Errorf(schema.CodeBadRequest, "nonce must be 1 to 64 printable ASCII characters")
	}
	return g.submitHTTP(w, r, user, r.PathValue("room"), d.Nonce, schema.MarkHeader(schema.KindDelete, seq), nil)
}

func pathSeq(r *http.Request) (int64, error) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil {
		return 0, schema.Errorf(schema.CodeBadRequest, "seq must be an integer")
	}
	if e := checkTarget(seq); e != nil {
		return 0, e
	}
	return seq, nil
}

// submitHTTP hands a checked send, edit or delete to ingest and answers its ack as
// {"seq","ts"}.
func (g *Gateway) submitHTTP(w http.ResponseWriter, r *http.Request, user, room, nonce, mark string, body json.RawMessage) error {
	// Logic checks membership at ingest too, but a send it refuses burns the nonce for
	// the dedupe window: ask first.
	if err := g.requireMember(r.Context(), room); err != nil {
		return err
	}
	acked := make(chan schema.SendAck, 1)
	token, _ := r.Context().Value(callerKey{}).(string)
	g.sends.submit(room, user, token, nonce, mark, body, func(ack schema.SendAck) { acked <- ack })
	select {
	case ack := <-acked:
		if ack.Err != nil {
			return ack.Err
		}
		writeJSON(w, http.StatusOK, map[string]int64{"seq": ack.Seq, "ts": ack.Ts})
		return nil
	case <-r.Context().Done():
		return schema.Errorf(schema.CodeUnavailable, "request ended before the ack")
	}
}

// renameRoom: PATCH /v1/rooms/{room} {"name"}.
func (g *Gateway) renameRoom(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	var reply schema.RoomReply
	if err := g.call(r.Context(), subjects.SvcRoomRename, schema.RoomRenameReq{Room: r.PathValue("room"), Name: body.Name}, &reply); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reply.Room)
	return nil
}

// transferRoom: PUT /v1/rooms/{room}/owner {"user"}.
func (g *Gateway) transferRoom(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		User string `json:"user"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if !schema.ValidID(body.User) {
		return schema.Errorf(schema.CodeBadRequest, "user must be a user id")
	}
	var reply schema.RoomReply
	if err := g.call(r.Context(), subjects.SvcRoomTransfer, schema.RoomTransferReq{Room: r.PathValue("room"), Owner: body.User}, &reply); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reply.Room)
	return nil
}

// deleteRoom: DELETE /v1/rooms/{room}.
func (g *Gateway) deleteRoom(w http.ResponseWriter, r *http.Request, user string) error {
	var reply schema.Reply
	if err := g.call(r.Context(), subjects.SvcRoomDelete, schema.RoomDeleteReq{Room: r.PathValue("room")}, &reply); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) addModerator(w http.ResponseWriter, r *http.Request, user string) error {
	return g.setModerator(w, r, true)
}

func (g *Gateway) removeModerator(w http.ResponseWriter, r *http.Request, user string) error {
	return g.setModerator(w, r, false)
}

func (g *Gateway) setModerator(w http.ResponseWriter, r *http.Request, moderator bool) error {
	var reply schema.Reply
	req := schema.ModeratorReq{Room: r.PathValue("room"), Target: r.PathValue("user"), Moderator: moderator}
	if err := g.call(r.Context(), subjects.SvcModeratorSet, req, &reply); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) putRead(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Seq *int64 `json:"seq"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if body.Seq == nil {
		return schema.Errorf(schema.CodeBadRequest, "seq is required")
	}
	var reply schema.Reply
	if err := g.call(r.Context(), subjects.SvcReadSet, schema.ReadSetReq{Room: r.PathValue("room"), Seq: *body.Seq}, &reply); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// myRooms answers a page of the user's rooms. Without after and limit it is the first
// page, which is all an old client asks for.
func (g *Gateway) myRooms(w http.ResponseWriter, r *http.Request, user string) error {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	var limitInt *int
	if limit != nil {
		if *limit < 1 || *limit > schema.MaxUserRoomsLimit {
			return schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", schema.MaxUserRoomsLimit)
		}
		n := int(*limit)
		limitInt = &n
	}
	req, e := userRoomsReq(r.URL.Query().Get("after"), limitInt)
	if e != nil {
		return e
	}
	var reply schema.UserRoomsReply
	if err := g.call(r.Context(), subjects.SvcUserRooms, req, &reply); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, roomsPage(reply))
	return nil
}

// leaveRooms takes the user out of up to schema.MaxLeaveRooms rooms at once: a user
// added to thousands of rooms leaves them a page at a time.
func (g *Gateway) leaveRooms(w http.ResponseWriter, r *http.Request, user string) error {
	var body struct {
		Rooms []string `json:"rooms"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	var reply schema.UserLeaveReply
	if err := g.call(r.Context(), subjects.SvcUserLeave, schema.UserLeaveReq{Rooms: body.Rooms}, &reply); err != nil {
		return err
	}
	if reply.Left == nil {
		reply.Left = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"left": reply.Left})
	return nil
}

func (g *Gateway) block(w http.ResponseWriter, r *http.Request, user string) error {
	return g.blockCall(w, r, user, subjects.SvcBlockAdd)
}

func (g *Gateway) unblock(w http.ResponseWriter, r *http.Request, user string) error {
	return g.blockCall(w, r, user, subjects.SvcBlockRemove)
}

func (g *Gateway) blockCall(w http.ResponseWriter, r *http.Request, user, subject string) error {
	var reply schema.Reply
	if err := g.call(r.Context(), subject, schema.BlockReq{Target: r.PathValue("user")}, &reply); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *Gateway) listBlocks(w http.ResponseWriter, r *http.Request, user string) error {
	after, limit, err := userPage(r, schema.MaxBlockLimit)
	if err != nil {
		return err
	}
	req := schema.BlockListReq{After: after, Limit: limit}
	var reply schema.BlockListReply
	if err := g.call(r.Context(), subjects.SvcBlockList, req, &reply); err != nil {
		return err
	}
	if reply.Users == nil {
		reply.Users = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": reply.Users, "more": reply.More})
	return nil
}

func (g *Gateway) devToken(w http.ResponseWriter, r *http.Request) {
	if !g.cfg.Dev {
		writeError(w, schema.Errorf(schema.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
		return
	}
	var body struct {
		User string `json:"user"`
	}
	if err := readBody(r, &body); err != nil {
		writeError(w, schema.AsError(err))
		return
	}
	token, err := auth.Sign(g.cfg.Secret, body.User, g.cfg.DevTokenTTL)
	if err != nil {
		writeError(w, schema.AsError(err))
		return
	}
	// The token's own exp (whole seconds), the instant the session it opens ends.
	claims, err := auth.Parse(g.cfg.Secret, token)
	if err != nil {
		writeError(w, schema.AsError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expires_at": claims.Expires.UnixMilli()})
}

// healthz answers 200 while the gateway can reach NATS and logic answers.
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
	defer cancel()
	if !g.nc.IsConnected() {
		writeError(w, schema.Errorf(schema.CodeUnavailable, "not connected to NATS"))
		return
	}
	// A micro ping of logic's service: answered by any logic node, needing no user.
	if _, err := g.nc.RequestWithContext(ctx, subjects.LogicPing, nil); err != nil {
		writeError(w, schema.Errorf(schema.CodeUnavailable, "logic did not answer: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "gateway": g.cfg.ID, "connections": g.Connections()})
}
