// Package cache is laneIM's metadata cache: a store.MetaStore in front of another that
// answers membership checks (logic's ingest checks one per send, its services one per
// subscribe and history page), rooms, member lists and counts, a user's rooms with read
// states, and blocks from memory.
//
// Two levels: otter in this process, then Redis shared by every node (optional: without
// it the first level alone). A miss in both loads from the store, once for all the
// callers waiting for the same answer (singleflight), and fills both levels; absence is
// cached as well as presence, since a non-member hammering a room is the case that
// must stay cheap.
//
// Writes pass through to the store. After one commits the cache drops its own entries,
// so the writer's next read is fresh, and announces the change through a Publisher:
// Redis entries are replaced with tombstones, then a schema.Inval goes out on
// im.cache.inval.<table> and every node drops its first-level entries. With MySQL,
// `laneim cdc` announces changes made behind laneIM's back the same way.
//
// No stale refill: a load that raced an invalidation never stores what it read. The
// first level checks an invalidation generation taken before the load; Redis fills
// with SET NX over the tombstone an invalidation leaves, and only while that tombstone
// would still be there. Every entry has a TTL besides, as a last bound.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
)

// Config configures a Cache (and a Publisher). The zero value means the defaults.
type Config struct {
	// Redis is the second level; nil: the first level alone.
	Redis *redis.Client
	// NATS carries invalidations: the cache announces its writes and drops what other
	// nodes announce. nil: neither (a single process without other writers).
	NATS *nats.Conn
	// LocalSize bounds the first level's membership answers; the other kinds get
	// fractions of it. Default 1,000,000 (about 150 MB at 64-byte ids).
	LocalSize int
	// LocalTTL bounds a first-level entry's life, should an invalidation be lost in a
	// way no reconnect reveals. Default 5m.
	LocalTTL time.Duration
	// RedisTTL bounds a Redis entry's life. Default 10m.
	RedisTTL time.Duration
	// RedisTimeout bounds each Redis call. Default 100ms.
	RedisTimeout time.Duration
	// RedisBackoff is how long reads and fills skip Redis after a call failed.
	// Default 1s.
	RedisBackoff time.Duration
	// TombstoneTTL is how long an invalidation's tombstone keeps fills out of Redis;
	// a load that took longer than half of it does not fill. Default 2s.
	TombstoneTTL time.Duration
	// RedisPrefix starts every Redis key. Default "laneim:c:".
	RedisPrefix string
	// LoadTimeout bounds one load from the store, which callers share. Default 10s.
	LoadTimeout time.Duration
	Logger      zerolog.Logger
}

const defaultRedisTimeout = 100 * time.Millisecond

func (c *Config) defaults() {
	if c.LocalSize <= 0 {
		c.LocalSize = 1_000_000
	}
	if c.LocalTTL <= 0 {
		c.LocalTTL = 5 * time.Minute
	}
	if c.RedisTTL <= 0 {
		c.RedisTTL = 10 * time.Minute
	}
	if c.RedisTimeout <= 0 {
		c.RedisTimeout = defaultRedisTimeout
	}
	if c.RedisBackoff <= 0 {
		c.RedisBackoff = time.Second
	}
	if c.TombstoneTTL <= 0 {
		c.TombstoneTTL = 2 * time.Second
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = "laneim:c:"
	}
	if c.LoadTimeout <= 0 {
		c.LoadTimeout = 10 * time.Second
	}
}

func newRemote(cfg Config) *remote {
	return &remote{
		rc: cfg.Redis, prefix: cfg.RedisPrefix, timeout: cfg.RedisTimeout,
		fillTTL: cfg.RedisTTL, tombTTL: cfg.TombstoneTTL, backoff: cfg.RedisBackoff,
	}
}

// Cache is a store.MetaStore that caches another.
type Cache struct {
	cfg     Config          // set once at construction
	store   store.MetaStore // set once at construction
	local   *local          // set once at construction
	remote  *remote         // set once at construction, shared with pub; nil without Redis
	pub     *Publisher      // set once at construction
	flights singleflight.Group
	sub     *nats.Subscription // set by Start
	status  chan nats.Status   // set by Start
	// received counts the invalidations applied from NATS (tests wait on it).
	received atomic.Uint64
}

var _ store.MetaStore = (*Cache)(nil)

