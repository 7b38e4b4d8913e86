package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// senderConfig describes one sending connection.
type senderConfig struct {
	index    int // sender number: its series shard and its source address slot
	user     string
	room     string
	rate     float64       // sends a second; 0: as fast as inflight allows
	inflight int           // sends awaiting their ack at most
	count    int64         // stop after count sends; 0: no limit
	edits    float64       // the share of sends that are edits and deletes, alternately
	duration time.Duration // stop after duration; 0: no limit
	// offset delays the schedule: message k is due at offset + k/rate. Senders of a
	// total rate spread over many of them take offsets across one interval, so that
	// the total is smooth rather than a burst from all of them at once.
	offset time.Duration
}

// sender sends messages whose body is the send time in Unix microseconds, pipelined:
// it does not wait for an ack before the next send, up to inflight unacked sends. The
// schedule is open loop at a fixed rate: message k is due at k/rate seconds, and a
// sender that fell behind sends what is due at once. When the in-flight cap stops it,
// the body still carries the actual send time, so latency is not understated.
type sender struct {
	wsConn
	cfg    senderConfig // set once
	acks   *series      // ack latency by ack second, shared by all senders
	slots  chan struct{}
	sentAt []atomic.Int64 // by rid & mask: Unix µs of the send
	kinds  []atomic.Int32 // by rid & mask: what the send was (sendPlain, ...)
	mask   int64

	// plain holds the seqs of the sender's acked plain messages, oldest first, that
	// an edit (the newest) or a delete (the oldest, which leaves) may name.
	plainMu sync.Mutex
	plain   []int64

	sent      atomic.Int64
	edited    atomic.Int64 // edits sent
	deleted   atomic.Int64 // deletes sent
	acked     atomic.Int64
	failed    atomic.Int64 // sends answered with an error
	limited   atomic.Bool  // the server answered rate_limited: the run is void
	maxSeq    atomic.Int64
	firstNs   atomic.Int64 // Unix ns of the first send
	lastNs    atomic.Int64 // Unix ns of the last send
	lastAckNs atomic.Int64

	readerDone chan struct{}
	readErr    error // set by the read loop before readerDone closes

	errMu  sync.Mutex
	errors map[string]int // guarded by errMu: error codes answered
}

func newSender(cfg senderConfig, acks *series) *sender {
	cfg.inflight = max(cfg.inflight, 1)
	// Twice the in-flight cap: acks may come out of order, and a freed slot must not
	// let a new send overwrite the time of one still in flight.
	ring := 1
	for ring < 2*cfg.inflight {
		ring <<= 1
	}
	return &sender{
		cfg: cfg, acks: acks,
		slots:      make(chan struct{}, cfg.inflight),
		sentAt:     make([]atomic.Int64, ring),
		kinds:      make([]atomic.Int32, ring),
		mask:       int64(ring - 1),
		readerDone: make(chan struct{}),
		errors:     make(map[string]int),
	}
}

// connect opens the sender's connection (source address slot index) and starts its
// read loop.
func (s *sender) connect(ctx context.Context, t *target, d *dialers, slot int, beats *heartbeater) error {
	token, err := t.token(ctx, s.cfg.user)
	if err != nil {
		return err
	}
	ws, hb, err := d.dialIdentified(ctx, slot, t.wsURLs[s.cfg.index%len(t.wsURLs)], token)
	if err != nil {
		return fmt.Errorf("sender %s: %w", s.cfg.user, err)
	}
	s.ws = ws
	s.live.Store(true)
	beats.add(&s.wsConn, hb)
	go s.readLoop()
	return nil
}

// stallTimeout is how long a sender waits for an in-flight slot before giving up: the
// server answers every send within its send timeout (10 s by default).
const stallTimeout = 30 * time.Second

var errConnClosed = errors.New("connection closed by the server")

// run sends until count or duration is reached.
func (s *sender) run(ctx context.Context) error {
	start := time.Now()
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	frame := make([]byte, 0, 128)
	var k int64
	var editDue float64 // accumulates cfg.edits per send; an edit or delete at each whole one
	nextDelete := false
	for {
		if s.cfg.count > 0 && k >= s.cfg.count {
			return nil
		}
		if s.limited.Load() {
			// Refused sends free their slot at once, so a rate-limited run would
			// measure how fast the server says no.
			return fmt.Errorf("sender %s: the server answered rate_limited: %s", s.cfg.user, rateLimitHint)
		}
		elapsed := time.Since(start)
		if s.cfg.duration > 0 && elapsed >= s.cfg.duration {
			return nil
		}
		if s.cfg.rate > 0 {
			due := s.cfg.offset + time.Duration(float64(k)/s.cfg.rate*float64(time.Second))
			if due > elapsed {
				wait := due - elapsed
				if s.cfg.duration > 0 {
					wait = min(wait, s.cfg.duration-elapsed)
				}
				if err := sleepCtx(ctx, wait); err != nil {
					return err
				}
				continue
			}
		}
		select {
		case s.slots <- struct{}{}:
		default:
			stall.Reset(stallTimeout)
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			case <-s.readerDone:
				return fmt.Errorf("sender %s: %w", s.cfg.user, s.readErr)
			case <-stall.C:
				return fmt.Errorf("sender %s: %d sends without an ack for %s", s.cfg.user, cap(s.slots), stallTimeout)
			}
		}
		k++
		now := time.Now()
		s.sentAt[k&s.mask].Store(now.UnixMicro())
		kind, target := sendPlain, int64(0)
		if editDue += s.cfg.edits; editDue >= 1 {
			if kind, target = s.pickTarget(nextDelete); kind != sendPlain {
				editDue--
				nextDelete = !nextDelete
			}
		}
		s.kinds[k&s.mask].Store(kind)
		switch kind {
		case sendEdit:
			frame = appendEdit(frame[:0], k, s.cfg.room, target, now.UnixMicro())
			s.edited.Add(1)
		case sendDelete:
			frame = appendDelete(frame[:0], k, s.cfg.room, target)
			s.deleted.Add(1)
		default:
			frame = appendSend(frame[:0], k, s.cfg.room, now.UnixMicro())
		}
		if err := s.write(frame); err != nil {
			return fmt.Errorf("sender %s: send: %w", s.cfg.user, err)
		}
		s.firstNs.CompareAndSwap(0, now.UnixNano())
		s.lastNs.Store(now.UnixNano())
		s.sent.Add(1)
	}
}

