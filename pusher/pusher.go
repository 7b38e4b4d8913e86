// Package pusher is laneIM's fanout role. It consumes IM_OUT partition by partition,
// merges the consecutive messages of a room that arrive together into one msgs frame,
// encoded exactly as clients receive it, and publishes it once on core NATS
// im.room.<room>.msgs; every gateway with subscribers in the room relays those bytes
// unchanged. It also publishes coalesced tick frames on im.room.<room>.tick for
// members that are not looking at the room. Beside the fanout it runs the offline
// hook's notifier (package notify) when configured to.
package pusher

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/logic"
	"github.com/laneim/laneim/notify"
	"github.com/laneim/laneim/partition"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

var (
	metricFrames = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_pusher_frames_total", Help: "msgs frames published.",
	})
	metricMessages = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_pusher_messages_total", Help: "Messages published in msgs frames.",
	})
	metricTicks = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_pusher_ticks_total", Help: "tick frames published.",
	})
	metricSkipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_pusher_skipped_total", Help: "IM_OUT messages dropped as already published (re-deliveries, re-publishes).",
	})
)

// maxTrackedRooms bounds the rooms whose last published seq a partition remembers.
const maxTrackedRooms = 100_000

// Config configures a pusher node. The zero value means the defaults.
type Config struct {
	// BatchSize caps the IM_OUT messages taken at once; a full window of a busy
	// partition fits one batch. Default 4096.
	BatchSize int
	// TickInterval is how often a room's tick is published at most. Default 250ms.
	TickInterval time.Duration
	// MaxWindow caps how long pusher holds a room's messages to merge them into one
	// frame. The window grows with the message rate of the partition's busiest room
	// (WindowPerMessage for every message a second; a partition of many quiet rooms
	// keeps a small window, but quiet rooms share a busy room's window while they
	// share its partition): near zero when idle, so a lone message goes out at
	// once, and up to MaxWindow under load, where the cost of a frame (one write per
	// subscriber, about 20µs of system time each on the 2-core reference machine)
	// dominates: a 10,000-member room can take only a few frames a second, so at 200
	// messages a second they must carry about 50 messages each. Default 250ms
	// (150ms gave p99 2.5s at 10,000 members and 200 msgs/s, 250ms 1.4s); negative
	// disables merging across batches.
	MaxWindow        time.Duration
	WindowPerMessage time.Duration // default 1.25ms
	// MaxFrameBytes caps one msgs frame (a frame holds at least one message). It stays
	// well under NATS's max payload (1 MiB by default), and keeps one frame from
	// filling a slow connection's queue at once. Default 64 KiB.
	MaxFrameBytes int
	// Node names this node in the pusher partition group; unique among the live
	// pusher nodes. Default: the host name and a random suffix.
	Node string
	// Replicas of the im_partitions bucket if this node creates it. Default 1.
	Replicas int
	// Notify, when set, runs the offline hook's notifier (package notify) beside the
	// fanout: its own consumer and goroutines. Nil: none on this node.
	Notify *notify.Config
	Logger zerolog.Logger
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 4096
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 250 * time.Millisecond
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = 250 * time.Millisecond
	}
	if c.WindowPerMessage <= 0 {
		c.WindowPerMessage = 1250 * time.Microsecond
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.Node == "" {
		c.Node = partition.NodeName()
	}
}

// Pusher is one pusher node.
type Pusher struct {
	cfg   Config              // set once at construction
	nc    *nats.Conn          // set once at construction
	js    jetstream.JetStream // set once at construction
	stop  context.CancelFunc  // set by Start
	group *partition.Group    // set by Start: the IM_OUT partitions this node consumes
	notif *notify.Notifier    // set by Start when cfg.Notify is
	wg    sync.WaitGroup

	mu    sync.Mutex
	ticks map[string]int64 // guarded by mu: rooms with news since the last tick flush
}

// New returns a pusher over nc.
func New(cfg Config, nc *nats.Conn) (*Pusher, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Pusher{cfg: cfg, nc: nc, js: js, ticks: make(map[string]int64)}, nil
}