// New returns a cache in front of meta. Start it to receive other nodes'
// invalidations.
func New(meta store.MetaStore, cfg Config) *Cache {
	cfg.defaults()
	c := &Cache{cfg: cfg, store: meta, local: newLocal(cfg.LocalSize, cfg.LocalTTL), pub: NewPublisher(cfg)}
	// One view of Redis's health for reads and invalidations.
	c.remote = c.pub.remote
	return c
}

// Start subscribes to invalidations (with Config.NATS; without it there is nothing to
// start). It returns once the subscription is in place.
func (c *Cache) Start() error {
	if c.cfg.NATS == nil {
		return nil
	}
	return c.listen()
}

// Close stops the cache. The store it wraps stays open: its owner closes it.
func (c *Cache) Close() error {
	if c.sub != nil {
		_ = c.sub.Unsubscribe()
		c.cfg.NATS.RemoveStatusListener(c.status)
	}
	c.pub.Close()
	c.local.close()
	return nil
}

// flight loads one answer for every caller waiting for the same key and stamp. The
// stamp is part of the key: a caller that arrives after an invalidation starts a load
// of its own rather than join one that may have read the old value. The load runs
// apart from any one caller's cancellation, bounded by LoadTimeout; each caller waits
// only as long as its own context lets it.
func flight[V any](ctx context.Context, c *Cache, k kind, a, b string, extra string, s stamp, load func(context.Context) (V, error)) (V, error) {
	key := string(rune('a'+k)) + a + "\x00" + b + "\x00" + extra + "\x00" +
		strconv.FormatUint(s.epoch, 36) + "." + strconv.FormatUint(s.gen, 36)
	ch := c.flights.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LoadTimeout)
		defer cancel()
		return load(lctx)
	})
	var zero V
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(V), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// IsMember implements store.MetaStore. A first-level hit takes no allocation.
func (c *Cache) IsMember(ctx context.Context, room, user string) (bool, error) {
	if v, ok := c.local.member.GetIfPresent(pair{room, user}); ok {
		hitsLocal[kindMember].Inc()
		return v, nil
	}
	return c.loadPair(ctx, kindMember, room, user, c.store.IsMember)
}

// IsBlocked implements store.MetaStore.
func (c *Cache) IsBlocked(ctx context.Context, user, blocked string) (bool, error) {
	if v, ok := c.local.blocked.GetIfPresent(pair{user, blocked}); ok {
		hitsLocal[kindBlocked].Inc()
		return v, nil
	}
	return c.loadPair(ctx, kindBlocked, user, blocked, c.store.IsBlocked)
}

func (c *Cache) loadPair(ctx context.Context, k kind, a, b string, fromStore func(context.Context, string, string) (bool, error)) (bool, error) {
	missesLocal[k].Inc()
	s := c.local.stamp(k, a, b)
	return flight(ctx, c, k, a, b, "", s, func(ctx context.Context) (bool, error) {
		raw, state := c.remote.get(ctx, k, a, b)
		if state == redisHit && (raw == "0" || raw == "1") {
			v := raw == "1"
			c.setPair(k, a, b, s, v)
			return v, nil
		}
		start := time.Now()
		v, err := fromStore(ctx, a, b)
		if err != nil {
			return false, err
		}
		if state == redisMiss {
			raw = "0"
			if v {
				raw = "1"
			}
			c.remote.fill(ctx, start, k, [][2]string{{a, b}}, []string{raw})
		}
		c.setPair(k, a, b, s, v)
		return v, nil
	})
}

func (c *Cache) setPair(k kind, a, b string, s stamp, v bool) {
	if k == kindMember {
		setIfCurrent(c.local, c.local.member, pair{a, b}, s, v)
	} else {
		setIfCurrent(c.local, c.local.blocked, pair{a, b}, s, v)
	}
}

