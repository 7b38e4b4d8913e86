package logic

import (
	"context"

	"github.com/laneim/laneim/schema"
)

// This file holds the services by which a user refuses what others do to it: leaving
// rooms in bulk, and blocking the adds of given users. Adds stay immediate (no
// invitation to accept), so these are what keep an owner from filling a user's room
// list against its will, together with max_rooms_per_user.

// checkAdder refuses an add of target by caller when target blocks caller. A user
// adding itself (to a public room) is never blocked.
func (l *Logic) checkAdder(ctx context.Context, caller, target string) error {
	if caller == target {
		return nil
	}
	blocked, err := l.meta.IsBlocked(ctx, target, caller)
	if err != nil {
		return err
	}
	if blocked {
		metricAddsBlocked.Inc()
		return schema.Errorf(schema.CodeForbidden, "%s does not accept adds from %s", target, caller)
	}
	return nil
}

// userLeave removes the user from up to MaxLeaveRooms rooms in one write. Each room
// left is announced exactly as a single leave is, so gateways drop it from the user's
// connections at once; the events are flushed once, before the reply.
func (l *Logic) userLeave(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.UserLeaveReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if len(req.Rooms) == 0 || len(req.Rooms) > schema.MaxLeaveRooms {
		return nil, schema.Errorf(schema.CodeBadRequest, "rooms must list 1 to %d room ids, got %d", schema.MaxLeaveRooms, len(req.Rooms))
	}
	if err := checkIDs(req.Rooms...); err != nil {
		return nil, err
	}
	left, err := l.meta.LeaveRooms(ctx, caller, req.Rooms)
	if err != nil {
		return nil, err
	}
	for _, room := range left {
		l.publishMemberUnflushed(room, caller, schema.ActionLeave)
	}
	l.flushEvents()
	if left == nil {
		left = []string{}
	}
	return schema.UserLeaveReply{Left: left}, nil
}

func (l *Logic) blockAdd(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.BlockReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Target); err != nil {
		return nil, err
	}
	if caller == req.Target {
		return nil, schema.Errorf(schema.CodeBadRequest, "a user cannot block itself")
	}
	if _, err := l.meta.Block(ctx, caller, req.Target, l.caps); err != nil {
		return nil, refusal(err)
	}
	return schema.Reply{}, nil
}

func (l *Logic) blockRemove(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.BlockReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Target); err != nil {
		return nil, err
	}
	if _, err := l.meta.Unblock(ctx, caller, req.Target); err != nil {
		return nil, err
	}
	return schema.Reply{}, nil
}

func (l *Logic) blockList(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.BlockListReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	var err error
	if req.Limit, err = pageLimit(req.After, req.Limit, schema.DefaultBlockLimit, schema.MaxBlockLimit); err != nil {
		return nil, err
	}
	users, more, err := l.meta.ListBlocks(ctx, caller, req.After, req.Limit)
	if err != nil {
		return nil, err
	}
	if users == nil {
		users = []string{}
	}
	return schema.BlockListReply{Users: users, More: more}, nil
}
