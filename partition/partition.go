package partition

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/subjects"
)

// Config describes one partition consumer.
type Config struct {
	Stream  string // stream name, set by the caller
	Durable string // durable consumer name, set by the caller
	Filter  string // the partition's stored-subject filter, set by the caller
	// BatchSize caps the messages handed to the handler at once. Default 256.
	BatchSize int
	// AckWait before the server redelivers an unacked message. Default 30s.
	AckWait time.Duration
	// PinnedTTL is how long a silent pinned node keeps its partition before the server
	// pins another. Default DefaultTTL, the group's key TTL: a dead owner's pin lapses
	// no later than its group key.
	PinnedTTL time.Duration
	// MaxLinger enables pacing: batches are handed over at most every interval, an
	// interval that grows with the partition's message rate (LingerPerMessage for
	// every message a second) up to MaxLinger. An idle partition hands its first
	// message over at once; a busy one merges a window's worth into one batch. Zero:
	// no pacing (every batch at once).
	MaxLinger        time.Duration
	LingerPerMessage time.Duration
	// Rate, when set, gives the pacing rate (messages a second) after a batch,
	// instead of the partition's smoothed message rate. Pusher gives its busiest
	// room's over the last second or two, so that a partition of many quiet rooms is
	// not paced like one busy room.
	Rate   func(batch []jetstream.Msg, now time.Time) float64
	Logger zerolog.Logger
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = DefaultTTL
	}
}

// pacer spaces batches out as Config.MaxLinger describes. Owned by Run's loop.
type pacer struct {
	last time.Time // when the last batch was handed over
	rate float64   // messages a second, smoothed
}

// wait is how long to linger before handing over a batch that starts now.
func (p *pacer) wait(cfg Config, now time.Time) time.Duration {
	if cfg.MaxLinger <= 0 || p.last.IsZero() {
		return 0
	}
	interval := min(cfg.MaxLinger, time.Duration(p.rate*float64(cfg.LingerPerMessage)))
	return p.last.Add(interval).Sub(now)
}

// handedAt records a batch handed over at now with the pacing rate rate.
func (p *pacer) handedAt(rate float64, now time.Time) {
	p.rate, p.last = rate, now
}

// handed records a batch of n messages handed over at now.
func (p *pacer) handed(n int, now time.Time) {
	if !p.last.IsZero() {
		// The rate over the time since the last batch, smoothed over a few batches;
		// a pause long enough brings it back near zero at the next message.
		elapsed := max(now.Sub(p.last).Seconds(), 0.001)
		p.rate = 0.7*p.rate + 0.3*(float64(n)/elapsed)
	}
	p.last = now
}

// Handler processes one batch, in stream order, and acks it by acking its last
// message (the consumer acks with AckAll). A handler that fails returns an error
// without acking, and Run hands it the same batch again after a pause: moving on
// would let the next batch's ack cover the failed one, and reorder the partition.
type Handler func(ctx context.Context, batch []jetstream.Msg) error

// Ensure creates or updates the partition's durable consumer. On an interest-retention
// stream the consumer must exist before anything is published, or the message has no
// interest and is dropped.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	cfg.defaults()
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		FilterSubject:  cfg.Filter,
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        cfg.AckWait,
		MaxAckPending:  cfg.BatchSize * 16,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{subjects.PriorityGroup},
		PinnedTTL:      cfg.PinnedTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	return cons, nil
}
