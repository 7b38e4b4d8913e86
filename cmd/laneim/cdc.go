package main

import (
	"context"
	"fmt"

	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/roles"
	"github.com/laneim/laneim/subjects"
)

// runCDC runs `laneim cdc` until SIGINT or SIGTERM: it reads the binlog of the MySQL
// metadata store (mysql_dsn) and announces the changes on the NATS cluster
// (nats_url), serving /healthz and /metrics on http when set.
func runCDC(args []string) error {
	fs := roleFlagSet(subjects.RoleCDC, fmt.Sprintf(
		"Reads the binlog of laneIM's MySQL metadata database (%s) and announces every\nchange of rooms, members and blocks on NATS, for the caches of every node. Run two\nfor failover: one reads at a time.",
		configs.EnvName("mysql_dsn")))
	p, err := startRole(subjects.RoleCDC, fs, args, func(cfg configs.Config) error {
		if cfg.MySQLDSN == "" {
			return fmt.Errorf("cdc: no MySQL to read: set %s", configs.EnvName("mysql_dsn"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer p.close()
	// With redis_url, the shared cache's entries are replaced by tombstones before
	// the nodes hear of a change.
	opts := roles.CDCOptions{Replicas: p.replicas, ID: p.id, Logger: p.log}
	if p.cfg.RedisURL != "" {
		rdb, err := cache.NewRedisClient(p.cfg.RedisURL, 0)
		if err != nil {
			return fmt.Errorf("redis_url: %w", err)
		}
		p.cleanup = append(p.cleanup, func() { _ = rdb.Close() })
		opts.Redis = rdb
	}
	var reader *roles.CDC
	err = roles.WaitFor(p.ctx, p.log, "JetStream for the CDC buckets", func(ctx context.Context) error {
		reader, err = roles.StartCDC(ctx, p.cfg, p.nc, opts)
		return err
	})
	if err != nil {
		return err
	}
	p.cleanup = append(p.cleanup, reader.Stop)
	// 200 while NATS is connected (a standby is healthy too), with whether this
	// process holds the lock (leader) and reads (reading: it knows where from, so
	// every change committed since is announced).
	if _, err := p.serve(p.healthServer(func() map[string]any {
		return map[string]any{"leader": reader.CDC.Leader(), "reading": reader.CDC.Reading()}
	})); err != nil {
		return err
	}
	if err := p.register("", nil); err != nil {
		return err
	}
	p.log.Info().Str("http", p.cfg.HTTP).Msg("laneim cdc is up")
	p.wait()
	reader.Stop()
	return nil
}
