package logic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/subjects"
)

// metaPartitions is the stream metadata key recording the partition count. The count
// is fixed when a stream is created: changing it would move rooms between partitions
// while messages are in flight, and two logic nodes could then write one room.
const metaPartitions = "laneim_partitions"

// StreamsConfig sizes the two streams.
type StreamsConfig struct {
	// Partitions of IM_IN and IM_OUT for a new stream. Default 8.
	Partitions int
	// DedupeWindow is IM_IN's duplicate window. Every Nats-Msg-Id in the window costs
	// server memory (about 100 bytes at thousands of sends a second), so it is kept
	// short; the message store's (room, user, nonce) index keeps retries idempotent
	// beyond it. Default 30s.
	DedupeWindow time.Duration
	// OutMaxAge bounds how long stored messages stay in IM_OUT. Default 1h.
	OutMaxAge time.Duration
	// Replicas for a cluster (JetStream R3). Default 1.
	Replicas int
	// Memory keeps the streams in memory (tests). Default file storage.
	Memory bool
	// HookMaxAge bounds how long IM_MENTIONS and IM_NOTIFY keep a message: a
	// notifier or a backend down for longer loses the older ones. Default 24h.
	HookMaxAge time.Duration
}

func (c *StreamsConfig) defaults() {
	if c.Partitions <= 0 {
		c.Partitions = 8
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 30 * time.Second
	}
	if c.OutMaxAge <= 0 {
		c.OutMaxAge = time.Hour
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.HookMaxAge <= 0 {
		c.HookMaxAge = 24 * time.Hour
	}
}

// hookDedupeWindow is IM_MENTIONS's and IM_NOTIFY's duplicate window. Logic re-publishes
// the mention of a send it finds already stored while the send is younger than
// mentionRepublishAge, healing a crash between the store write and the publication;
// the window must outlast that age, and every id in it costs the server about 100
// bytes, for mention-carrying messages only.
const hookDedupeWindow = 2 * time.Minute

// mentionRepublishAge: see hookDedupeWindow. A crashed logic node's sends come back
// after IM_IN's ack wait (30s) and a partition takeover (seconds).
const mentionRepublishAge = time.Minute

// EnsureStreams creates IM_IN and IM_OUT, and the offline hook's IM_MENTIONS and
// IM_NOTIFY, if they are missing and returns the partition count in force, which is
// the existing streams' when they were created before.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) (int, error) {
	cfg.defaults()
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	meta := map[string]string{metaPartitions: strconv.Itoa(cfg.Partitions)}
	in := jetstream.StreamConfig{
		Name:        subjects.StreamIn,
		Description: "laneIM sends accepted by gateways, waiting for logic",
		Subjects:    []string{subjects.In},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: subjects.In, Destination: subjects.InTransform(cfg.Partitions),
		},
		// Interest retention: a message goes once logic's partition consumer has
		// acked it (work-queue retention would forbid acking a batch at once).
		Retention:  jetstream.InterestPolicy,
		Storage:    storage,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.DedupeWindow,
		MaxAge:     24 * time.Hour,
		Discard:    jetstream.DiscardOld,
		Metadata:   meta,
	}
	out := jetstream.StreamConfig{
		Name:        subjects.StreamOut,
		Description: "laneIM stored messages, on their way to pusher",
		Subjects:    []string{subjects.Out},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: subjects.Out, Destination: subjects.OutTransform(cfg.Partitions),
		},
		Retention:  jetstream.LimitsPolicy,
		Storage:    storage,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.DedupeWindow,
		MaxAge:     cfg.OutMaxAge,
		Discard:    jetstream.DiscardOld,
		Metadata:   meta,
	}
	// The offline hook's streams first: a pusher waits for IM_OUT, then finds them.
	for _, sc := range hookStreams(cfg, storage) {
		if _, err := openStream(ctx, js, sc); err != nil {
			return 0, err
		}
	}
	partitions := 0
	for _, sc := range []jetstream.StreamConfig{in, out} {
		n, err := ensureStream(ctx, js, sc)
		if err != nil {
			return 0, err
		}
		if partitions != 0 && n != partitions {
			return 0, fmt.Errorf("streams %s and %s disagree on partitions (%d, %d)", subjects.StreamIn, subjects.StreamOut, partitions, n)
		}
		partitions = n
	}
	return partitions, nil
}

// ensureStream opens the stream, or creates it. Logic nodes starting together race to
// create it: JetStream accepts a second create of the same config, and refuses one of
// another (another node's partition count) as a name in use, on which the winner's
// stream is opened and its partition count wins.
func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) (int, error) {
	s, err := openStream(ctx, js, sc)
	if err != nil {
		return 0, err
	}
	return StreamPartitions(s.CachedInfo().Config)
}

// openStream opens the stream, or creates it with sc.
func openStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, sc.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", sc.Name, err)
	}
	return s, nil
}

// hookStreams are the offline hook's streams (docs/protocol.md, "Offline hook"):
// IM_MENTIONS, the sends that mention users, which pusher nodes' notifiers share one
// consumer of; IM_NOTIFY, the members they found offline or passive, which the
// product's backend consumes. Limits retention: IM_NOTIFY keeps its messages for any
// number of backend consumers, and IM_MENTIONS for an operator to replay. Both are
// deduplicated by room:seq:ts.
func hookStreams(cfg StreamsConfig, storage jetstream.StorageType) []jetstream.StreamConfig {
	stream := func(name, description, subject string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: description, Subjects: []string{subject},
			Retention: jetstream.LimitsPolicy, Storage: storage, Replicas: cfg.Replicas,
			Duplicates: hookDedupeWindow, MaxAge: cfg.HookMaxAge, Discard: jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		stream(subjects.StreamMentions, "laneIM stored sends that mention users, on their way to the notifier", subjects.Mentions),
		stream(subjects.StreamNotify, "laneIM mentioned members who were offline or passive, for the product's push notifications", subjects.Notify),
	}
}

// StreamPartitions reads the partition count recorded on a laneIM stream.
func StreamPartitions(sc jetstream.StreamConfig) (int, error) {
	n, err := strconv.Atoi(sc.Metadata[metaPartitions])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("stream %s has no valid %s metadata", sc.Name, metaPartitions)
	}
	return n, nil
}

// WaitStreams waits until IM_IN and IM_OUT exist (created by a logic node) and returns
// their partition count. Pusher and gateways call it at start.
func WaitStreams(ctx context.Context, js jetstream.JetStream) (int, error) {
	for {
		s, err := js.Stream(ctx, subjects.StreamOut)
		if err == nil {
			return StreamPartitions(s.CachedInfo().Config)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for stream %s: %w", subjects.StreamOut, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
