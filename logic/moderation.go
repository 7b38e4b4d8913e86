package logic

import (
	"context"
	"errors"
	"time"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
)

// Moderation (docs/protocol.md): the owner and the moderators of a room mute its
// members (their sends and edits are refused with muted) and ban users (out of the
// room, and not let back in by a join or an add), for a time or until lifted. Nobody
// sanctions the owner, and only the owner sanctions a moderator.

// sanctionActions are the room event actions of each kind, imposed and lifted.
var sanctionActions = map[string][2]string{
	store.SanctionMute: {schema.RoomMuted, schema.RoomUnmuted},
	store.SanctionBan:  {schema.RoomBanned, schema.RoomUnbanned},
}

// sanctionSet: the owner and the moderators mute, ban, unmute and unban.
func (l *Logic) sanctionSet(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.SanctionReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room, req.Target); err != nil {
		return nil, err
	}
	actions, ok := sanctionActions[req.Kind]
	if !ok {
		return nil, schema.Errorf(schema.CodeBadRequest, "kind must be %s or %s", store.SanctionMute, store.SanctionBan)
	}
	now := time.Now().UnixMilli()
	until, err := sanctionEnd(req, now)
	if err != nil {
		return nil, err
	}
	room, err := l.moderatedRoom(ctx, req.Room, caller, "mute and ban in")
	if err != nil {
		return nil, err
	}
	if req.Target == room.Owner {
		return nil, schema.Errorf(schema.CodeForbidden, "the owner of room %s is not muted or banned", req.Room)
	}
	if room.Owner != caller && !isServer(ctx) {
		moderator, err := l.meta.IsModerator(ctx, req.Room, req.Target)
		if err != nil {
			return nil, err
		}
		if moderator {
			return nil, schema.Errorf(schema.CodeForbidden, "only the owner mutes and bans the moderators of room %s", req.Room)
		}
	}
	if req.Lift {
		return l.liftSanction(ctx, req, actions[1])
	}
	if req.Kind == store.SanctionMute {
		// Mutes are of members: the mute table holds what a room's members are, not
		// what anyone might be. A ban may come before a join. (The target's
		// membership, whoever asks: not requireMember, which lets a server through.)
		member, err := l.meta.IsMember(ctx, req.Room, req.Target)
		if err != nil {
			return nil, err
		}
		if !member {
			return nil, schema.Errorf(schema.CodeForbidden, "%s is not a member of room %s", req.Target, req.Room)
		}
	}
	member, err := l.meta.Sanction(ctx, store.Sanction{Room: req.Room, User: req.Target, Kind: req.Kind,
		Until: until, By: caller, Reason: req.Reason, Created: now})
	if err != nil {
		return nil, err
	}
	metricModeration.WithLabelValues(actions[0]).Inc()
	event := schema.RoomEventD{Room: req.Room, Action: actions[0], User: req.Target, Until: until}
	if req.Kind == store.SanctionMute {
		l.announceMutes(req.Room, req.Target, schema.ChangeInsert)
		l.publishRoom(event)
		return schema.Reply{}, nil
	}
	// A ban: the member leaves as on DELETE of the member, then its sessions learn
	// why on the user's subject (the room's events skip them: they are gone) and the
	// members on the room's.
	if member {
		l.publishMemberUnflushed(req.Room, req.Target, schema.ActionLeave)
	}
	l.publishUserEvent(req.Target, schema.EncodeFrame(schema.OpRoom, nil, event))
	l.publishRoom(event)
	return schema.Reply{}, nil
}

// sanctionEnd is when the sanction of req ends (Unix ms, 0 for no end), from until or
// duration_ms.
func sanctionEnd(req schema.SanctionReq, now int64) (int64, error) {
	switch {
	case req.Lift:
		return 0, nil
	case len(req.Reason) > schema.MaxReasonBytes:
		return 0, schema.Errorf(schema.CodeBadRequest, "reason is longer than %d bytes", schema.MaxReasonBytes)
	case req.Until != 0 && req.DurationMs != 0:
		return 0, schema.Errorf(schema.CodeBadRequest, "until and duration_ms are exclusive")
	case req.DurationMs < 0:
		return 0, schema.Errorf(schema.CodeBadRequest, "duration_ms must be positive")
	case req.DurationMs > 0:
		return now + req.DurationMs, nil
	case req.Until < 0 || (req.Until != 0 && req.Until <= now):
		return 0, schema.Errorf(schema.CodeBadRequest, "until must be in the future (Unix ms)")
	}
	return req.Until, nil
}

// liftSanction ends the sanction of req, announced if there was one.
func (l *Logic) liftSanction(ctx context.Context, req schema.SanctionReq, action string) (any, error) {
	lifted, err := l.meta.Lift(ctx, req.Room, req.Target, req.Kind)
	if err != nil {
		return nil, err
	}
	if req.Kind == store.SanctionMute {
		// Dropped even when nothing was lifted: a mute that ended by itself is gone
		// from the store's answers too.
		l.announceMutes(req.Room, req.Target, schema.ChangeDelete)
	}
	if lifted {
		metricModeration.WithLabelValues(action).Inc()
		l.publishRoom(schema.RoomEventD{Room: req.Room, Action: action, User: req.Target})
	}
	return schema.Reply{}, nil
}

// sanctionList answers a page of a room's active mutes or bans, to its owner and
// moderators.
func (l *Logic) sanctionList(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.SanctionListReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	if _, ok := sanctionActions[req.Kind]; !ok {
		return nil, schema.Errorf(schema.CodeBadRequest, "kind must be %s or %s", store.SanctionMute, store.SanctionBan)
	}
	var err error
	if req.Limit, err = pageLimit(req.After, req.Limit, schema.DefaultSanctionLimit, schema.MaxSanctionLimit); err != nil {
		return nil, err
	}
	if _, err := l.moderatedRoom(ctx, req.Room, caller, "mute and ban in"); err != nil {
		return nil, err
	}
	list, more, err := l.meta.Sanctions(ctx, req.Room, req.Kind, req.After, time.Now().UnixMilli(), req.Limit)
	if err != nil {
		return nil, err
	}
	users := make([]schema.SanctionInfo, len(list))
	for i, s := range list {
		users[i] = schema.SanctionInfo{User: s.User, Until: s.Until, By: s.By, Reason: s.Reason}
	}
	return schema.SanctionListReply{Users: users, More: more}, nil
}

// undoBannedAdd takes back an add that raced a ban: the ban committed after checkBan
// and before the add (a ban committed after the add removes the member itself).
// Looked up again once the add has committed, so one of the two writes sees the other.
// It returns the refusal when it took the add back; an add it could not check or
// take back stands (and is announced), logged.
func (l *Logic) undoBannedAdd(ctx context.Context, room, user string) error {
	banned := l.checkBan(ctx, room, user)
	if banned == nil {
		return nil
	}
	if errors.Is(banned, schema.ErrForbidden) {
		_, err := l.meta.RemoveMember(ctx, room, user)
		if err == nil {
			return banned
		}
		banned = err
	}
	l.cfg.Logger.Warn().Err(banned).Str("room", room).Str("user", user).Msg("an add that may have raced a ban stands")
	return nil
}

// checkBan refuses a join or an add of user to room while user is banned from it.
func (l *Logic) checkBan(ctx context.Context, room, user string) error {
	ban, found, err := l.meta.GetSanction(ctx, room, user, store.SanctionBan)
	if err != nil {
		return err
	}
	if found && ban.Active(time.Now().UnixMilli()) {
		return schema.Errorf(schema.CodeForbidden, "%s is banned from room %s", user, room)
	}
	return nil
}
