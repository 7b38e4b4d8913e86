package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/laneim/laneim/schema"
)

// Codes of error events the client raises itself. They never come from a server, so
// they do not collide with docs/protocol.md's codes.
const (
	// CodeGap: a subscribed room's batch did not start right after the last seq
	// delivered. Event.Gap names the missing range; the batch is still delivered.
	CodeGap = "gap"
	// CodeBadFrame: a frame was not valid JSON of the protocol's shape. Event.Raw
	// holds it; the connection stays open.
	CodeBadFrame = "bad_frame"
)

// Event is something the server pushed without being asked: messages of subscribed
// rooms, ticks, membership changes, read marks, errors. Op says which field is set.
type Event struct {
	// Op is the server's op (msgs, ticks, tick, member, read, error), ready after a
	// reconnect, or an op this version does not know, in which case only Raw is set.
	Op string
	// Batch (op msgs): new messages of a subscribed room, with entries already
	// delivered removed. Batch.Messages() turns entries into messages; an edit or a
	// delete is an entry too, with schema.Message.Kind KindEdit or KindDelete and Ref
	// the seq of the message it acts on (history and catch-up show an edited message
	// as KindEdited, a deleted one as KindDeleted).
	Batch *schema.Batch
	// Ticks (op ticks, the default): the latest seqs of rooms this connection is
	// passive in that changed since the previous ticks event, each room once.
	Ticks []schema.TickD
	// Tick (op tick, with Options.SingleTicks): the latest seq of a room this
	// connection is passive in.
	Tick *schema.TickD
	// Member (op member): someone joined or left a room of the user.
	Member *schema.MemberD
	// Room (op room): a room of the user was renamed (schema.RoomRenamed), given to
	// a new owner (RoomOwner), got or lost a moderator (RoomModerator), or was
	// deleted (RoomDeleted: nothing of it follows, as after a leave); a member was
	// muted or unmuted (RoomMuted, RoomUnmuted, with User and Until), banned or
	// unbanned (RoomBanned, RoomUnbanned: the banned user's sessions get
	// RoomBanned after the leave of the room it caused).
	Room *schema.RoomEventD
	// Read (op read): another session of the user marked {room, seq} read.
	Read *schema.TickD
	// Err (op error): a server error without rid (the server is about to close), a
	// failed resubscribe after a reconnect, or one of the client's own codes
	// (CodeGap, CodeBadFrame).
	Err *schema.ErrorD
	// Gap is set with Err.Code == CodeGap.
	Gap *Gap
	// Ready (op ready): the client reconnected, identified and resubscribed.
	Ready *schema.ReadyD
	// Presence (op presence, for a room subscribed with SubscribeOptions.Presence):
	// the room's online count, and who came online or went offline since its
	// previous presence event.
	Presence *schema.PresenceEventD
	// Typing (op typing, for a subscribed room): the members typing lately, this
	// user aside. Show each for schema.TypingShowMs unless named again.
	Typing *schema.TypingEventD
	// Raw is the frame as received. For a batch with duplicates removed it is still
	// the whole frame.
	Raw []byte
}

// Messages decodes the entries of a msgs event; it returns nil for other events.
func (e Event) Messages() ([]schema.Message, error) {
	if e.Batch == nil {
		return nil, nil
	}
	return e.Batch.Messages()
}

// Gap is a range of seqs a subscribed room skipped: After was the last seq delivered,
// Next is the first seq of the batch that arrived, so After+1 .. Next-1 are missing.
type Gap struct {
	Room  string
	After int64
	Next  int64
}

// inFrame is a decoded server frame.
type inFrame struct {
	Op     string
	Rid    uint64
	HasRid bool
	D      json.RawMessage
}

// parseFrame decodes the envelope of a server frame. data is not retained: the
// decoder copies d.
func parseFrame(data []byte) (inFrame, error) {
	var f schema.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return inFrame{}, fmt.Errorf("frame is not a JSON object: %w", err)
	}
	if f.Op == "" {
		return inFrame{}, errors.New("frame has no op")
	}
	in := inFrame{Op: f.Op, D: f.D}
	if len(f.Rid) > 0 && !bytes.Equal(f.Rid, []byte("null")) {
		rid, err := strconv.ParseUint(string(f.Rid), 10, 64)
		if err != nil {
			return inFrame{}, fmt.Errorf("rid %s is not a non-negative integer", f.Rid)
		}
		in.Rid, in.HasRid = rid, true
	}
	return in, nil
}

// msgsPrefix is how every msgs frame starts as schema.AppendMsgsFrame encodes it.
var msgsPrefix = []byte(`{"op":"msgs","d":`)

