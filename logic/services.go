package logic

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go/micro"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// serviceVersion is the version `nats micro ls` shows.
const serviceVersion = "0.1.0"

// startServices registers logic's request/reply endpoints as one micro service. Every
// endpoint subscribes in the queue group laneim-logic, so each request goes to one of
// the logic nodes and the load spreads over all of them.
func (l *Logic) startServices() error {
	svc, err := micro.AddService(l.nc, micro.Config{
		Name:        subjects.LogicService,
		Version:     serviceVersion,
		Description: "laneIM logic: history, rooms, members, read state",
		QueueGroup:  subjects.LogicQueue,
	})
	if err != nil {
		return err
	}
	endpoints := []struct {
		name    string
		subject string
		handle  handler
	}{
		{"history", subjects.SvcHistory, l.history},
		{"room-state", subjects.SvcRoomState, l.roomState},
		{"room-create", subjects.SvcRoomCreate, l.roomCreate},
		{"room-get", subjects.SvcRoomGet, l.roomGet},
		{"member-add", subjects.SvcMemberAdd, l.memberAdd},
		{"member-remove", subjects.SvcMemberRemove, l.memberRemove},
		{"member-list", subjects.SvcMemberList, l.memberList},
		{"read-set", subjects.SvcReadSet, l.readSet},
		{"user-rooms", subjects.SvcUserRooms, l.userRooms},
		{"nonce-lookup", subjects.SvcNonceLookup, l.nonceLookup},
		{"user-leave", subjects.SvcUserLeave, l.userLeave},
		{"block-add", subjects.SvcBlockAdd, l.blockAdd},
		{"block-remove", subjects.SvcBlockRemove, l.blockRemove},
		{"block-list", subjects.SvcBlockList, l.blockList},
		{"room-rename", subjects.SvcRoomRename, l.roomRename},
		{"room-transfer", subjects.SvcRoomTransfer, l.roomTransfer},
		{"room-delete", subjects.SvcRoomDelete, l.roomDelete},
		{"moderator-set", subjects.SvcModeratorSet, l.moderatorSet},
		{"sanction-set", subjects.SvcSanctionSet, l.sanctionSet},
		{"sanction-list", subjects.SvcSanctionList, l.sanctionList},
		{"user-kick", subjects.SvcUserKick, l.userKick},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, l.serve(e.name, e.handle), micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return err
		}
	}
	// The offline hook's membership check, for the notifier (pusher's credential).
	if err := svc.AddEndpoint("members-check", l.serveRole("members-check", l.membersCheck), micro.WithEndpointSubject(subjects.MembersCheck)); err != nil {
		_ = svc.Stop()
		return err
	}
	l.svc = svc
	return nil
}

// handler serves one endpoint's request for caller, the user whose token came with it.
type handler func(ctx context.Context, caller string, data []byte) (any, error)

// serve adapts a handler to micro. micro calls an endpoint's handler on one goroutine
// per endpoint, so each request runs on its own goroutine, bounded by ServiceWorkers:
// one slow history read must not hold up every other request.
func (l *Logic) serve(name string, handle handler) micro.Handler {
	return l.serveEndpoint(name, handle, true)
}

// serveRole is serve for an endpoint that roles call rather than users (outside
// im.svc.>, where NATS permissions say who may call it): no token, and caller "".
func (l *Logic) serveRole(name string, handle handler) micro.Handler {
	return l.serveEndpoint(name, handle, false)
}

func (l *Logic) serveEndpoint(name string, handle handler, userToken bool) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		sem := l.serviceSem
		if name == "history" {
			sem = l.historySem
		}
		sem <- struct{}{}
		l.wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.StoreTimeout)
			defer cancel()
			var out any
			var err error
			caller := ""
			if userToken {
				var claims auth.Claims
				claims, err = l.tokens.Verify(req.Headers().Get(subjects.HeaderToken))
				caller = claims.User
				if claims.Server {
					ctx = withServer(ctx)
				}
			}
			if err == nil {
				out, err = handle(ctx, caller, req.Data())
			}
			if err != nil {
				e := schema.AsError(err)
				if e.Code == schema.CodeInternal {
					l.cfg.Logger.Error().Err(err).Str("endpoint", name).Msg("service request failed")
				}
				metricServiceErrors.WithLabelValues(name, e.Code).Inc()
				out = schema.Reply{Err: e}
			}
			if err := req.Respond(l.encodeReply(name, out)); err != nil {
				l.cfg.Logger.Warn().Err(err).Str("endpoint", name).Msg("respond")
			}
		})
	})
}