// Start waits for the streams, joins the pusher partition group, which runs the
// IM_OUT partitions this node owns, and starts the tick flusher.
func (p *Pusher) Start(ctx context.Context) error {
	partitions, err := logic.WaitStreams(ctx, p.js)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	group, err := partition.JoinGroup(ctx, p.js, partition.GroupConfig{
		Role: subjects.RolePusher, Node: p.cfg.Node, Partitions: partitions, Logger: p.cfg.Logger,
		Replicas: p.cfg.Replicas,
		Run: func(ctx context.Context, i int) {
			pc := partition.Config{
				Stream:           subjects.StreamOut,
				Durable:          subjects.OutConsumerT(i),
				Filter:           subjects.OutPartitionT(i),
				BatchSize:        p.cfg.BatchSize,
				MaxLinger:        max(p.cfg.MaxWindow, 0),
				LingerPerMessage: p.cfg.WindowPerMessage,
				Rate:             newRoomRates().observe,
				Logger:           p.cfg.Logger,
			}
			// The rooms of one partition are this goroutine's alone, so their last
			// published seqs need no lock.
			last := make(map[string]int64)
			err := partition.Run(ctx, p.js, pc, func(ctx context.Context, batch []jetstream.Msg) error {
				p.push(batch, last)
				return nil
			})
			if err != nil {
				p.cfg.Logger.Error().Err(err).Int("partition", i).Msg("pusher partition stopped")
			}
		},
	})
	if err != nil {
		cancel()
		return err
	}
	p.group = group
	if p.cfg.Notify != nil {
		nc := *p.cfg.Notify
		nc.Logger = p.cfg.Logger.With().Str("component", "notify").Logger()
		notif, err := notify.New(nc, p.nc)
		if err != nil {
			group.Stop()
			cancel()
			return fmt.Errorf("notifier: %w", err)
		}
		notif.Start()
		p.notif = notif
	}
	p.wg.Go(func() { p.flushTicks(runCtx) })
	p.cfg.Logger.Info().Int("partitions", partitions).Str("node", p.cfg.Node).Msg("pusher started")
	return nil
}

// Partitions returns the IM_OUT partitions this node consumes now.
func (p *Pusher) Partitions() []int {
	if p.group == nil {
		return nil
	}
	return p.group.Owned()
}

// Stop stops consuming and waits.
func (p *Pusher) Stop() {
	if p.notif != nil {
		p.notif.Stop()
	}
	if p.group != nil {
		p.group.Stop()
	}
	if p.stop != nil {
		p.stop()
	}
	p.wg.Wait()
}

// roomRates measures a partition's busiest room: the most messages one room had in
// the current one-second window or the one before. It paces the partition's frames
// (partition.Config.Rate): a room at 200 messages a second is merged into frames over
// the longest window, while a partition of a thousand rooms at one message every few
// seconds each hands every message over at once. (A rate smoothed over the
// intervals between batches would read two messages of two rooms a millisecond apart
// as a room at 1,000 a second.) Owned by the partition's goroutine.
type roomRates struct {
	start   time.Time      // of the current window
	counts  map[string]int // messages per room in the current window
	most    int            // the highest of counts
	earlier int            // most of the window before, 0 if it was longer ago
}

func newRoomRates() *roomRates { return &roomRates{counts: make(map[string]int)} }

func (r *roomRates) observe(batch []jetstream.Msg, now time.Time) float64 {
	if age := now.Sub(r.start); age >= time.Second {
		r.earlier = r.most
		if age >= 2*time.Second {
			r.earlier = 0
		}
		clear(r.counts)
		r.most, r.start = 0, now
	}
	for _, m := range batch {
		room := subjects.RoomOfStored(m.Subject())
		r.counts[room]++
		r.most = max(r.most, r.counts[room])
	}
	return float64(max(r.most, r.earlier))
}