// What a send of the sender is.
const (
	sendPlain int32 = iota
	sendEdit
	sendDelete
)

// pickTarget chooses an edit of the newest acked plain message or a delete of the
// oldest, or a plain send while fewer than two are acked (so that no edit names a
// message a delete took).
func (s *sender) pickTarget(del bool) (int32, int64) {
	s.plainMu.Lock()
	defer s.plainMu.Unlock()
	if len(s.plain) < 2 {
		return sendPlain, 0
	}
	if del {
		seq := s.plain[0]
		s.plain = s.plain[1:]
		return sendDelete, seq
	}
	return sendEdit, s.plain[len(s.plain)-1]
}

// appendEdit appends {"op":"edit","rid":k,"d":{"room":room,"nonce":"k","seq":seq,"body":us}}.
func appendEdit(dst []byte, k int64, room string, seq, us int64) []byte {
	dst = appendOpHead(dst, "edit", k, room)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"body":`...)
	dst = strconv.AppendInt(dst, us, 10)
	return append(dst, "}}"...)
}

// appendDelete appends {"op":"delete","rid":k,"d":{"room":room,"nonce":"k","seq":seq}}.
func appendDelete(dst []byte, k int64, room string, seq int64) []byte {
	dst = appendOpHead(dst, "delete", k, room)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	return append(dst, "}}"...)
}

// appendOpHead appends {"op":op,"rid":k,"d":{"room":room,"nonce":"k up to the nonce's
// closing quote.
func appendOpHead(dst []byte, op string, k int64, room string) []byte {
	dst = append(dst, `{"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","rid":`...)
	dst = strconv.AppendInt(dst, k, 10)
	dst = append(dst, `,"d":{"room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","nonce":"`...)
	return strconv.AppendInt(dst, k, 10)
}

// appendSend appends {"op":"send","rid":k,"d":{"room":room,"nonce":"k","body":us}}.
// The nonce is unique per user, and every bench user is new.
func appendSend(dst []byte, k int64, room string, us int64) []byte {
	dst = appendOpHead(dst, "send", k, room)
	dst = append(dst, `","body":`...)
	dst = strconv.AppendInt(dst, us, 10)
	return append(dst, "}}"...)
}

// awaitAcks waits until no send is in flight, at most timeout.
func (s *sender) awaitAcks(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for len(s.slots) > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-s.readerDone:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

func (s *sender) readLoop() {
	defer close(s.readerDone)
	defer s.live.Store(false)
	buf := make([]byte, 0, 1024)
	for {
		_, r, err := s.ws.NextReader()
		var frame []byte
		if err == nil {
			frame, err = readFrame(r, &buf)
		}
		if err != nil {
			s.readErr = explainCloseError(err)
			return
		}
		if rid, seq, ok := parseAck(frame); ok {
			now := time.Now()
			us := now.UnixMicro()
			s.acks.record(s.cfg.index, us/1e6, us-s.sentAt[rid&s.mask].Load())
			for {
				cur := s.maxSeq.Load()
				if seq <= cur || s.maxSeq.CompareAndSwap(cur, seq) {
					break
				}
			}
			if s.cfg.edits > 0 && s.kinds[rid&s.mask].Load() == sendPlain {
				s.plainMu.Lock()
				s.plain = append(s.plain, seq)
				if len(s.plain) > 1024 {
					s.plain = append(s.plain[:0], s.plain[len(s.plain)-512:]...)
				}
				s.plainMu.Unlock()
			}
			s.lastAckNs.Store(now.UnixNano())
			s.acked.Add(1)
			s.release()
			continue
		}
		if rid, hasRid, code, ok := parseError(frame); ok {
			s.errMu.Lock()
			s.errors[string(code)]++
			s.errMu.Unlock()
			if string(code) == "rate_limited" {
				s.limited.Store(true)
			}
			if hasRid && rid > 0 {
				s.failed.Add(1)
				s.release()
			}
		}
		// ticks of the room, heartbeat acks: nothing to do.
	}
}

func (s *sender) release() {
	select {
	case <-s.slots:
	default:
	}
}

// errorCounts returns a copy of the error codes answered.
func (s *sender) errorCounts() map[string]int {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	out := make(map[string]int, len(s.errors))
	for code, n := range s.errors {
		out[code] = n
	}
	return out
}

// closeSenders closes every sender's connection and waits for the read loops, at most
// 10s.
func closeSenders(senders []*sender) {
	for _, s := range senders {
		if s.ws != nil {
			s.shutdown()
		}
	}
	timeout := time.After(10 * time.Second)
	for _, s := range senders {
		if s.ws == nil {
			continue
		}
		select {
		case <-s.readerDone:
		case <-timeout:
			return
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
