package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// sends publishes sends to IM_IN and matches logic's acks to the waiting callers.
// Several waiters can share one (room, user, nonce): a client retrying before the
// first attempt was acked gets the same seq for both.
type sends struct {
	gw      *Gateway
	js      jetstream.JetStream
	ackSub  *nats.Subscription
	stopped chan struct{}

	mu      sync.Mutex
	waiting map[sendKey]*sendWaiters // guarded by mu
}

type sendKey struct{ room, user, nonce string }

type sendWaiters struct {
	token    string // the sender's token, forwarded to logic
	deadline time.Time
	done     []func(schema.SendAck)
}

func newSends(g *Gateway) (*sends, error) {
	s := &sends{gw: g, waiting: make(map[sendKey]*sendWaiters), stopped: make(chan struct{})}
	js, err := jetstream.New(g.nc,
		jetstream.WithPublishAsyncMaxPending(16384),
		jetstream.WithPublishAsyncAckHandler(s.onPubAck),
		jetstream.WithPublishAsyncErrHandler(s.onPubErr))
	if err != nil {
		return nil, err
	}
	s.js = js
	return s, nil
}

func (s *sends) start(ctx context.Context) error {
	sub, err := s.gw.nc.Subscribe(subjects.GatewayAcksT(s.gw.cfg.ID), s.onAck)
	if err != nil {
		return err
	}
	s.ackSub = sub
	s.gw.wg.Go(func() { s.expireLoop(ctx) })
	return nil
}

func (s *sends) stop() {
	if s.ackSub != nil {
		_ = s.ackSub.Unsubscribe()
	}
}

// submit publishes a send of user, whose token is token, and calls done exactly once
// with its ack or error. mark is "" for a plain message, or names the message an edit
// or a delete acts on (schema.MarkHeader); edits and deletes share the sends' nonces.
func (s *sends) submit(room, user, token, nonce, mark string, body json.RawMessage, done func(schema.SendAck)) {
	key := sendKey{room, user, nonce}
	s.mu.Lock()
	w := s.waiting[key]
	inFlight := w != nil
	if !inFlight {
		w = &sendWaiters{token: token}
		s.waiting[key] = w
	}
	w.deadline = time.Now().Add(s.gw.cfg.SendTimeout)
	w.done = append(w.done, done)
	s.mu.Unlock()
	if inFlight {
		return
	}
	msg := nats.NewMsg(subjects.InT(room))
	msg.Header.Set(subjects.HeaderMsgID, subjects.MsgIDT(room, user, nonce))
	msg.Header.Set(subjects.HeaderUser, user)
	msg.Header.Set(subjects.HeaderToken, token)
	msg.Header.Set(subjects.HeaderNonce, subjects.EncodeNonce(nonce))
	msg.Header.Set(subjects.HeaderReply, subjects.GatewayAcksT(s.gw.cfg.ID))
	if mark != "" {
		msg.Header.Set(subjects.HeaderMark, mark)
	}
	msg.Data = body
	if _, err := s.js.PublishMsgAsync(msg); err != nil {
		s.gw.hotWarn().Err(err).Msg("publish send")
		s.fail(key, schema.Errorf(schema.CodeUnavailable, "ingest unavailable, retry with the same nonce"))
	}
}

// onAck receives logic's replies for stored (or refused) sends: a JSON array of the
// acks of one ingest batch, or (from a logic node of an earlier version, during a
// rolling upgrade) one ack object.
func (s *sends) onAck(m *nats.Msg) {
	var acks []schema.SendAck
	var err error
	if len(m.Data) > 0 && m.Data[0] == '{' {
		acks = make([]schema.SendAck, 1)
		err = json.Unmarshal(m.Data, &acks[0])
	} else {
		err = json.Unmarshal(m.Data, &acks)
	}
	if err != nil {
		s.gw.hotWarn().Err(err).Msg("malformed acks from logic")
		return
	}
	for _, ack := range acks {
		s.complete(sendKey{ack.Room, ack.User, ack.Nonce}, ack)
	}
}

// onPubAck runs for every IM_IN publish JetStream accepted. A duplicate means an
// earlier attempt was accepted, maybe through another gateway whose ack subject logic
// will answer: look the nonce up instead.
func (s *sends) onPubAck(_ jetstream.JetStream, m *nats.Msg, pa *jetstream.PubAck) {
	if !pa.Duplicate {
		return
	}
	s.gw.wg.Go(func() { s.lookup(publishedKey(m)) })
}

func (s *sends) onPubErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	s.gw.hotWarn().Err(err).Str("subject", m.Subject).Msg("IM_IN publish failed")
	s.fail(publishedKey(m), schema.Errorf(schema.CodeUnavailable, "ingest unavailable, retry with the same nonce"))
}

// publishedKey is the key of a send this gateway published on IM_IN.
func publishedKey(m *nats.Msg) sendKey {
	nonce, _ := subjects.DecodeNonce(m.Header.Get(subjects.HeaderNonce))
	return sendKey{subjects.RoomOfStored(m.Subject), m.Header.Get(subjects.HeaderUser), nonce}
}

// lookup polls logic for a duplicate's stored seq until it is stored or the send
// times out.
func (s *sends) lookup(key sendKey) {
	delay := 20 * time.Millisecond
	for {
		s.mu.Lock()
		w := s.waiting[key]
		s.mu.Unlock()
		if w == nil {
			return // answered meanwhile
		}
		ctx, cancel := context.WithTimeout(withToken(context.Background(), w.token), s.gw.cfg.RequestTimeout)
		var reply schema.NonceLookupReply
		err := s.gw.call(ctx, subjects.SvcNonceLookup, schema.NonceLookupReq{Room: key.room, Nonce: key.nonce}, &reply)
		cancel()
		if err == nil && reply.Found {
			s.complete(key, schema.SendAck{Room: key.room, User: key.user, Nonce: key.nonce, Seq: reply.Seq, Ts: reply.Ts})
			return
		}
		if time.Now().After(w.deadline) {
			return // expireLoop answers it
		}
		time.Sleep(delay)
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func (s *sends) complete(key sendKey, ack schema.SendAck) {
	s.mu.Lock()
	w := s.waiting[key]
	delete(s.waiting, key)
	s.mu.Unlock()
	if w == nil {
		return
	}
	for _, done := range w.done {
		done(ack)
	}
}

func (s *sends) fail(key sendKey, e *schema.Error) {
	s.complete(key, schema.SendAck{Room: key.room, User: key.user, Nonce: key.nonce, Err: e})
}

// expireLoop fails sends that got no ack within SendTimeout with unavailable; the
// client retries with the same nonce and cannot store the message twice.
func (s *sends) expireLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var expired []sendKey
			s.mu.Lock()
			for key, w := range s.waiting {
				if now.After(w.deadline) {
					expired = append(expired, key)
				}
			}
			s.mu.Unlock()
			for _, key := range expired {
				metricSendTimeouts.Inc()
				s.fail(key, schema.Errorf(schema.CodeUnavailable, "no ack in time, retry with the same nonce"))
			}
		}
	}
}