// GetRoom implements store.MetaStore. A room that does not exist is cached too.
func (c *Cache) GetRoom(ctx context.Context, id string) (store.Room, error) {
	e, ok := c.local.room.GetIfPresent(id)
	if ok {
		hitsLocal[kindRoom].Inc()
	} else {
		missesLocal[kindRoom].Inc()
		s := c.local.stamp(kindRoom, id, "")
		var err error
		e, err = flight(ctx, c, kindRoom, id, "", "", s, func(ctx context.Context) (roomEntry, error) {
			var e roomEntry
			raw, state := c.remote.get(ctx, kindRoom, id, "")
			if state == redisHit && json.Unmarshal([]byte(raw), &e) == nil {
				setIfCurrent(c.local, c.local.room, id, s, e)
				return e, nil
			}
			start := time.Now()
			room, err := c.store.GetRoom(ctx, id)
			switch {
			case err == nil:
				e = roomEntry{Room: room, Found: true}
			case errors.Is(err, schema.ErrNotFound):
				e = roomEntry{}
			default:
				return e, err
			}
			if state == redisMiss {
				data, _ := json.Marshal(e)
				c.remote.fill(ctx, start, kindRoom, [][2]string{{id, ""}}, []string{string(data)})
			}
			setIfCurrent(c.local, c.local.room, id, s, e)
			return e, nil
		})
		if err != nil {
			return store.Room{}, err
		}
	}
	if !e.Found {
		return store.Room{}, schema.Errorf(schema.CodeNotFound, "room %s not found", id)
	}
	return e.Room, nil
}

// CountMembers implements store.MetaStore.
func (c *Cache) CountMembers(ctx context.Context, room string) (int, error) {
	if n, ok := c.local.count.GetIfPresent(room); ok {
		hitsLocal[kindCount].Inc()
		return n, nil
	}
	missesLocal[kindCount].Inc()
	s := c.local.stamp(kindCount, room, "")
	return flight(ctx, c, kindCount, room, "", "", s, func(ctx context.Context) (int, error) {
		raw, state := c.remote.get(ctx, kindCount, room, "")
		if state == redisHit {
			if n, err := strconv.Atoi(raw); err == nil {
				setIfCurrent(c.local, c.local.count, room, s, n)
				return n, nil
			}
		}
		start := time.Now()
		n, err := c.store.CountMembers(ctx, room)
		if err != nil {
			return 0, err
		}
		if state == redisMiss {
			c.remote.fill(ctx, start, kindCount, [][2]string{{room, ""}}, []string{strconv.Itoa(n)})
		}
		setIfCurrent(c.local, c.local.count, room, s, n)
		return n, nil
	})
}

// ListMembers implements store.MetaStore. The slice returned is shared with the
// cache: callers only read it.
func (c *Cache) ListMembers(ctx context.Context, room, after string, limit int) ([]string, bool, error) {
	p, err := c.idPage(ctx, kindMemberPages, c.local.memberPages, room, pageKey{after, limit}, c.store.ListMembers)
	return slices.Clip(p.IDs), p.More, err
}

// ListBlocks implements store.MetaStore. The slice returned is shared with the cache:
// callers only read it.
func (c *Cache) ListBlocks(ctx context.Context, user, after string, limit int) ([]string, bool, error) {
	p, err := c.idPage(ctx, kindBlockPages, c.local.blockPages, user, pageKey{after, limit}, c.store.ListBlocks)
	return slices.Clip(p.IDs), p.More, err
}

func (c *Cache) idPage(ctx context.Context, k kind, l1 *otterPages[idPage], owner string, pk pageKey,
	fromStore func(context.Context, string, string, int) ([]string, bool, error)) (idPage, error) {
	if p, ok := getPage(l1, owner, pk); ok {
		hitsLocal[k].Inc()
		return p, nil
	}
	missesLocal[k].Inc()
	s := c.local.stamp(k, owner, "")
	return flight(ctx, c, k, owner, pk.after, strconv.Itoa(pk.limit), s, func(ctx context.Context) (idPage, error) {
		var p idPage
		raw, state := c.remote.getPage(ctx, k, owner, pk)
		if state == redisHit && json.Unmarshal([]byte(raw), &p) == nil {
			addPage(c.local, l1, owner, pk, s, p)
			return p, nil
		}
		start := time.Now()
		ids, more, err := fromStore(ctx, owner, pk.after, pk.limit)
		if err != nil {
			return p, err
		}
		p = idPage{IDs: ids, More: more}
		if state == redisMiss {
			data, _ := json.Marshal(p)
			c.remote.fillPage(ctx, start, k, owner, pk, string(data), nil)
		}
		addPage(c.local, l1, owner, pk, s, p)
		return p, nil
	})
}
