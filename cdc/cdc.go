package cdc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// Config configures a CDC. The zero value of every field but DSN means its default.
type Config struct {
	// DSN is laneIM's metadata database (configs' mysql_dsn): the binlog is read from
	// its address with its user and password, and only its database's rooms,
	// members and blocks tables are announced.
	DSN string
	// ServerID is the replica id the reader registers with; it must differ from the
	// server's and every other replica's. Default: a random one in [2^31, 2^32), a
	// collision with a hand-picked id or another CDC being unlikely.
	ServerID uint32
	// Invalidate publishes one invalidation. Default NATSInvalidate(nc). The cache
	// plugs in a publisher that deletes the second-level (Redis) keys first. An error
	// stops the reader, which starts again from its last published transaction.
	Invalidate func(context.Context, schema.Inval) error
	// MaxKeysPerMessage splits a transaction's keys of one table into messages of
	// at most this many. Default 500: a key is at most about 200 bytes of JSON, so a
	// message stays well under NATS's 1 MiB.
	MaxKeysPerMessage int
	// CheckpointEvery is how often the position is checkpointed while it moves.
	// Default 100ms: a restart replays at most that much of the binlog.
	CheckpointEvery time.Duration
	// LockTTL is how long the lock outlives its holder's last refresh, so about how
	// long a standby waits after the holder dies. Default 3s; refreshed every
	// LockTTL/3. The TTL of an existing im_cdc_lock bucket wins over it.
	LockTTL time.Duration
	// StatusEvery is how often the server's binlog position is read for the lag
	// metrics. Default 1s.
	StatusEvery time.Duration
	// PublishTimeout bounds the publication of one transaction. Default 5s.
	PublishTimeout time.Duration
	// Replicas of the im_cdc and im_cdc_lock buckets if this process creates them.
	// Default 1.
	Replicas int
	// ID names this process in the lock. Default hostname-pid.
	ID     string
	Logger zerolog.Logger
}

func (cfg *Config) applyDefaults(nc *nats.Conn) {
	if cfg.ServerID == 0 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ServerID = binary.BigEndian.Uint32(b[:]) | 1<<31
	}
	if cfg.Invalidate == nil {
		cfg.Invalidate = NATSInvalidate(nc)
	}
	if cfg.MaxKeysPerMessage <= 0 {
		cfg.MaxKeysPerMessage = 500
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 100 * time.Millisecond
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = 3 * time.Second
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
}

// CDC reads the binlog while it holds the lock, and waits for it otherwise.
type CDC struct {
	cfg Config              // set once
	nc  *nats.Conn          // set once
	js  jetstream.JetStream // set once
	dsn *mysql.Config       // set once
	log zerolog.Logger      // set once

	db        *sql.DB            // set by Start: status queries
	positions jetstream.KeyValue // set by Start
	lock      *lock              // set by Start

	leader  atomic.Bool
	reading atomic.Bool // leader and knows where it reads from
	stop    context.CancelFunc
	done    sync.WaitGroup
}

// New returns a CDC publishing on nc (which needs the cdc role's permissions).
func New(cfg Config, nc *nats.Conn) (*CDC, error) {
	dsn, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cdc: mysql dsn: %w", err)
	}
	if dsn.DBName == "" {
		return nil, errors.New("cdc: the mysql dsn names no database")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cfg.applyDefaults(nc)
	return &CDC{cfg: cfg, nc: nc, js: js, dsn: dsn, log: cfg.Logger}, nil
}

// Start opens the KV buckets and starts waiting for the lock; it does not wait for
// MySQL, which may come up later.
func (c *CDC) Start(ctx context.Context) error {
	var err error
	c.positions, err = openBucket(ctx, c.js, jetstream.KeyValueConfig{
		Bucket: subjects.BucketCDC, Description: "laneIM CDC binlog checkpoint", History: 1,
		Replicas: max(c.cfg.Replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("cdc: %w", err)
	}
	lockKV, err := openBucket(ctx, c.js, jetstream.KeyValueConfig{
		Bucket: subjects.BucketCDCLock, Description: "laneIM CDC reader lock", History: 1, TTL: c.cfg.LockTTL,
		Replicas: max(c.cfg.Replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("cdc: %w", err)
	}
	// The bucket's TTL is the lock's, whoever created it: refreshing at a third of a
	// shorter one than configured here would let the key expire under its holder.
	ttl := c.cfg.LockTTL
	if status, err := lockKV.Status(ctx); err == nil && status.TTL() > 0 && status.TTL() != ttl {
		c.log.Warn().Dur("bucket_ttl", status.TTL()).Dur("lock_ttl", ttl).Msg("cdc: the lock bucket's TTL differs, using it")
		ttl = status.TTL()
	}
	c.lock = &lock{kv: lockKV, id: c.cfg.ID, ttl: ttl}
	// The status connection: a small pool with short timeouts, for SHOW statements.
	dsn := c.dsn.Clone()
	dsn.Timeout, dsn.ReadTimeout, dsn.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	if c.db, err = sql.Open("mysql", dsn.FormatDSN()); err != nil {
		return fmt.Errorf("cdc: %w", err)
	}
	c.db.SetMaxOpenConns(2)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = stop
	c.done.Go(func() { c.run(runCtx) })
	return nil
}

// Stop stops reading, checkpoints, releases the lock and returns once done.
func (c *CDC) Stop() {
	if c.stop == nil {
		return
	}
	c.stop()
	c.done.Wait()
	_ = c.db.Close()
}

// Leader reports whether this CDC holds the lock and reads the binlog.
func (c *CDC) Leader() bool { return c.leader.Load() }

// Reading reports whether this CDC holds the lock and has found where to read
// from: every change committed from then on will be announced.
func (c *CDC) Reading() bool { return c.reading.Load() }

// run takes the lock whenever it is free and reads while holding it.
func (c *CDC) run(ctx context.Context) {
	var warned time.Time // the last warning of a failure to take the lock: one in 30s
	for ctx.Err() == nil {
		acquireCtx, cancel := context.WithTimeout(ctx, c.lock.ttl/2)
		ok, err := c.lock.acquire(acquireCtx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			metricErrors.WithLabelValues("lock").Inc()
			if time.Since(warned) > 30*time.Second {
				warned = time.Now()
				c.log.Warn().Err(err).Msg("cdc: take the lock (warned once in 30s)")
			}
		case ok:
			c.lead(ctx)
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.lock.ttl / 3):
		}
	}
}

// lead reads the binlog until ctx ends or the lock is lost.
func (c *CDC) lead(ctx context.Context) {
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var keeper sync.WaitGroup
	keeper.Go(func() {
		c.lock.keep(leadCtx, func(err error) {
			c.log.Warn().Err(err).Msg("cdc: lost the lock, stop reading")
			cancel()
		})
	})
	c.leader.Store(true)
	metricLeader.Set(1)
	c.log.Info().Str("id", c.cfg.ID).Msg("cdc: holding the lock, reading the binlog")
	c.read(leadCtx)
	c.reading.Store(false)
	c.leader.Store(false)
	metricLeader.Set(0)
	// A standby reports no lag: the holder does.
	metricCheckpointAge.Set(0)
	metricLagSeconds.Set(0)
	metricBehindBytes.Set(0)
	metricBehindEvents.Set(0)
	cancel()
	keeper.Wait()
}
