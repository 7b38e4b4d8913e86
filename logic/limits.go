package logic

import (
	"encoding/json"
	"errors"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
)

// The limits on what one user holds, by the setting (configs key) that sets each. They
// label laneim_logic_limit_refused_total and are named in the refusal, so that both a
// client developer and an operator find the setting.
const (
	limitRooms        = "max_rooms_per_user"
	limitRoomsCreated = "max_rooms_created_per_user"
	limitBlocks       = "max_blocks_per_user"
)

func init() {
	// Every label from the start, so a dashboard sees 0 rather than no series.
	for _, limit := range []string{limitRooms, limitRoomsCreated, limitBlocks} {
		metricLimitRefused.WithLabelValues(limit)
	}
}

// refusal turns the store's refusal of a write past a cap into docs/protocol.md's
// answer, forbidden with a message naming the limit, and counts it. Any other error
// passes unchanged.
func refusal(err error) error {
	var capErr *store.CapError
	if !errors.As(err, &capErr) {
		return err
	}
	var e *schema.Error
	switch capErr.Cap {
	case store.CapRooms:
		metricLimitRefused.WithLabelValues(limitRooms).Inc()
		e = schema.Errorf(schema.CodeForbidden, "%s belongs to %d rooms, the most %s allows", capErr.User, capErr.Max, limitRooms)
	case store.CapCreated:
		metricLimitRefused.WithLabelValues(limitRoomsCreated).Inc()
		e = schema.Errorf(schema.CodeForbidden, "%s has created %d rooms, the most %s allows", capErr.User, capErr.Max, limitRoomsCreated)
	case store.CapBlocks:
		metricLimitRefused.WithLabelValues(limitBlocks).Inc()
		e = schema.Errorf(schema.CodeForbidden, "%s blocks %d users, the most %s allows", capErr.User, capErr.Max, limitBlocks)
	default:
		return err
	}
	return e
}

// userRoomsPageBytes bounds the JSON of one page of a user's rooms beyond its count:
// 500 rooms of ordinary names take 50 to 150 KB, but a name whose 200 bytes all
// escape (`<` is written \u003c) takes 1,200, and such a page nearly 700 KB.
const userRoomsPageBytes = 256 << 10

// fitUserRooms keeps the longest head of rooms whose JSON fits userRoomsPageBytes,
// at least one room, and says whether it dropped any. The size counted for a room is
// a bound on its JSON, not the exact size: 6 bytes a name byte, 40 for the numbers,
// 40 for the rest.
func fitUserRooms(rooms []store.UserRoom) ([]store.UserRoom, bool) {
	size := 0
	for i, r := range rooms {
		size += len(r.Room) + 6*len(r.Name) + 80
		if size > userRoomsPageBytes && i > 0 {
			return rooms[:i], true
		}
	}
	return rooms, false
}

// encodeReply encodes a service reply. A reply over NATS's max payload (1 MiB by
// default) cannot be sent: the caller would wait out its timeout and answer
// unavailable, and a retry would fail the same way. Such a reply is answered with
// internal at once instead, logged and counted: the endpoint needs a smaller page.
func (l *Logic) encodeReply(endpoint string, out any) []byte {
	data, ok := out.(rawReply)
	if !ok {
		var err error
		if data, err = json.Marshal(out); err != nil {
			l.cfg.Logger.Error().Err(err).Str("endpoint", endpoint).Msg("encode reply")
			return internalReply("cannot encode the reply")
		}
	}
	if limit := l.nc.MaxPayload(); limit > 0 && int64(len(data)) > limit {
		metricReplyTooLarge.WithLabelValues(endpoint).Inc()
		l.cfg.Logger.Error().Str("endpoint", endpoint).Int("bytes", len(data)).Int64("max_payload", limit).
			Msg("reply over NATS's max payload")
		return internalReply("the reply is over NATS's max payload")
	}
	return data
}

func internalReply(message string) []byte {
	data, _ := json.Marshal(schema.Reply{Err: schema.Errorf(schema.CodeInternal, "%s", message)})
	return data
}