// msgsPayload returns the d of a msgs frame encoded the way the server encodes them,
// without decoding the envelope: msgs frames are nearly all a client reads, and this
// halves the JSON scanning per frame (BenchmarkHandleMsgsFrame, one-message frame:
// 9.8 µs and 23 allocations before, 2.8 µs and 13 after, on a 2-core dev VM). If d turns out not to
// be a batch (a rid after it, another layout), decoding it fails and the caller falls
// back to the general path.
func msgsPayload(data []byte) (json.RawMessage, bool) {
	if len(data) < len(msgsPrefix)+2 || !bytes.HasPrefix(data, msgsPrefix) || data[len(data)-1] != '}' {
		return nil, false
	}
	return data[len(msgsPrefix) : len(data)-1], true
}

// decodeEvent turns a frame without rid into an event. raw is stored in Event.Raw.
// heartbeat_ack is not an event: it returns ok == false.
func decodeEvent(f inFrame, raw []byte) (ev Event, ok bool, err error) {
	ev = Event{Op: f.Op, Raw: raw}
	switch f.Op {
	case schema.OpHeartbeatAck:
		return Event{}, false, nil
	case schema.OpMsgs:
		b, err := decodeBatch(f.D)
		if err != nil {
			return Event{}, false, err
		}
		ev.Batch = &b
	case schema.OpTicks:
		var d schema.TicksD
		if err = json.Unmarshal(f.D, &d); err == nil {
			for _, t := range d.Rooms {
				if !schema.ValidID(t.Room) {
					err = fmt.Errorf("room %q is not a valid id", t.Room)
					break
				}
			}
		}
		ev.Ticks = d.Rooms
	case schema.OpTick:
		ev.Tick = new(schema.TickD)
		err = decodeRoomD(f.D, ev.Tick, &ev.Tick.Room)
	case schema.OpRead:
		ev.Read = new(schema.TickD)
		err = decodeRoomD(f.D, ev.Read, &ev.Read.Room)
	case schema.OpMember:
		ev.Member = new(schema.MemberD)
		err = decodeRoomD(f.D, ev.Member, &ev.Member.Room)
	case schema.OpRoom:
		ev.Room = new(schema.RoomEventD)
		err = decodeRoomD(f.D, ev.Room, &ev.Room.Room)
	case schema.OpPresence:
		ev.Presence = new(schema.PresenceEventD)
		err = decodeRoomD(f.D, ev.Presence, &ev.Presence.Room)
	case schema.OpTyping:
		ev.Typing = new(schema.TypingEventD)
		err = decodeRoomD(f.D, ev.Typing, &ev.Typing.Room)
	case schema.OpError:
		ev.Err = new(schema.ErrorD)
		if err = json.Unmarshal(f.D, ev.Err); err == nil && ev.Err.Code == "" {
			err = errors.New("error without code")
		}
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("%s: %w", f.Op, err)
	}
	return ev, true, nil
}

// decodeBatch decodes and sanity-checks a batch: a valid room, and a positive seq
// when it has entries (the seq of an empty batch is not meaningful).
func decodeBatch(d json.RawMessage) (schema.Batch, error) {
	var b schema.Batch
	if err := json.Unmarshal(d, &b); err != nil {
		return b, err
	}
	if !schema.ValidID(b.Room) {
		return b, fmt.Errorf("batch room %q is not a valid id", b.Room)
	}
	if len(b.Msgs) > 0 && b.Seq < 1 {
		return b, fmt.Errorf("batch of room %s starts at seq %d", b.Room, b.Seq)
	}
	return b, nil
}

// decodeRoomD decodes d into v and checks that the room it names is valid.
func decodeRoomD(d json.RawMessage, v any, room *string) error {
	if err := json.Unmarshal(d, v); err != nil {
		return err
	}
	if !schema.ValidID(*room) {
		return fmt.Errorf("room %q is not a valid id", *room)
	}
	return nil
}

func badFrameEvent(raw []byte, err error) Event {
	return Event{
		Op:  schema.OpError,
		Err: &schema.ErrorD{Code: CodeBadFrame, Message: err.Error()},
		Raw: raw,
	}
}

func gapEvent(g *Gap, raw []byte) Event {
	return Event{
		Op: schema.OpError,
		Err: &schema.ErrorD{Code: CodeGap, Message: fmt.Sprintf(
			"room %s: seq %d..%d missing", g.Room, g.After+1, g.Next-1)},
		Gap: g,
		Raw: raw,
	}
}

// replyError turns the d of an error reply into a *schema.Error.
func replyError(d json.RawMessage) error {
	var e schema.ErrorD
	if err := json.Unmarshal(d, &e); err != nil || e.Code == "" {
		return &schema.Error{Code: CodeBadFrame, Message: fmt.Sprintf("undecodable error reply %s", d)}
	}
	return &schema.Error{Code: e.Code, Message: e.Message}
}
