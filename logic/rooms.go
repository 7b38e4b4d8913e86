package logic

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// Room management by its owner (and, for a rename, its moderators): each change is
// announced with a room event to the members' sessions (docs/protocol.md).

// logDeleteTimeout bounds the deletion of a deleted room's message log.
const logDeleteTimeout = 5 * time.Minute

// mayModerate reports whether user may do what a moderator of room may: its owner,
// its appointed moderators, and a server request.
func (l *Logic) mayModerate(ctx context.Context, room store.Room, user string) (bool, error) {
	if room.Owner == user || isServer(ctx) {
		return true, nil
	}
	return l.meta.IsModerator(ctx, room.ID, user)
}

// ownedRoom returns room if caller owns it, or for a server request: forbidden
// otherwise (as for a room the caller may not see or that does not exist, see
// viewRoom).
func (l *Logic) ownedRoom(ctx context.Context, id, caller, what string) (store.Room, error) {
	room, err := l.viewRoom(ctx, id, caller)
	if err != nil {
		return room, err
	}
	if room.Owner != caller && !isServer(ctx) {
		return room, schema.Errorf(schema.CodeForbidden, "only the owner %s room %s", what, id)
	}
	return room, nil
}

// moderatedRoom returns the room if caller may moderate it (its owner, one of its
// moderators, or a server): forbidden otherwise, saying that only they what it.
func (l *Logic) moderatedRoom(ctx context.Context, id, caller, what string) (store.Room, error) {
	room, err := l.viewRoom(ctx, id, caller)
	if err != nil {
		return room, err
	}
	if ok, err := l.mayModerate(ctx, room, caller); err != nil {
		return room, err
	} else if !ok {
		return room, schema.Errorf(schema.CodeForbidden, "only the owner and the moderators %s room %s", what, id)
	}
	return room, nil
}

// roomRename: the owner and the moderators rename a room.
func (l *Logic) roomRename(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.RoomRenameReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	if req.Name == "" || len(req.Name) > schema.MaxRoomNameBytes {
		return nil, schema.Errorf(schema.CodeBadRequest, "name must be 1 to %d bytes", schema.MaxRoomNameBytes)
	}
	room, err := l.moderatedRoom(ctx, req.Room, caller, "rename")
	if err != nil {
		return nil, err
	}
	if err := l.meta.RenameRoom(ctx, req.Room, req.Name); err != nil {
		return nil, err
	}
	metricRoomChanges.WithLabelValues(schema.RoomRenamed).Inc()
	room.Name = req.Name
	l.publishRoom(schema.RoomEventD{Room: req.Room, Action: schema.RoomRenamed, Name: req.Name})
	return schema.RoomReply{Room: roomInfo(room)}, nil
}

// roomTransfer: the owner gives the room to another member.
func (l *Logic) roomTransfer(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.RoomTransferReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room, req.Owner); err != nil {
		return nil, err
	}
	room, err := l.ownedRoom(ctx, req.Room, caller, "transfers")
	if err != nil {
		return nil, err
	}
	if req.Owner == room.Owner {
		return schema.RoomReply{Room: roomInfo(room)}, nil
	}
	if err := l.meta.TransferRoom(ctx, req.Room, req.Owner, l.caps); err != nil {
		return nil, refusal(err)
	}
	metricRoomChanges.WithLabelValues(schema.RoomOwner).Inc()
	room.Owner = req.Owner
	l.publishRoom(schema.RoomEventD{Room: req.Room, Action: schema.RoomOwner, User: req.Owner})
	return schema.RoomReply{Room: roomInfo(room)}, nil
}

