package logic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// pendingSend is one IM_IN message being ingested.
type pendingSend struct {
	msg   jetstream.Msg
	room  string
	user  string
	nonce string
	reply string      // the sending gateway's ack subject
	kind  schema.Kind // of an edit or a delete, which act on the message of seq ref
	ref   int64
	// server marks a send whose token carries the server claim: the room must exist,
	// membership is not needed, and its deletes have a moderator's rights.
	server bool
	err    *schema.Error
	index  int // into the Append batch, -1 when refused
}

// checkMembers fills members with the membership of each of pairs: in one call when
// the metadata store checks many at once (the cache does, with one Redis round trip and
// one store query for its misses), one by one otherwise.
func (l *Logic) checkMembers(ctx context.Context, pairs [][2]string, members map[[2]string]bool) error {
	if len(pairs) == 0 {
		return nil
	}
	if mc, ok := l.meta.(store.MembersChecker); ok {
		answers, err := mc.AreMembers(ctx, pairs)
		if err != nil {
			return err
		}
		for i, p := range pairs {
			members[p] = answers[i]
		}
		return nil
	}
	for _, p := range pairs {
		member, err := l.meta.IsMember(ctx, p[0], p[1])
		if err != nil {
			return err
		}
		members[p] = member
	}
	return nil
}