// rawReply is a reply already encoded as JSON.
type rawReply []byte

func decode(data []byte, v any) error {
	if len(data) == 0 {
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return schema.Errorf(schema.CodeBadRequest, "bad request: %v", err)
	}
	return nil
}

// pageLimit checks a page request: after, when given, is an id, and limit is 1 to max
// (0 means def). It returns the limit to use.
func pageLimit(after string, limit, def, max int) (int, error) {
	if after != "" {
		if err := checkIDs(after); err != nil {
			return 0, err
		}
	}
	switch {
	case limit == 0:
		return def, nil
	case limit < 0 || limit > max:
		return 0, schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", max)
	}
	return limit, nil
}

func checkIDs(ids ...string) error {
	for _, id := range ids {
		if !schema.ValidID(id) {
			return schema.Errorf(schema.CodeBadRequest, "invalid id %q: 1 to 64 of A-Z a-z 0-9 _ -", id)
		}
	}
	return nil
}

// requireMember fails with forbidden unless user belongs to room; a server request
// needs only that the room exists.
func (l *Logic) requireMember(ctx context.Context, room, user string) error {
	if isServer(ctx) {
		_, err := l.serverRoom(ctx, room)
		return err
	}
	ok, err := l.meta.IsMember(ctx, room, user)
	if err != nil {
		return err
	}
	if !ok {
		return noAccess(room)
	}
	return nil
}

// viewRoom returns room id if user may see it: members, or anyone for a public room
// (docs/protocol.md). A room that does not exist and one the user may not see fail
// alike, with forbidden and the same message, so that no answer tells a private
// room's id from a free one. A server request sees every room.
func (l *Logic) viewRoom(ctx context.Context, id, user string) (store.Room, error) {
	if isServer(ctx) {
		return l.serverRoom(ctx, id)
	}
	room, err := l.meta.GetRoom(ctx, id)
	if errors.Is(err, schema.ErrNotFound) {
		return store.Room{}, noAccess(id)
	}
	if err != nil || room.Public || room.Owner == user {
		return room, err
	}
	member, err := l.meta.IsMember(ctx, id, user)
	if err != nil {
		return store.Room{}, err
	}
	if !member {
		return store.Room{}, noAccess(id)
	}
	return room, nil
}

// noAccess is the one answer for a room that does not exist or is not visible.
func noAccess(room string) error {
	return schema.Errorf(schema.CodeForbidden, "not a member of room %s", room)
}

func (l *Logic) history(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.HistoryReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	if err := l.requireMember(ctx, req.Room, caller); err != nil {
		return nil, err
	}
	q, err := historyQuery(req)
	if err != nil {
		return nil, err
	}
	msgs, more, err := l.msgs.Range(ctx, req.Room, q)
	if err != nil {
		return nil, err
	}
	msgs, more = fitPage(msgs, more, q.Ascending)
	return rawReply(schema.AppendBatch(nil, req.Room, msgs, &more)), nil
}

// maxPageBytes bounds a history page's entries, far inside NATS's 1 MiB payload: 200
// messages of large bodies would not fit in one reply.
const maxPageBytes = 512 << 10

// fitPage trims a page to maxPageBytes (never below one message), keeping the end
// the page grows from: the oldest of an ascending page, the newest of one below
// before. A trimmed page says more.
func fitPage(msgs []schema.Message, more, ascending bool) ([]schema.Message, bool) {
	size := 0
	for i := range msgs {
		j := i
		if !ascending {
			j = len(msgs) - 1 - i
		}
		size += schema.EntrySize(msgs[j])
		if i > 0 && size > maxPageBytes {
			if ascending {
				return msgs[:i], true
			}
			return msgs[j+1:], true
		}
	}
	return msgs, more
}

