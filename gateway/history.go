package gateway

import (
	"context"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// maxBuiltFrame caps the frames the gateway builds from history, as pusher caps its.
const maxBuiltFrame = 64 << 10

// frameLength is how many of msgs fit one built frame (at least one).
func frameLength(msgs []schema.Message) int {
	size := 0
	for i, m := range msgs {
		size += schema.EntrySize(m)
		if i > 0 && size > maxBuiltFrame {
			return i
		}
	}
	return len(msgs)
}

// fetchRange reads messages after..to of a room from history, page by page, at most
// limit of them, for the client whose token is token.
func (g *Gateway) fetchRange(token, room string, after, to int64, limit int) ([]schema.Message, error) {
	var out []schema.Message
	for after < to && len(out) < limit {
		page, more, err := g.historyPage(token, room, after)
		if err != nil {
			return nil, err
		}
		for _, m := range page {
			if m.Seq > to {
				return out, nil
			}
			out = append(out, m)
			after = m.Seq
		}
		if !more || len(page) == 0 {
			break
		}
	}
	return out, nil
}

// historyPage reads the largest page of room after seq for the client whose token is
// token: logic serves no read that is not a member's.
func (g *Gateway) historyPage(token, room string, after int64) ([]schema.Message, bool, error) {
	ctx, cancel := context.WithTimeout(withToken(context.Background(), token), g.cfg.RequestTimeout)
	defer cancel()
	var reply schema.HistoryReply
	if err := g.call(ctx, subjects.SvcHistory, schema.HistoryReq{Room: room, After: &after, Limit: schema.MaxHistoryLimit}, &reply); err != nil {
		return nil, false, err
	}
	return reply.Page()
}