// ingest handles one batch of one IM_IN partition: check, store in one durable write,
// reply to the gateways, publish to IM_OUT, then ack the batch. On a failure the
// batch is handed back again (partition.Run retries it); the store's nonce index makes
// the retry keep the seqs of anything already stored, and a re-sent ack or IM_OUT
// message is harmless.
func (l *Logic) ingest(ctx context.Context, batch []jetstream.Msg) error {
	metricBatch.Observe(float64(len(batch)))
	now := time.Now().UnixMilli()
	sends := make([]pendingSend, len(batch))
	news := make([]store.NewMessage, 0, len(batch))
	members := make(map[[2]string]bool)
	var pairs [][2]string // the keys of members, in order
	storeCtx, cancel := context.WithTimeout(ctx, l.cfg.StoreTimeout)
	defer cancel()

	for i, m := range batch {
		s := &sends[i]
		s.msg, s.index = m, -1
		h := m.Headers()
		s.room = subjects.RoomOfStored(m.Subject())
		s.user, s.reply = h.Get(subjects.HeaderUser), h.Get(subjects.HeaderReply)
		nonce, nonceOK := subjects.DecodeNonce(h.Get(subjects.HeaderNonce))
		s.nonce = nonce
		kind, ref, markOK := schema.ParseMarkHeader(h.Get(subjects.HeaderMark))
		s.kind, s.ref = kind, ref
		// The sender is the subject of the token the gateway forwarded, judged at the
		// time the gateway published the send: a NATS credential alone cannot send as
		// anyone. Laneim-User must name the same user (the gateway's ack key).
		claims, tokenErr := l.tokens.VerifyAt(h.Get(subjects.HeaderToken), publishedAt(m))
		// Gateways validate before publishing; this guards against anything else that
		// can publish on im.in.* (an operator, a buggy client of NATS).
		switch {
		case tokenErr != nil:
			s.err = schema.AsError(tokenErr)
			continue
		case claims.User != s.user:
			s.err = schema.Errorf(schema.CodeForbidden, "the token is not %s's", s.user)
			continue
		case !schema.ValidID(s.room) || !nonceOK || !schema.ValidNonce(s.nonce):
			s.err = schema.Errorf(schema.CodeBadRequest, "invalid room or nonce")
			continue
		case !markOK:
			s.err = schema.Errorf(schema.CodeBadRequest, "invalid edit or delete")
			continue
		case s.kind != schema.KindDelete && (!json.Valid(m.Data()) || !utf8.Valid(m.Data())):
			s.err = schema.Errorf(schema.CodeBadRequest, "body is not UTF-8 JSON")
			continue
		}
		if s.server = claims.Server; s.server {
			continue
		}
		key := [2]string{s.room, s.user}
		if _, seen := members[key]; !seen {
			members[key] = false
			pairs = append(pairs, key)
		}
	}
	if err := l.checkMembers(storeCtx, pairs, members); err != nil {
		return fmt.Errorf("membership check: %w", err)
	}
	// The mutes of the rooms members send or edit in (a delete is never refused
	// for a mute): from the mute table, one query for the rooms it lacks.
	var muteRooms []string
	seenRooms := make(map[string]struct{}, len(pairs))
	for _, p := range pairs {
		if _, seen := seenRooms[p[0]]; members[p] && !seen {
			seenRooms[p[0]] = struct{}{}
			muteRooms = append(muteRooms, p[0])
		}
	}
	roomMutes, err := l.roomMutes(storeCtx, muteRooms, time.UnixMilli(now))
	if err != nil {
		return fmt.Errorf("mute check: %w", err)
	}
	for i := range sends {
		s := &sends[i]
		if s.err != nil {
			continue
		}
		if s.server {
			// GetRoom is cached: a server posting into a room costs no store read.
			if _, err := l.serverRoom(storeCtx, s.room); errors.Is(err, schema.ErrNotFound) {
				s.err = schema.AsError(err)
				continue
			} else if err != nil {
				return fmt.Errorf("room %s: %w", s.room, err)
			}
		} else if !members[[2]string{s.room, s.user}] {
			s.err = schema.Errorf(schema.CodeForbidden, "not a member of room %s", s.room)
			continue
		}
		// A server's send is the product's own, with owner rights: no mute holds it.
		if s.kind != schema.KindDelete && !s.server {
			if muted, until := mutedUntil(roomMutes[s.room], s.user, now); muted {
				s.err = mutedError(s.room, until)
				continue
			}
		}
		s.index = len(news)
		nm := store.NewMessage{Room: s.room, User: s.user, Nonce: s.nonce, Ts: now, Body: s.msg.Data()}
		if s.kind.Targets() {
			nm.Kind, nm.Ref = s.kind, s.ref
			if s.kind == schema.KindDelete {
				nm.Body = nil
				// Whether the sender may delete others' messages (a server may, in
				// the room it found above); the store knows whose the message is.
				// Deletes are rare: two lookups each.
				nm.Moderator = s.server
				if !s.server {
					room, err := l.meta.GetRoom(storeCtx, s.room)
					if errors.Is(err, schema.ErrNotFound) {
						s.err, s.index = schema.AsError(noAccess(s.room)), -1
						continue
					}
					if err != nil {
						return fmt.Errorf("delete in room %s: %w", s.room, err)
					}
					if nm.Moderator, err = l.mayModerate(storeCtx, room, s.user); err != nil {
						return fmt.Errorf("delete in room %s: %w", s.room, err)
					}
				}
			}
		}
		news = append(news, nm)
	}

	var stored []store.Appended
	if len(news) > 0 {
		start := time.Now()
		var err error
		stored, err = l.msgs.Append(storeCtx, news)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		metricAppendSeconds.Observe(time.Since(start).Seconds())
	}

	// The messages are durable: acks can go out now, before IM_OUT confirms. They go
	// as one message per sending gateway.
	acks := make(map[string][]schema.SendAck, 2)
	futures := make([]jetstream.PubAckFuture, 0, len(stored))
	for i := range sends {
		s := &sends[i]
		ack := schema.SendAck{Room: s.room, User: s.user, Nonce: s.nonce, Err: s.err}
		if s.err != nil {
			metricRefused.WithLabelValues(s.err.Code).Inc()
		} else if a := stored[s.index]; a.Err != nil {
			ack.Err = a.Err
			metricRefused.WithLabelValues(a.Err.Code).Inc()
		} else {
			ack.Seq, ack.Ts = a.Seq, a.Ts
			switch {
			case !a.New:
				metricDuplicates.Inc()
			case a.Kind == schema.KindEdit:
				metricEdits.WithLabelValues("edit").Inc()
			case a.Kind == schema.KindDelete:
				metricEdits.WithLabelValues("delete").Inc()
			default:
				metricStored.Inc()
			}
			// Re-publish duplicates too: they heal a crash between the store write and
			// IM_OUT; pusher drops seqs it has already published.
			f, err := l.js.PublishMsgAsync(outMsg(a.Message))
			if err != nil {
				return fmt.Errorf("publish IM_OUT: %w", err)
			}
			futures = append(futures, f)
			// A send that mentions users goes to the offline hook too, awaited with
			// IM_OUT: durable before IM_IN is acked.
			mention, err := mentionMsg(a.Message, a.New, time.UnixMilli(now))
			if err != nil {
				return err
			}
			if mention != nil {
				f, err := l.js.PublishMsgAsync(mention)
				if err != nil {
					return fmt.Errorf("publish IM_MENTIONS: %w", err)
				}
				futures = append(futures, f)
				metricMentions.Inc()
			}
		}
		if s.reply != "" {
			acks[s.reply] = append(acks[s.reply], ack)
		}
	}
	for subject, batch := range acks {
		l.replyAcks(subject, batch)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("IM_OUT or IM_MENTIONS ack: %w", err)
		case <-storeCtx.Done():
			return fmt.Errorf("IM_OUT ack: %w", storeCtx.Err())
		}
	}
	if err := batch[len(batch)-1].Ack(); err != nil {
		l.cfg.Logger.Warn().Err(err).Msg("ack IM_IN batch")
	}
	return nil
}