// historyQuery maps docs/protocol.md's history parameters onto a store query: with after,
// a page ascending from it; otherwise the newest page below before.
func historyQuery(req schema.HistoryReq) (store.Query, error) {
	q := store.Query{Limit: req.Limit}
	switch {
	case q.Limit == 0:
		q.Limit = schema.DefaultHistoryLimit
	case q.Limit < 0 || q.Limit > schema.MaxHistoryLimit:
		return q, schema.Errorf(schema.CodeBadRequest, "limit must be 1 to %d", schema.MaxHistoryLimit)
	}
	if req.After != nil {
		if *req.After < 0 {
			return q, schema.Errorf(schema.CodeBadRequest, "after must not be negative")
		}
		q.After, q.Ascending = *req.After, true
	}
	if req.Before != nil {
		if *req.Before < 1 {
			return q, schema.Errorf(schema.CodeBadRequest, "before must be positive")
		}
		q.Before = *req.Before
	}
	return q, nil
}

func (l *Logic) roomState(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.RoomStateReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	var member bool
	var err error
	if isServer(ctx) {
		// A server may do in the room what a member may, if the room exists.
		_, err = l.serverRoom(ctx, req.Room)
		member = err == nil
	} else {
		member, err = l.meta.IsMember(ctx, req.Room, caller)
	}
	if err != nil || !member {
		return schema.RoomStateReply{}, err
	}
	seq, err := l.msgs.LastSeq(ctx, req.Room)
	if err != nil {
		return nil, err
	}
	return schema.RoomStateReply{Member: true, Seq: seq}, nil
}

func (l *Logic) roomCreate(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.RoomCreateReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Room == "" {
		req.Room = newRoomID()
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	if len(req.Name) > schema.MaxRoomNameBytes {
		return nil, schema.Errorf(schema.CodeBadRequest, "name is longer than %d bytes", schema.MaxRoomNameBytes)
	}
	if req.Name == "" {
		req.Name = req.Room
	}
	room := store.Room{ID: req.Room, Name: req.Name, Owner: caller, Public: req.Public}
	if err := l.startLog(ctx, req.Room); err != nil {
		return nil, err
	}
	if err := l.meta.CreateRoom(ctx, room, l.caps); err != nil {
		return nil, refusal(err)
	}
	l.publishMember(room.ID, caller, schema.ActionJoin)
	return schema.RoomReply{Room: roomInfo(room)}, nil
}

func (l *Logic) roomGet(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.RoomGetReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	room, err := l.viewRoom(ctx, req.Room, caller)
	if err != nil {
		return nil, err
	}
	seq, err := l.msgs.LastSeq(ctx, req.Room)
	if err != nil {
		return nil, err
	}
	count, err := l.meta.CountMembers(ctx, req.Room)
	if err != nil {
		return nil, err
	}
	moderators, err := l.meta.ListModerators(ctx, req.Room, schema.MaxModerators)
	if err != nil {
		return nil, err
	}
	info := roomInfo(room)
	info.Seq, info.Members = &seq, &count
	if moderators == nil {
		moderators = []string{}
	}
	return schema.RoomReply{Room: info, Moderators: moderators}, nil
}

func roomInfo(r store.Room) schema.RoomInfo {
	return schema.RoomInfo{Room: r.ID, Name: r.Name, Owner: r.Owner, Public: r.Public}
}

// memberAdd: a user may add itself to a public room; only the owner (or a server
// request) adds anyone else, and anyone at all to a private room.
func (l *Logic) memberAdd(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.MemberReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room, req.Target); err != nil {
		return nil, err
	}
	room, err := l.viewRoom(ctx, req.Room, caller)
	if err != nil {
		return nil, err
	}
	server := isServer(ctx)
	if !server && caller != room.Owner && !(room.Public && req.Target == caller) {
		return nil, schema.Errorf(schema.CodeForbidden, "only the owner adds members to room %s", req.Room)
	}
	// A block refuses a user's adds, not the product's own.
	if !server {
		if err := l.checkAdder(ctx, caller, req.Target); err != nil {
			return nil, err
		}
	}
	if err := l.checkBan(ctx, req.Room, req.Target); err != nil {
		return nil, err
	}
	added, err := l.meta.AddMember(ctx, req.Room, req.Target, l.caps)
	if err != nil {
		return nil, refusal(err)
	}
	if added {
		if err := l.undoBannedAdd(ctx, req.Room, req.Target); err != nil {
			return nil, err
		}
		l.publishMember(req.Room, req.Target, schema.ActionJoin)
	}
	return schema.Reply{}, nil
}

