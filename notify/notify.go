// Package notify is laneIM's offline hook (docs/protocol.md, "Offline hook"): it tells
// the product's backend which mentioned members were offline or passive when a
// message arrived, so that it can send push notifications.
//
// Logic publishes every stored send whose body mentions users on IM_MENTIONS (package
// logic, mentions.go). A Notifier, run by every pusher node, pulls from one durable
// consumer of that stream, shared by all of them, in batches. For a batch it asks
// logic which mentioned users are members (one request), then every gateway at once
// who of them has a connection subscribed to the message's room (active: nothing to
// do) or a connection at all (passive) or neither (offline) (one scatter-gather on
// im.presence.active, waiting for every live gateway of im_nodes or GatherTimeout). It
// publishes a Notification per message with someone offline or passive on IM_NOTIFY,
// which the backend consumes, and POSTs them to the webhook if one is configured. A
// message is acked once its notification is in IM_NOTIFY and the webhook took it or
// its retries ran out, so a crash redelivers it, and the ids (room:seq:ts) let IM_NOTIFY
// and the backend drop a second copy.
//
// None of this is on the send path: logic's only cost is one bytes.Contains per send
// and an async publish per mention-carrying send, and the notifier has its own
// consumer and goroutines beside pusher's fanout.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// Config configures a notifier. The zero value means the defaults.
type Config struct {
	// BatchSize caps the mentions handled at once: one membership check, one
	// question to the gateways, one POST. Default 100.
	BatchSize int
	// Linger is how long a batch waits for more mentions after its first. Default
	// 50ms.
	Linger time.Duration
	// Workers handle batches concurrently; a node holds at most Workers+2 batches
	// of mentions unacked (two pulled ahead). Default 4.
	Workers int
	// GatherTimeout is how long the gateways have to say who is active. Default
	// 250ms.
	GatherTimeout time.Duration
	// RequestTimeout bounds the membership check and each IM_NOTIFY publication.
	// Default 5s.
	RequestTimeout time.Duration
	// WebhookURL receives POSTs of notifications; empty: IM_NOTIFY only.
	WebhookURL string
	// WebhookSecret signs each POST's body (SignatureHeader). Required with
	// WebhookURL.
	WebhookSecret []byte
	// WebhookTimeout bounds one POST. Default 5s.
	WebhookTimeout time.Duration
	// WebhookRetryFor is how long one POST is retried before its notifications are
	// dropped from the webhook (they stay in IM_NOTIFY). Default 30s.
	WebhookRetryFor time.Duration
	// WebhookBackoff is the wait before the first retry, doubled each time up to 5s.
	// Default 250ms.
	WebhookBackoff time.Duration
	// WebhookMaxPerPost caps the notifications of one POST. Default 100.
	WebhookMaxPerPost int
	// Gateways counts the live gateways, whose answers a gather waits for. Default:
	// the gateway entries of im_nodes.
	Gateways func(ctx context.Context) (int, error)
	Logger   zerolog.Logger
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.Linger <= 0 {
		c.Linger = 50 * time.Millisecond
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.GatherTimeout <= 0 {
		c.GatherTimeout = 250 * time.Millisecond
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 5 * time.Second
	}
	if c.WebhookRetryFor <= 0 {
		c.WebhookRetryFor = 30 * time.Second
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = 250 * time.Millisecond
	}
	if c.WebhookMaxPerPost <= 0 {
		c.WebhookMaxPerPost = 100
	}
}

// ackWait is the consumer's. A mention may wait behind two batches' worth pulled
// ahead (the Consume buffer and n.in, BatchSize each) before a worker takes it, and a
// batch takes at worst the membership check and the IM_NOTIFY publications (each up
// to RequestTimeout), the gather, and with a webhook its whole retry budget and last
// POST: three of those, so that a mention in a node's hands is not redelivered to
// another meanwhile. A crash leaves its mentions waiting that long (a stop hands them
// back at once).
func (c *Config) ackWait() time.Duration {
	batch := 2*c.RequestTimeout + c.GatherTimeout
	if c.WebhookURL != "" {
		batch += c.WebhookRetryFor + c.WebhookTimeout + maxBackoff
	}
	return 3*batch + 10*time.Second
}

// Notifier is one pusher node's share of the offline hook.
type Notifier struct {
	cfg      Config              // set once at construction
	nc       *nats.Conn          // set once at construction
	js       jetstream.JetStream // set once at construction
	gateways *gatewayCount       // set once at construction
	webhook  *webhook            // set once at construction; nil without WebhookURL
	hotLog   *logging.RateLimited

	stop context.CancelFunc // set by Start
	in   chan jetstream.Msg // set by Start: pulled mentions on their way to the workers
	wg   sync.WaitGroup
}

// New returns a notifier over nc, whose NATS credential must be pusher's (or the
// operator's).
func New(cfg Config, nc *nats.Conn) (*Notifier, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	n := &Notifier{cfg: cfg, nc: nc, js: js, hotLog: logging.NewRateLimited(10*time.Second, 3)}
	if cfg.Gateways == nil {
		cfg.Gateways = func(ctx context.Context) (int, error) {
			list, err := nodes.List(ctx, js)
			count := 0
			for _, info := range list {
				if info.Role == subjects.RoleGateway {
					count++
				}
			}
			return count, err
		}
	}
	n.gateways = newGatewayCount(cfg.Gateways)
	if cfg.WebhookURL != "" {
		if len(cfg.WebhookSecret) == 0 {
			return nil, errors.New("notify: the offline webhook needs a secret to sign its POSTs")
		}
		n.webhook = &webhook{
			url: cfg.WebhookURL, secret: cfg.WebhookSecret,
			client:   &http.Client{Timeout: cfg.WebhookTimeout},
			retryFor: cfg.WebhookRetryFor, backoff: cfg.WebhookBackoff, maxPost: cfg.WebhookMaxPerPost,
			log: cfg.Logger,
		}
	}
	n.cfg = cfg
	return n, nil
}

// Start starts the notifier in the background and returns at once. It waits for
// IM_MENTIONS (a logic node creates it) and creates or updates the shared consumer,
// retrying every few seconds while it cannot (a logic node older than the hook, NATS
// permissions that predate it), then pulls. The fanout beside it never waits for any
// of this.
func (n *Notifier) Start() {
	runCtx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.in = make(chan jetstream.Msg, n.cfg.BatchSize)
	n.wg.Go(func() { n.pull(runCtx) })
	for range n.cfg.Workers {
		n.wg.Go(func() {
			for {
				batch := collect(runCtx, n.in, n.cfg.BatchSize, n.cfg.Linger)
				if len(batch) == 0 {
					return
				}
				n.handle(runCtx, batch)
			}
		})
	}
}

// startRetry is how often the notifier tries again to open its consumer.
const startRetry = 2 * time.Second

// pull opens the consumer and feeds n.in until ctx ends.
func (n *Notifier) pull(ctx context.Context) {
	var cc jetstream.ConsumeContext
	for attempt := 0; ; attempt++ {
		var err error
		if cc, err = n.consume(ctx); err == nil {
			break
		}
		if attempt%30 == 0 { // at once, then once a minute
			n.cfg.Logger.Warn().Err(err).Msg("notifier waiting for its stream and consumer; offline notifications wait in IM_MENTIONS")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(startRetry):
		}
	}
	n.cfg.Logger.Info().Bool("webhook", n.webhook != nil).Msg("notifier started")
	<-ctx.Done()
	cc.Stop()
}

// consume creates or updates the shared consumer of IM_MENTIONS and pulls from it into
// n.in, at most two batches ahead of the workers.
func (n *Notifier) consume(ctx context.Context) (jetstream.ConsumeContext, error) {
	reqCtx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	stream, err := n.js.Stream(reqCtx, subjects.StreamMentions)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", subjects.StreamMentions, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(reqCtx, jetstream.ConsumerConfig{
		Durable:       subjects.NotifyConsumer,
		Description:   "laneIM notifiers (pusher nodes): each mention to one of them",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       n.cfg.ackWait(),
		MaxAckPending: 16 * n.cfg.BatchSize * n.cfg.Workers,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", subjects.NotifyConsumer, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		select {
		case n.in <- msg:
		case <-ctx.Done():
			_ = msg.Nak() // stopping: another node takes it now rather than after the ack wait
		}
	}, jetstream.PullMaxMessages(n.cfg.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", subjects.NotifyConsumer, err)
	}
	return cc, nil
}

