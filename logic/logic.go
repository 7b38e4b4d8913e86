package logic

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/partition"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// Config configures a logic node. The zero value means the defaults.
type Config struct {
	// Secret verifies the client tokens gateways forward with every request and
	// send: logic acts only as the subject of a token it has verified. Required.
	Secret []byte
	// Streams sizes IM_IN and IM_OUT when this node creates them.
	Streams StreamsConfig
	// BatchSize caps the sends stored in one write. Default 256.
	BatchSize int
	// ServiceWorkers bounds concurrently served service requests. Default 64.
	ServiceWorkers int
	// StoreTimeout bounds one store write or read. Default 10s.
	StoreTimeout time.Duration
	// MaxRoomsPerUser caps the rooms one user belongs to: adds past it, and rooms
	// created past it, are refused. It keeps a user's room list, which every
	// identify reads whole, and its gateway registrations bounded. Default 10000.
	MaxRoomsPerUser int
	// MaxRoomsCreatedPerUser caps the rooms one user creates. Default 1000.
	MaxRoomsCreatedPerUser int
	// MaxBlocksPerUser caps the users one user blocks. Default 1000.
	MaxBlocksPerUser int
	// Node names this node in the logic partition group; unique among the live logic
	// nodes. Default: the host name and a random suffix.
	Node   string
	Logger zerolog.Logger
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.ServiceWorkers <= 0 {
		c.ServiceWorkers = 64
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 10 * time.Second
	}
	if c.MaxRoomsPerUser <= 0 {
		c.MaxRoomsPerUser = 10000
	}
	if c.MaxRoomsCreatedPerUser <= 0 {
		c.MaxRoomsCreatedPerUser = 1000
	}
	if c.MaxBlocksPerUser <= 0 {
		c.MaxBlocksPerUser = 1000
	}
	if c.Node == "" {
		c.Node = partition.NodeName()
	}
}

// Logic is one logic node.
type Logic struct {
	cfg  Config              // set once at construction
	nc   *nats.Conn          // set once at construction
	js   jetstream.JetStream // set once at construction
	msgs store.MessageStore  // set once at construction
	meta store.MetaStore     // set once at construction
	caps store.Caps          // set once at construction, from cfg
	// tokens verifies the client tokens forwarded with requests and sends. Set once at
	// construction.
	tokens *auth.Verifier
	svc    micro.Service    // set by Start
	group  *partition.Group // set by Start: the IM_IN partitions this node consumes
	// Service handlers in flight, bounded apart for history (bulk reads) and for
	// everything else, so a flood of history pages cannot hold up a subscribe.
	historySem chan struct{}
	serviceSem chan struct{}
	wg         sync.WaitGroup // service handlers
	// mutes is the mute table sends are checked against (mutes.go); mutesSub, set
	// by Start, hears the announcements that drop its rooms.
	mutes    *mutes
	mutesSub *nats.Subscription
	hotLog   *logging.RateLimited // set once at construction: warnings of the ingest path
}

// New returns a logic node over the given NATS connection and stores.
func New(cfg Config, nc *nats.Conn, msgs store.MessageStore, meta store.MetaStore) (*Logic, error) {
	cfg.defaults()
	if len(cfg.Secret) == 0 {
		return nil, fmt.Errorf("logic: a JWT secret is required")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Logic{
		cfg: cfg, nc: nc, js: js, msgs: msgs, meta: meta,
		tokens:     auth.NewVerifier(cfg.Secret),
		caps:       store.Caps{Rooms: cfg.MaxRoomsPerUser, Created: cfg.MaxRoomsCreatedPerUser, Blocks: cfg.MaxBlocksPerUser},
		historySem: make(chan struct{}, cfg.ServiceWorkers),
		serviceSem: make(chan struct{}, cfg.ServiceWorkers),
		mutes:      newMutes(),
		hotLog:     logging.NewRateLimited(time.Second, 10),
	}, nil
}

// Start creates the streams and every IM_IN partition's consumer if needed, joins the
// logic partition group, which runs the partitions this node owns, and registers the
// services. It returns once everything is subscribed.
func (l *Logic) Start(ctx context.Context) error {
	partitions, err := EnsureStreams(ctx, l.js, l.cfg.Streams)
	if err != nil {
		return err
	}
	if want := l.cfg.Streams.Partitions; want > 0 && want != partitions {
		l.cfg.Logger.Warn().Int("partitions", partitions).Int("configured", want).
			Msg("the streams were created with another partition count, which stays while they hold data; the configured one is ignored")
	}
	// The mute table hears announcements before any send is checked against it.
	if l.mutesSub, err = l.listenMutes(); err != nil {
		return fmt.Errorf("subscribe to mute announcements: %w", err)
	}
	if err := l.startServices(); err != nil {
		return err
	}
	config := func(p int) partition.Config {
		return partition.Config{
			Stream:    subjects.StreamIn,
			Durable:   subjects.InConsumerT(p),
			Filter:    subjects.InPartitionT(p),
			BatchSize: l.cfg.BatchSize,
			Logger:    l.cfg.Logger,
		}
	}
	// Every partition's consumer exists before any gateway publishes: IM_IN keeps a
	// message only for the consumers that exist.
	for p := range partitions {
		if _, err := partition.Ensure(ctx, l.js, config(p)); err != nil {
			return err
		}
	}
	group, err := partition.JoinGroup(ctx, l.js, partition.GroupConfig{
		Role: subjects.RoleLogic, Node: l.cfg.Node, Partitions: partitions, Logger: l.cfg.Logger,
		Replicas: l.cfg.Streams.Replicas,
		Run: func(ctx context.Context, p int) {
			if err := partition.Run(ctx, l.js, config(p), l.ingest); err != nil {
				l.cfg.Logger.Error().Err(err).Int("partition", p).Msg("ingest partition stopped")
			}
		},
	})
	if err != nil {
		return err
	}
	l.group = group
	l.cfg.Logger.Info().Int("partitions", partitions).Str("node", l.cfg.Node).Msg("logic started")
	return nil
}

// Partitions returns the IM_IN partitions this node consumes now.
func (l *Logic) Partitions() []int {
	if l.group == nil {
		return nil
	}
	return l.group.Owned()
}

// Stop stops consuming and serving and waits for work in flight.
func (l *Logic) Stop() {
	if l.svc != nil {
		_ = l.svc.Stop()
	}
	if l.group != nil {
		l.group.Stop()
	}
	if l.mutesSub != nil {
		_ = l.mutesSub.Unsubscribe()
	}
	l.wg.Wait()
}