// memberRemove: a user may remove itself; the owner (or a server request) may remove
// anyone.
func (l *Logic) memberRemove(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.MemberReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room, req.Target); err != nil {
		return nil, err
	}
	room, err := l.viewRoom(ctx, req.Room, caller)
	if err != nil {
		return nil, err
	}
	if !isServer(ctx) && caller != room.Owner && caller != req.Target {
		return nil, schema.Errorf(schema.CodeForbidden, "only the owner removes other members of room %s", req.Room)
	}
	removed, err := l.meta.RemoveMember(ctx, req.Room, req.Target)
	if err != nil {
		return nil, err
	}
	if removed {
		// Published and flushed before the reply, so that every gateway has the leave
		// in hand by the time the caller sees 204.
		l.publishMember(req.Room, req.Target, schema.ActionLeave)
	}
	return schema.Reply{}, nil
}

func (l *Logic) memberList(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.MemberListReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	var err error
	if req.Limit, err = pageLimit(req.After, req.Limit, schema.DefaultMemberLimit, schema.MaxMemberLimit); err != nil {
		return nil, err
	}
	if _, err := l.viewRoom(ctx, req.Room, caller); err != nil {
		return nil, err
	}
	members, more, err := l.meta.ListMembers(ctx, req.Room, req.After, req.Limit)
	if err != nil {
		return nil, err
	}
	if members == nil {
		members = []string{}
	}
	return schema.MemberListReply{Members: members, More: more}, nil
}

func (l *Logic) readSet(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.ReadSetReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	if req.Seq < 0 {
		return nil, schema.Errorf(schema.CodeBadRequest, "seq must not be negative")
	}
	if err := l.requireMember(ctx, req.Room, caller); err != nil {
		return nil, err
	}
	last, err := l.msgs.LastSeq(ctx, req.Room)
	if err != nil {
		return nil, err
	}
	readSeq, err := l.meta.SetRead(ctx, caller, req.Room, min(req.Seq, last))
	if err != nil {
		return nil, err
	}
	l.publishRead(caller, req.Session, req.Room, readSeq)
	return schema.Reply{}, nil
}

// userRooms answers a page of the caller's rooms: a whole list would pass NATS's 1 MiB
// payload limit for a user in a few thousand rooms of long names.
func (l *Logic) userRooms(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.UserRoomsReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	var err error
	if req.Limit, err = pageLimit(req.After, req.Limit, schema.DefaultUserRoomsLimit, schema.MaxUserRoomsLimit); err != nil {
		return nil, err
	}
	rooms, more, err := l.meta.UserRooms(ctx, caller, req.After, req.Limit)
	if err != nil {
		return nil, err
	}
	rooms, trimmed := fitUserRooms(rooms)
	ids := make([]string, len(rooms))
	for i, r := range rooms {
		ids[i] = r.Room
	}
	seqs, err := l.msgs.LastSeqs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]schema.UserRoom, len(rooms))
	for i, r := range rooms {
		out[i] = schema.UserRoom{Room: r.Room, Name: r.Name, Seq: seqs[r.Room], ReadSeq: r.ReadSeq}
	}
	return schema.UserRoomsReply{Rooms: out, More: more || trimmed}, nil
}

func (l *Logic) nonceLookup(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.NonceLookupReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	m, found, err := l.msgs.LookupNonce(ctx, req.Room, caller, req.Nonce)
	if err != nil {
		return nil, err
	}
	return schema.NonceLookupReply{Found: found, Seq: m.Seq, Ts: m.Ts}, nil
}

// newRoomID generates a room id for POST /v1/rooms without one: 20 characters of
// base32 (100 bits), well inside docs/protocol.md's id alphabet.
func newRoomID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [20]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}
