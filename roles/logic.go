package roles

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/logic"
)

// Logic is a logic node with its metadata cache.
type Logic struct {
	Logic *logic.Logic
	// Cache is logic's metadata cache in front of the stores' Meta, with Redis as
	// its second level when cfg.RedisURL is set.
	Cache *cache.Cache
	// Redis is the cache's second level; nil without cfg.RedisURL.
	Redis *redis.Client

	stopOnce sync.Once
}

// LogicOptions are what a logic node takes besides cfg.
type LogicOptions struct {
	Secret   []byte
	Node     string // its name in the partition group; "" for partition.NodeName()
	Replicas int    // of the streams and buckets it creates
	Logger   zerolog.Logger
}

// StartLogic starts a logic node on nc over stores: the cache, which announces each
// write after it commits on nc and drops what other nodes announce, then logic, which
// creates the streams if needed, joins the partition group and serves.
func StartLogic(ctx context.Context, cfg configs.Config, nc *nats.Conn, stores *Stores, opts LogicOptions) (_ *Logic, err error) {
	l := &Logic{}
	defer func() {
		if err != nil {
			l.Stop()
		}
	}()
	cacheCfg := cache.Config{NATS: nc, Logger: opts.Logger.With().Str("component", "cache").Logger()}
	if cfg.RedisURL != "" {
		if l.Redis, err = cache.NewRedisClient(cfg.RedisURL, 0); err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		cacheCfg.Redis = l.Redis
	}
	l.Cache = cache.New(stores.Meta, cacheCfg)
	if err := l.Cache.Start(); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	lg, err := logic.New(logic.Config{
		Secret:                 opts.Secret,
		Streams:                logic.StreamsConfig{Partitions: cfg.Partitions, DedupeWindow: cfg.DedupeWindow, Replicas: opts.Replicas},
		MaxRoomsPerUser:        cfg.MaxRoomsPerUser,
		MaxRoomsCreatedPerUser: cfg.MaxRoomsCreatedPerUser,
		MaxBlocksPerUser:       cfg.MaxBlocksPerUser,
		Node:                   opts.Node,
		Logger:                 opts.Logger,
	}, nc, stores.Messages, l.Cache)
	if err != nil {
		return nil, err
	}
	l.Logic = lg // stopped with the rest if Start fails half way
	if err := lg.Start(ctx); err != nil {
		return nil, fmt.Errorf("logic: %w", err)
	}
	return l, nil
}

// Stop stops logic (its partitions go to the other nodes), then the cache.
// Later calls do nothing.
func (l *Logic) Stop() {
	l.stopOnce.Do(func() {
		if l.Logic != nil {
			l.Logic.Stop()
		}
		if l.Cache != nil {
			_ = l.Cache.Close()
		}
		if l.Redis != nil {
			_ = l.Redis.Close()
		}
	})
}
