package client

import (
	"encoding/json"

	"github.com/laneim/laneim/schema"
)

// seqState is where the application stands in one subscribed room.
type seqState struct {
	// Last is the last seq delivered to the application (0: none yet). Meaningful only
	// when Known.
	Last int64
	// Known is false after a subscribe without since until the subscribed reply or the
	// first batch fixes the baseline.
	Known bool
}

// since is the since to resubscribe with: nil when the baseline is unknown.
func (s seqState) since() *int64 {
	if !s.Known {
		return nil
	}
	last := s.Last
	return &last
}

// acceptBatch decides what of batch b the application gets, given where it stands.
// Entries at or below st.Last are duplicates (a catch-up overlapping live messages, or
// a server redelivering after a reconnect) and are cut off the front; a batch that
// starts beyond st.Last+1 is delivered whole but reported as a gap, since hiding it
// would turn a server bug into silent loss. An unknown baseline accepts anything.
// The result has no entries when nothing is to be delivered.
func acceptBatch(st seqState, b schema.Batch) (out schema.Batch, next seqState, dropped int, gap *Gap) {
	n := int64(len(b.Msgs))
	if n == 0 {
		return schema.Batch{Room: b.Room}, st, 0, nil
	}
	end := b.Seq + n - 1
	next = seqState{Last: end, Known: true}
	if !st.Known {
		return b, next, 0, nil
	}
	if end <= st.Last {
		return schema.Batch{Room: b.Room}, st, int(n), nil
	}
	if b.Seq <= st.Last {
		// Entries are relative to the batch's ts, which stays the base: only seq moves.
		skip := st.Last - b.Seq + 1
		out = b
		out.Seq = st.Last + 1
		out.Msgs = b.Msgs[skip:len(b.Msgs):len(b.Msgs)]
		return out, next, int(skip), nil
	}
	if b.Seq > st.Last+1 {
		gap = &Gap{Room: b.Room, After: st.Last, Next: b.Seq}
	}
	return b, next, 0, gap
}

// roomState is the client's record of one room the application subscribed to: the
// intent that reconnects restore, and the delivery position. Guarded by
// Client.roomsMu.
type roomState struct {
	seq seqState
	// presence is whether the room was subscribed with presence events, asked
	// again by a resubscribe.
	presence bool
	// attempt is the latest subscribe sent for the room, by the application or by a
	// resubscribe after reconnect.
	attempt *subAttempt
}

// subAttempt is one subscribe frame in flight and its outcome. done is closed exactly
// once, after res or err is set.
type subAttempt struct {
	cn   *conn // the connection it was sent on; set once
	done chan struct{}
	res  schema.SubscribedD
	err  error
}

func newSubAttempt(cn *conn) *subAttempt {
	return &subAttempt{cn: cn, done: make(chan struct{})}
}

// complete records the reply to the attempt's subscribe.
func (a *subAttempt) complete(r reply) {
	switch {
	case r.err != nil:
		a.err = r.err
	case r.op == schema.OpSubscribed:
		if err := json.Unmarshal(r.d, &a.res); err != nil {
			a.err = &schema.Error{Code: CodeBadFrame, Message: "undecodable subscribed reply: " + err.Error()}
		}
	default:
		a.err = unexpectedReply(r, schema.OpSubscribed)
	}
}
