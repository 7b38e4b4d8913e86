package roles

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/cdc"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/subjects"
)

// CDC is the MySQL binlog reader with the publisher of its announcements.
type CDC struct {
	CDC       *cdc.CDC
	publisher *cache.Publisher
	stopOnce  sync.Once
}

// CDCOptions are what CDC takes besides cfg.
type CDCOptions struct {
	// Redis is the shared cache whose entries an announcement replaces by tombstones
	// first; nil without one.
	Redis    *redis.Client
	Replicas int // of the buckets it creates
	ID       string
	Logger   zerolog.Logger
}

// StartCDC starts reading cfg.MySQLDSN's binlog on nc. Its announcements go through the
// cache's publisher: Redis tombstones first, then NATS, as every writer's do. It takes
// the lock like any other reader, so a second one is a standby.
func StartCDC(ctx context.Context, cfg configs.Config, nc *nats.Conn, opts CDCOptions) (*CDC, error) {
	log := opts.Logger.With().Str("role", subjects.RoleCDC).Logger()
	c := &CDC{publisher: cache.NewPublisher(cache.Config{NATS: nc, Redis: opts.Redis, Logger: log})}
	var err error
	c.CDC, err = cdc.New(cdc.Config{
		DSN:        cfg.MySQLDSN,
		Invalidate: c.publisher.Publish,
		Replicas:   opts.Replicas,
		ID:         opts.ID,
		Logger:     log,
	}, nc)
	if err != nil {
		c.publisher.Close()
		return nil, err
	}
	if err := c.CDC.Start(ctx); err != nil {
		c.publisher.Close()
		return nil, fmt.Errorf("cdc: %w", err)
	}
	return c, nil
}

// Stop stops reading, then publishing. Later calls do nothing.
func (c *CDC) Stop() {
	c.stopOnce.Do(func() {
		c.CDC.Stop()
		c.publisher.Close()
	})
}
