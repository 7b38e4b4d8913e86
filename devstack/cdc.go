package devstack

import (
	"context"
	"fmt"

	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/cdc"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/subjects"
)

// startCDC runs the CDC role in the stack when the metadata lives in MySQL: changes
// made in SQL reach the caches as they would in a cluster. It takes the lock like
// any `laneim cdc`, so a separate one run beside dev is a standby.
func (s *Stack) startCDC(ctx context.Context, cfg configs.Config) error {
	nc, err := s.connect("cdc", subjects.RoleCDC)
	if err != nil {
		return err
	}
	// Its announcements go through the cache's publisher: Redis tombstones first (with
	// redis_url), then NATS, as every writer's do.
	s.cdcPublisher = cache.NewPublisher(cache.Config{NATS: nc, Redis: s.redis, Logger: s.log.With().Str("role", subjects.RoleCDC).Logger()})
	s.CDC, err = cdc.New(cdc.Config{
		DSN:        cfg.MySQLDSN,
		Invalidate: s.cdcPublisher.Publish,
		Logger:     s.log.With().Str("role", subjects.RoleCDC).Logger(),
	}, nc)
	if err != nil {
		return err
	}
	if err := s.CDC.Start(ctx); err != nil {
		return fmt.Errorf("cdc: %w", err)
	}
	return nil
}
