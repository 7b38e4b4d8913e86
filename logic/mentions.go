package logic

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// mentionMsg returns the IM_MENTIONS message of a stored send, or nil when it mentions
// nobody: the offline hook (package notify) takes it from there. Only plain sends
// mention: an edit that adds a mention notifies no one. A send stored before (a
// retry, or a re-ingest after a crash between the store write and this publication)
// is published again while it is younger than mentionRepublishAge, under the same
// Nats-Msg-Id, which JetStream drops if the first publication got through.
//
// A body without the bytes "mentions" costs one bytes.Contains here, nothing more
// (BenchmarkMentions).
func mentionMsg(a schema.Message, isNew bool, now time.Time) (*nats.Msg, error) {
	if a.Kind != schema.KindPlain || !schema.HasMentions(a.Body) {
		return nil, nil
	}
	if !isNew && now.Sub(time.UnixMilli(a.Ts)) > mentionRepublishAge {
		return nil, nil
	}
	users := schema.ParseMentions(a.Body, a.User)
	if len(users) == 0 {
		return nil, nil
	}
	data, err := schema.EncodeWithBody(schema.Mention{Room: a.Room, Seq: a.Seq, Ts: a.Ts, From: a.User, Mentions: users}, a.Body)
	if err != nil {
		return nil, fmt.Errorf("encode mention of %s:%d: %w", a.Room, a.Seq, err)
	}
	m := nats.NewMsg(subjects.MentionT(a.Room))
	m.Header.Set(subjects.HeaderMsgID, subjects.MentionMsgIDT(a.Room, a.Seq, a.Ts))
	m.Data = data
	return m, nil
}
