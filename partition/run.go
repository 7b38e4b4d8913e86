package partition

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/subjects"
)

const (
	// pinHeader carries the pin id on every message delivered to a pinned puller.
	pinHeader = "Nats-Pin-Id"
	// takeoverPoll is how often a takeover looks whether the partition is free: the
	// handover's latency once the previous owner has unpinned.
	takeoverPoll = 50 * time.Millisecond
	// releaseTimeout bounds the requests of a release (ack floor, unpin).
	releaseTimeout = 5 * time.Second
)

// errRestart ends a session that found a message ahead of it in another node's hands.
var errRestart = errors.New("partition held elsewhere; starting over")

// runner is one Run of one partition. Every field is owned by Run's goroutine.
type runner struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream
	cons   jetstream.Consumer
	handle Handler
	// lastHandled is the stream seq of the last message handed to the handler and
	// handled: a redelivery at or below it is skipped.
	lastHandled uint64
	// pin is the pin id of the messages of the last batch; a new one means the server
	// pinned this node anew.
	pin string
	// verify makes the next batch pass the contiguity check before it is handled: at
	// the start of a session, when the pin changed, and after a handler call long
	// enough for the pin to have lapsed and moved while this node was not pulling
	// (its buffered messages still carry the old pin).
	verify bool
	pace   pacer
	batch  []jetstream.Msg
}