// publishedAt is when a send reached IM_IN, or now if its metadata cannot say.
func publishedAt(m jetstream.Msg) time.Time {
	if md, err := m.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Now()
}

// outMsg encodes a stored message for IM_OUT: the body as data, the rest in headers,
// so pusher copies the body into frames without decoding it. Its message id makes
// JetStream drop a re-publish of the same stored message within the duplicate window;
// the ts in it tells seq 1 of a room created again from seq 1 of the deleted one.
func outMsg(m schema.Message) *nats.Msg {
	out := nats.NewMsg(subjects.OutT(m.Room))
	seq := strconv.FormatInt(m.Seq, 10)
	ts := strconv.FormatInt(m.Ts, 10)
	out.Header.Set(subjects.HeaderMsgID, m.Room+":"+seq+":"+ts)
	out.Header.Set(subjects.HeaderSeq, seq)
	out.Header.Set(subjects.HeaderTs, ts)
	out.Header.Set(subjects.HeaderUser, m.User)
	if m.Kind.Targets() {
		out.Header.Set(subjects.HeaderMark, schema.MarkHeader(m.Kind, m.Ref))
	}
	out.Data = m.Body
	return out
}

// replyAcks publishes a gateway's acks of one batch as one JSON array.
func (l *Logic) replyAcks(subject string, acks []schema.SendAck) {
	data, failed := encodeAcks(acks, json.Marshal)
	if failed > 0 {
		metricAckEncodeErrors.Add(float64(failed))
		l.cfg.Logger.Error().Int("acks", failed).Str("subject", subject).Msg("acks that could not be encoded answered as internal errors")
	}
	if err := l.nc.Publish(subject, data); err != nil {
		l.cfg.Logger.Warn().Err(err).Str("subject", subject).Msg("reply acks")
	}
}

// encodeAcks encodes acks as one JSON array with marshal. An ack that cannot be
// encoded goes as an internal error for its send instead, so that the client hears at
// once rather than at the gateway's 10 s send timeout (the message is stored all the
// same: a retry with its nonce gets its seq). failed counts those.
func encodeAcks(acks []schema.SendAck, marshal func(any) ([]byte, error)) (data []byte, failed int) {
	if data, err := marshal(acks); err == nil {
		return data, 0
	}
	data = append(data, '[')
	for _, ack := range acks {
		one, err := marshal(ack)
		if err != nil {
			failed++
			one, err = marshal(schema.SendAck{Room: ack.Room, User: ack.User, Nonce: ack.Nonce,
				Err: schema.Errorf(schema.CodeInternal, "the ack could not be encoded; retry with the same nonce")})
			if err != nil {
				continue // its ids cannot be encoded either: the send times out
			}
		}
		if len(data) > 1 {
			data = append(data, ',')
		}
		data = append(data, one...)
	}
	return append(data, ']'), failed
}