// push turns one IM_OUT batch into frames: the messages of each room, in seq order,
// become one frame per run of consecutive seqs, split where a frame would pass
// MaxFrameBytes.
func (p *Pusher) push(batch []jetstream.Msg, last map[string]int64) {
	var order []string
	rooms := make(map[string][]schema.Message)
	for _, m := range batch {
		msg, err := decodeOut(m)
		if err != nil {
			p.cfg.Logger.Warn().Err(err).Str("subject", m.Subject()).Msg("bad IM_OUT message dropped")
			continue
		}
		if _, seen := rooms[msg.Room]; !seen {
			order = append(order, msg.Room)
		}
		rooms[msg.Room] = append(rooms[msg.Room], msg)
	}
	for _, room := range order {
		msgs := rooms[room]
		start, size := 0, 0
		for i := range msgs {
			if msgs[i].Seq == 0 {
				// A reset: the room was created (again), its log starts at seq 1.
				delete(last, room)
				start = i + 1
				continue
			}
			if msgs[i].Seq <= last[room] {
				metricSkipped.Inc()
				start = i + 1
				continue
			}
			size += schema.EntrySize(msgs[i])
			if i+1 < len(msgs) && msgs[i+1].Seq == msgs[i].Seq+1 && size+schema.EntrySize(msgs[i+1]) <= p.cfg.MaxFrameBytes {
				continue
			}
			p.publishFrame(room, msgs[start:i+1])
			last[room] = msgs[i].Seq
			start, size = i+1, 0
		}
		p.markTick(room, last[room])
	}
	if len(last) > maxTrackedRooms {
		// Forgetting costs at most a re-published frame after a redelivery, which
		// gateways drop by seq; remembering every room ever seen costs memory forever.
		clear(last)
	}
	if err := batch[len(batch)-1].Ack(); err != nil {
		p.cfg.Logger.Warn().Err(err).Msg("ack IM_OUT batch")
	}
}

func (p *Pusher) publishFrame(room string, msgs []schema.Message) {
	if len(msgs) == 0 {
		return
	}
	out := nats.NewMsg(subjects.RoomMsgsT(room))
	out.Header.Set(subjects.HeaderSeq, strconv.FormatInt(msgs[0].Seq, 10))
	out.Header.Set(subjects.HeaderLast, strconv.FormatInt(msgs[len(msgs)-1].Seq, 10))
	// When the newest message was stored: gateways measure the path's delay with it.
	out.Header.Set(subjects.HeaderTs, strconv.FormatInt(msgs[len(msgs)-1].Ts, 10))
	out.Data = schema.AppendMsgsFrame(make([]byte, 0, 64+len(msgs)*64), room, msgs)
	if err := p.nc.PublishMsg(out); err != nil {
		// Core NATS is at most once anyway: gateways fill what they miss from history.
		p.cfg.Logger.Warn().Err(err).Str("room", room).Msg("publish frame")
		return
	}
	metricFrames.Inc()
	metricMessages.Add(float64(len(msgs)))
}

// decodeOut reads an IM_OUT message: room from the subject, seq, ts and user from
// headers, the body as data.
func decodeOut(m jetstream.Msg) (schema.Message, error) {
	h := m.Headers()
	seq, err := strconv.ParseInt(h.Get(subjects.HeaderSeq), 10, 64)
	if err != nil {
		return schema.Message{}, fmt.Errorf("seq header: %w", err)
	}
	ts, err := strconv.ParseInt(h.Get(subjects.HeaderTs), 10, 64)
	if err != nil {
		return schema.Message{}, fmt.Errorf("ts header: %w", err)
	}
	msg := schema.Message{
		Room: subjects.RoomOfStored(m.Subject()), Seq: seq, Ts: ts,
		User: h.Get(subjects.HeaderUser), Body: m.Data(),
	}
	// An edit or a delete names its target; a plain message has no mark.
	if mark := h.Get(subjects.HeaderMark); mark != "" {
		kind, ref, ok := schema.ParseMarkHeader(mark)
		if !ok { // a non-empty mark is an edit's or a delete's
			return schema.Message{}, fmt.Errorf("mark header %q", mark)
		}
		msg.Kind, msg.Ref = kind, ref
	}
	return msg, nil
}

func (p *Pusher) markTick(room string, seq int64) {
	p.mu.Lock()
	if seq > p.ticks[room] {
		p.ticks[room] = seq
	}
	p.mu.Unlock()
}

// flushTicks publishes at most one tick per room per TickInterval, with the room's
// latest seq.
func (p *Pusher) flushTicks(ctx context.Context) {
	t := time.NewTicker(p.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		pending := p.ticks
		if len(pending) == 0 {
			p.mu.Unlock()
			continue
		}
		p.ticks = make(map[string]int64, len(pending))
		p.mu.Unlock()
		for room, seq := range pending {
			frame := schema.EncodeFrame(schema.OpTick, nil, schema.TickD{Room: room, Seq: seq})
			if err := p.nc.Publish(subjects.RoomTickT(room), frame); err != nil {
				p.cfg.Logger.Warn().Err(err).Msg("publish tick")
				continue
			}
			metricTicks.Inc()
		}
	}
}