// Run consumes the partition until ctx ends, then releases it (see the package doc).
// Failures (of opening the consumer as of a session) are retried with a growing pause;
// it returns early only when the connection is closed. Batches are adaptive: the first message is awaited, then whatever else has already
// arrived is taken without waiting, so an idle partition hands over single messages at
// once and a busy one fills batches.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, handle Handler) error {
	cfg.defaults()
	// Opening the consumer is retried like a session: a NATS server that has just
	// died leaves its streams without a leader for seconds, and a partition whose Run
	// returned would stay owned by this node with nobody consuming it.
	var cons jetstream.Consumer
	var stream jetstream.Stream
	for pause := takeoverPoll; ; pause = min(2*pause, 2*time.Second) {
		var err error
		cons, err = Ensure(ctx, js, cfg)
		if err == nil {
			stream, err = js.Stream(ctx, cfg.Stream)
			if err != nil {
				err = fmt.Errorf("stream %s: %w", cfg.Stream, err)
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil // given up before it started
		case err == nil:
		case errors.Is(err, nats.ErrConnectionClosed):
			return err
		default:
			cfg.Logger.Warn().Err(err).Str("consumer", cfg.Durable).Dur("retry_in", pause).Msg("partition consumer: cannot open it; trying again")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			continue
		}
		break
	}
	r := &runner{cfg: cfg, js: js, stream: stream, cons: cons, handle: handle,
		batch: make([]jetstream.Msg, 0, cfg.BatchSize)}
	for pause := takeoverPoll; ctx.Err() == nil; {
		err := r.takeover(ctx)
		if err == nil {
			err = r.session(ctx)
		}
		switch {
		case err == nil || ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrConnectionClosed):
			return err
		case errors.Is(err, errRestart):
			pause = takeoverPoll
		default:
			cfg.Logger.Warn().Err(err).Str("consumer", cfg.Durable).Dur("retry_in", pause).Msg("partition consumer; starting over")
			pause = min(2*pause, 2*time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	return nil
}

// takeover returns once the partition is free for this node: nobody is pinned, and
// nothing is ack-pending with anyone (whatever was is returned to the partition by a
// reset to the ack floor).
func (r *runner) takeover(ctx context.Context) error {
	began := time.Now()
	warned := false
	for {
		info, err := r.cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("consumer info %s: %w", r.cfg.Durable, err)
		}
		if pinnedTo(info) == "" {
			if info.NumAckPending > 0 {
				// Fetched by a node that released them (NAKed) or stopped pulling
				// for PinnedTTL: back to the stream, in order, before anything newer.
				if _, err := r.js.ResetConsumer(ctx, r.cfg.Stream, r.cfg.Durable); err != nil {
					return fmt.Errorf("reset %s: %w", r.cfg.Durable, err)
				}
				r.cfg.Logger.Info().Str("consumer", r.cfg.Durable).Int("returned", info.NumAckPending).
					Msg("messages left unacked by the partition's previous holder returned to it")
			}
			return nil
		}
		if !warned && time.Since(began) > 2*r.cfg.PinnedTTL {
			r.cfg.Logger.Warn().Str("consumer", r.cfg.Durable).Str("pinned", pinnedTo(info)).
				Msg("waiting for another node to release the partition")
			warned = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(takeoverPoll):
		}
	}
}

// pinnedTo is the pin id holding the consumer's priority group, "" when none.
func pinnedTo(info *jetstream.ConsumerInfo) string {
	for _, g := range info.PriorityGroups {
		if g.Group == subjects.PriorityGroup {
			return g.PinnedClientID
		}
	}
	return ""
}

// session pulls and handles batches until ctx ends (then releases the partition and
// returns nil) or until it finds the partition held elsewhere (errRestart).
func (r *runner) session(ctx context.Context) error {
	cfg := r.cfg
	// The channel holds what the pull subscription has fetched; its size bounds the
	// memory of a backlog and lets the handler take whole batches.
	incoming := make(chan jetstream.Msg, cfg.BatchSize*4)
	// stopped ends the callback's wait for room in incoming once the session ends:
	// what arrives after is NAKed.
	stopped := make(chan struct{})
	cc, err := r.cons.Consume(func(m jetstream.Msg) {
		select {
		case incoming <- m:
		case <-stopped:
			_ = m.Nak()
		}
	},
		jetstream.PullPriorityGroup(subjects.PriorityGroup),
		jetstream.PullMaxMessages(cfg.BatchSize*2),
		// A pull request renews the pin; an idle owner renews it well inside PinnedTTL.
		jetstream.PullExpiry(max(cfg.PinnedTTL/2, time.Second)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			cfg.Logger.Debug().Err(err).Str("consumer", cfg.Durable).Msg("consume")
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", cfg.Durable, err)
	}
	end := func(unhandled []jetstream.Msg, restart bool) error {
		close(stopped)
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(releaseTimeout):
		}
		r.release(unhandled, incoming, restart)
		if restart {
			return errRestart
		}
		return nil
	}

	r.verify = true
	for {
		batch := r.batch[:0]
		select {
		case <-ctx.Done():
			return end(nil, false)
		case m := <-incoming:
			batch = append(batch, m)
		}
		// Under load, wait out the pacing window collecting what arrives.
		if wait := r.pace.wait(cfg, time.Now()); wait > 0 {
			timer := time.NewTimer(wait)
		linger:
			for len(batch) < cfg.BatchSize {
				select {
				case m := <-incoming:
					batch = append(batch, m)
				case <-timer.C:
					break linger
				case <-ctx.Done():
					timer.Stop()
					return end(batch, false)
				}
			}
			timer.Stop()
		}
	fill:
		for len(batch) < cfg.BatchSize {
			select {
			case m := <-incoming:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		batch = r.skipHandled(batch)
		if len(batch) == 0 {
			continue
		}
		if pin := newPin(batch, r.pin); pin != "" {
			r.pin, r.verify = pin, true
		}
		if r.verify {
			ok, err := r.contiguous(ctx, batch[0])
			switch {
			case err != nil && ctx.Err() == nil:
				// Unchecked is unsafe to handle: start over, as for a mismatch.
				r.cfg.Logger.Warn().Err(err).Str("consumer", cfg.Durable).Msg("partition position unchecked; starting over")
				return end(batch, true)
			case err != nil:
				return end(batch, false)
			case !ok:
				metricRestarts.WithLabelValues(cfg.Durable).Inc()
				r.cfg.Logger.Info().Str("consumer", cfg.Durable).
					Msg("earlier messages of the partition are in another node's hands; starting over from its ack floor")
				return end(batch, true)
			}
			r.verify = false
		}
		started := time.Now()
		if cfg.Rate != nil {
			r.pace.handedAt(cfg.Rate(batch, started), started)
		} else {
			r.pace.handed(len(batch), started)
		}
		if !r.handleBatch(ctx, batch) {
			return end(batch, false)
		}
		r.lastHandled = streamSeq(batch[len(batch)-1])
		if time.Since(started) >= cfg.PinnedTTL/2 {
			r.verify = true
		}
	}
}

// handleBatch hands batch to the handler until it succeeds; false when ctx ended
// first. A batch the handler started is finished even when ctx ends meanwhile: a
// partition given up mid-batch would have it handled twice.
func (r *runner) handleBatch(ctx context.Context, batch []jetstream.Msg) bool {
	handlerCtx := context.WithoutCancel(ctx)
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := r.handle(handlerCtx, batch)
		if err == nil {
			// The last message's metadata says how many more wait behind it: the
			// partition's backlog, without a consumer-info request.
			if md, err := batch[len(batch)-1].Metadata(); err == nil {
				metricPending.WithLabelValues(r.cfg.Durable).Set(float64(md.NumPending))
			}
			return true
		}
		metricBatchFailures.WithLabelValues(r.cfg.Durable).Inc()
		r.cfg.Logger.Error().Err(err).Str("consumer", r.cfg.Durable).Int("batch", len(batch)).
			Dur("retry_in", backoff).Msg("batch failed; retrying it")
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
}

// skipHandled drops redeliveries from batch, keeping its stream seqs strictly
// increasing past lastHandled: a message at or below lastHandled was handled (its ack
// came too late), one at or below an earlier message of the batch is a second copy
// of it. Redeliveries come after newer messages, so they can sit anywhere in a batch.
// The highest of the handled ones is acked; a second copy of a message not handled
// yet is left to the batch's own ack.
func (r *runner) skipHandled(batch []jetstream.Msg) []jetstream.Msg {
	high := r.lastHandled
	var handled jetstream.Msg // the highest skipped message at or below lastHandled
	var handledSeq uint64
	kept := batch[:0]
	for _, m := range batch {
		seq := streamSeq(m)
		if seq == 0 {
			kept = append(kept, m) // no metadata: the handler reports it
			continue
		}
		if seq <= high {
			if seq <= r.lastHandled && seq > handledSeq {
				handled, handledSeq = m, seq
			}
			metricSkipped.WithLabelValues(r.cfg.Durable).Inc()
			continue
		}
		high = seq
		kept = append(kept, m)
	}
	if handled != nil {
		_ = handled.Ack()
	}
	return kept
}

// newPin is the pin id of the batch's messages when it differs from known, "" when
// the pin is unchanged or the consumer is not pinned.
func newPin(batch []jetstream.Msg, known string) string {
	for _, m := range batch {
		if pin := m.Headers().Get(pinHeader); pin != "" && pin != known {
			return pin
		}
	}
	return ""
}

// contiguous says whether first is the partition's first message past both the ack
// floor and what this run handled: nothing earlier is in anyone else's hands.
func (r *runner) contiguous(ctx context.Context, first jetstream.Msg) (bool, error) {
	info, err := r.cons.Info(ctx)
	if err != nil {
		return false, err
	}
	from := max(info.AckFloor.Stream, r.lastHandled) + 1
	next, err := r.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(r.cfg.Filter))
	if err != nil {
		return false, fmt.Errorf("first message of %s past %d: %w", r.cfg.Durable, from-1, err)
	}
	return next.Sequence == streamSeq(first), nil
}

// release gives the partition up after pulling stopped: the server's ack floor
// covers what was handled, the rest is NAKed in stream order, and the pin goes. With
// reset, the consumer is also reset to its ack floor (the session found messages in
// other hands), so that nothing this node fetched stays pending.
func (r *runner) release(unhandled []jetstream.Msg, incoming chan jetstream.Msg, reset bool) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	log := r.cfg.Logger.With().Str("consumer", r.cfg.Durable).Logger()
	// The handler's ack is a plain publish: wait until the server has applied it, or
	// the next owner's reset would return handled messages to the partition.
	for r.lastHandled > 0 {
		info, err := r.cons.Info(ctx)
		if err == nil && info.AckFloor.Stream >= r.lastHandled {
			break
		}
		if ctx.Err() != nil || errors.Is(err, nats.ErrConnectionClosed) {
			log.Warn().Uint64("handled", r.lastHandled).Msg("release: the last ack did not land; the next owner may handle a batch again")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	nak := func(m jetstream.Msg) {
		if streamSeq(m) > r.lastHandled {
			_ = m.Nak()
		}
	}
	for _, m := range unhandled {
		nak(m)
	}
	for drained := false; !drained; {
		select {
		case m := <-incoming:
			nak(m)
		default:
			drained = true
		}
	}
	info, err := r.cons.Info(ctx)
	if err != nil {
		log.Warn().Err(err).Msg("release: consumer info")
		r.pin = ""
		metricPending.DeleteLabelValues(r.cfg.Durable)
		return
	}
	pinned := pinnedTo(info)
	// Reset only while this node holds the pin: then nobody else pulls, and what is
	// pending is this node's or the stalled holder's whose messages it found ahead.
	// A node whose pin moved while it stalled is the stale one: it leaves the
	// partition to the pinned node as it is.
	if reset && pinned != "" && pinned == r.pin {
		if _, err := r.js.ResetConsumer(ctx, r.cfg.Stream, r.cfg.Durable); err != nil {
			log.Warn().Err(err).Msg("release: reset to the ack floor")
		}
	}
	// Unpin this node's pin, so that the next owner is pinned at once. When this node
	// never saw its pin (no message came), a pin may still be its own, from pull
	// requests that found nothing: unpin too. If it was another node's (two nodes
	// thought they owned the partition for a moment), that node re-pins at its next
	// pull and checks its position again.
	if pinned != "" && (pinned == r.pin || r.pin == "") {
		if err := r.stream.UnpinConsumer(ctx, r.cfg.Durable, subjects.PriorityGroup); err != nil {
			log.Warn().Err(err).Msg("release: unpin")
		}
	}
	r.pin = ""
	// The backlog is the next owner's to report now.
	metricPending.DeleteLabelValues(r.cfg.Durable)
}

// streamSeq is m's stream sequence, 0 when its metadata is unreadable.
func streamSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}