// roomDelete: the owner deletes the room, its members and its history. Every member's
// sessions get a room event "deleted" in place of a member leave.
func (l *Logic) roomDelete(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.RoomDeleteReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room); err != nil {
		return nil, err
	}
	if _, err := l.ownedRoom(ctx, req.Room, caller, "deletes"); err != nil {
		return nil, err
	}
	members, err := l.meta.DeleteRoom(ctx, req.Room)
	if err != nil {
		return nil, err
	}
	metricRoomChanges.WithLabelValues(schema.RoomDeleted).Inc()
	// The members are told before the log goes, so that nobody reads a history being
	// deleted as the room's.
	frame := schema.EncodeFrame(schema.OpRoom, nil, schema.RoomEventD{Room: req.Room, Action: schema.RoomDeleted})
	for _, user := range members {
		l.publishUserEvent(user, frame)
	}
	l.flushEvents()
	// The metadata is gone: no member can send to the room or read it any more. A
	// log that cannot be deleted now stays behind in the message store, where a room
	// created again with the id would find it: an operator's matter, counted and
	// logged, not the owner's, whose room is deleted.
	//
	// A long log takes a while (SQLite deletes 10,000 seqs a transaction): it is not
	// cut short with the request, whose caller may have given up by then.
	deleteCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logDeleteTimeout)
	defer cancel()
	if err := l.msgs.DeleteLog(deleteCtx, req.Room); err != nil {
		metricLogDeleteErrors.Inc()
		l.cfg.Logger.Error().Err(err).Str("room", req.Room).Msg("the message log of a deleted room was not deleted")
	}
	return schema.Reply{}, nil
}

// startLog prepares the log of a room about to be created, from seq 1 (the protocol
// lets a deleted room's id be created again). A log a room delete left behind (it
// could not be deleted then, or an append in flight during the delete landed after
// it) is deleted now, while the id has no room and so no member who could send. Then
// a reset goes through IM_OUT, in order with the room's messages: pusher forgets the
// seq it published last for the room, which would otherwise hold back the new
// room's first messages as already published. For an id that turns out to be taken
// the reset costs nothing: pusher then only forgets which seqs it need not publish
// again, and gateways drop those by seq.
func (l *Logic) startLog(ctx context.Context, room string) error {
	_, err := l.meta.GetRoom(ctx, room)
	if errors.Is(err, schema.ErrNotFound) {
		seq, err := l.msgs.LastSeq(ctx, room)
		if err != nil {
			return err
		}
		if seq > 0 {
			if err := l.msgs.DeleteLog(ctx, room); err != nil {
				return err
			}
			metricStaleLogs.Inc()
			l.cfg.Logger.Warn().Str("room", room).Int64("seq", seq).Msg("deleted the message log a deleted room had left")
		}
	} else if err != nil {
		return err
	}
	reset := nats.NewMsg(subjects.OutT(room))
	reset.Header.Set(subjects.HeaderSeq, "0")
	reset.Header.Set(subjects.HeaderTs, strconv.FormatInt(time.Now().UnixMilli(), 10))
	if _, err := l.js.PublishMsg(ctx, reset); err != nil {
		return schema.Errorf(schema.CodeUnavailable, "room %s: %v", room, err)
	}
	return nil
}

// moderatorSet: the owner appoints and removes moderators, members of the room, at
// most schema.MaxModerators.
func (l *Logic) moderatorSet(ctx context.Context, caller string, data []byte) (any, error) {
	var req schema.ModeratorReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Room, req.Target); err != nil {
		return nil, err
	}
	room, err := l.ownedRoom(ctx, req.Room, caller, "appoints moderators of")
	if err != nil {
		return nil, err
	}
	if req.Target == room.Owner {
		return nil, schema.Errorf(schema.CodeBadRequest, "the owner of room %s is not made a moderator", req.Room)
	}
	if req.Moderator {
		// Counted before the write: two concurrent appointments may pass the bound by
		// one, which only lengthens the list a little.
		moderators, err := l.meta.ListModerators(ctx, req.Room, schema.MaxModerators)
		if err != nil {
			return nil, err
		}
		if len(moderators) >= schema.MaxModerators {
			return nil, schema.Errorf(schema.CodeForbidden, "room %s has %d moderators, the most allowed", req.Room, schema.MaxModerators)
		}
	}
	changed, err := l.meta.SetModerator(ctx, req.Room, req.Target, req.Moderator)
	if err != nil {
		return nil, err
	}
	if changed {
		metricRoomChanges.WithLabelValues(schema.RoomModerator).Inc()
		moderator := req.Moderator
		l.publishRoom(schema.RoomEventD{Room: req.Room, Action: schema.RoomModerator, User: req.Target, Moderator: &moderator})
	}
	return schema.Reply{}, nil
}