// Stop stops pulling and waits for the batches in hand; what it holds unhandled is
// handed back at once, and what is in flight is redelivered to another node.
func (n *Notifier) Stop() {
	if n.stop != nil {
		n.stop()
	}
	n.wg.Wait()
	for {
		select {
		case m := <-n.in:
			_ = m.Nak()
		default:
			return
		}
	}
}

// handle judges one batch of mentions and acks it once its notifications are durable
// (and delivered to the webhook, or given up on). On a failure of logic or JetStream
// the batch is handed back for redelivery.
func (n *Notifier) handle(ctx context.Context, batch []jetstream.Msg) {
	mentions := make([]schema.Mention, 0, len(batch))
	msgs := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		var mention schema.Mention
		if err := json.Unmarshal(m.Data(), &mention); err != nil || !schema.ValidID(mention.Room) {
			metricFailures.WithLabelValues("malformed").Inc()
			if n.hotLog.Allow() {
				n.cfg.Logger.Warn().Err(err).Str("subject", m.Subject()).Msg("malformed IM_MENTIONS message dropped")
			}
			_ = m.Term()
			continue
		}
		mentions = append(mentions, mention)
		msgs = append(msgs, m)
	}
	if len(mentions) == 0 {
		return
	}
	notes, err := n.judge(ctx, mentions)
	if err == nil {
		err = n.publish(ctx, notes)
	}
	if err != nil {
		if ctx.Err() == nil && n.hotLog.Allow() {
			n.cfg.Logger.Warn().Err(err).Int("mentions", len(msgs)).Msg("notifier batch handed back for redelivery")
		}
		for _, m := range msgs {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	if n.webhook != nil && len(notes) > 0 {
		encoded := make([][]byte, len(notes))
		for i := range notes {
			encoded[i] = notes[i].data
		}
		if !n.webhook.deliver(ctx, encoded) {
			// Stopping mid-delivery: the batch goes to another node, which POSTs it
			// again (the backend drops what it already has by id).
			for _, m := range msgs {
				_ = m.Nak()
			}
			return
		}
	}
	for _, m := range msgs {
		if err := m.Ack(); err != nil && n.hotLog.Allow() {
			n.cfg.Logger.Warn().Err(err).Msg("ack IM_MENTIONS")
		}
	}
}

// note is an encoded Notification.
type note struct {
	room, id string
	data     []byte
}

// judge returns the notifications of mentions: for each, the mentioned members no
// gateway has subscribed to the room, as offline or passive.
func (n *Notifier) judge(ctx context.Context, mentions []schema.Mention) ([]note, error) {
	var pairs [][2]string
	seen := make(map[[2]string]bool)
	for _, m := range mentions {
		for _, u := range m.Mentions {
			p := [2]string{m.Room, u}
			if !seen[p] && schema.ValidID(u) {
				seen[p] = true
				pairs = append(pairs, p)
			}
		}
	}
	members, err := n.members(ctx, pairs)
	if err != nil {
		metricFailures.WithLabelValues("members").Inc()
		return nil, err
	}
	rooms := make(map[string][]string)
	for _, p := range pairs {
		if members[p] {
			rooms[p[0]] = append(rooms[p[0]], p[1])
		}
	}
	seenBy, err := n.gather(ctx, rooms)
	if err != nil {
		return nil, err
	}
	var notes []note
	for _, m := range mentions {
		var users []schema.NotifiedUser
		for _, u := range m.Mentions {
			p := [2]string{m.Room, u}
			switch {
			case !members[p]:
				metricUsers.WithLabelValues("not_member").Inc()
			case seenBy.subscribed[p]:
				metricUsers.WithLabelValues("active").Inc()
			case seenBy.online[u]:
				metricUsers.WithLabelValues(schema.StatePassive).Inc()
				users = append(users, schema.NotifiedUser{User: u, State: schema.StatePassive})
			default:
				metricUsers.WithLabelValues(schema.StateOffline).Inc()
				users = append(users, schema.NotifiedUser{User: u, State: schema.StateOffline})
			}
		}
		if len(users) == 0 {
			continue
		}
		id := subjects.MentionMsgIDT(m.Room, m.Seq, m.Ts)
		data, err := schema.EncodeWithBody(schema.Notification{ID: id, Room: m.Room, Seq: m.Seq, Ts: m.Ts, From: m.From, Users: users}, m.Body)
		if err != nil {
			return nil, fmt.Errorf("encode notification %s: %w", id, err)
		}
		notes = append(notes, note{room: m.Room, id: id, data: data})
	}
	return notes, nil
}

// publish puts notes in IM_NOTIFY and waits until JetStream has them all.
func (n *Notifier) publish(ctx context.Context, notes []note) error {
	futures := make([]jetstream.PubAckFuture, 0, len(notes))
	for _, nt := range notes {
		msg := nats.NewMsg(subjects.NotifyT(nt.room))
		msg.Header.Set(subjects.HeaderMsgID, nt.id)
		msg.Data = nt.data
		f, err := n.js.PublishMsgAsync(msg)
		if err != nil {
			metricFailures.WithLabelValues("publish").Inc()
			return fmt.Errorf("publish IM_NOTIFY: %w", err)
		}
		futures = append(futures, f)
	}
	waitCtx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			metricFailures.WithLabelValues("publish").Inc()
			return fmt.Errorf("IM_NOTIFY ack: %w", err)
		case <-waitCtx.Done():
			metricFailures.WithLabelValues("publish").Inc()
			return fmt.Errorf("IM_NOTIFY ack: %w", waitCtx.Err())
		}
	}
	metricNotifications.Add(float64(len(notes)))
	return nil
}
