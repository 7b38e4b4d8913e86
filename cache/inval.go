package cache

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// touched calls fn for every cached entry a change of inv's rows makes stale:
//
//   - members (room, user): the membership, the user's room pages (read states live
//     there) and the room's member pages and count; an update (a read state: a change of
//     the key itself is announced as a delete and an insert) only the user's pages;
//   - rooms (room): the room and its name;
//   - blocks (user, blocked): the block and the user's block pages.
//
// A user's room pages do not hold names, so a rename touches one name entry rather
// than the pages of every member.
func touched(inv schema.Inval, fn func(k kind, a, b string)) {
	for _, key := range inv.Keys {
		if isWide(inv.Table, key) {
			if inv.Table == schema.TableMembers && key.Room != "" {
				fn(kindMemberPages, key.Room, "")
				fn(kindCount, key.Room, "")
			}
			continue // wide says the rest
		}
		switch inv.Table {
		case schema.TableMembers:
			fn(kindUserPages, key.User, "")
			if key.Change != schema.ChangeUpdate {
				fn(kindMember, key.Room, key.User)
				fn(kindMemberPages, key.Room, "")
				fn(kindCount, key.Room, "")
			}
		case schema.TableRooms:
			fn(kindRoom, key.Room, "")
			fn(kindName, key.Room, "")
		case schema.TableBlocks:
			fn(kindBlocked, key.User, key.Blocked)
			fn(kindBlockPages, key.User, "")
		}
	}
}

// isWide reports whether key names rows it does not list one by one: a key naming
// nothing (every row of the table: `laneim cdc` reads a TRUNCATE, ALTER, DROP or
// RENAME so), or a members key naming a room alone (every member of a room deleted in
// SQL, whose member rows the binlog does not show).
func isWide(table string, key schema.InvalKey) bool {
	switch table {
	case schema.TableMembers:
		return key.User == ""
	case schema.TableRooms:
		return key.Room == ""
	case schema.TableBlocks:
		return key.User == ""
	}
	return false
}

// wide returns what inv names beyond its keys: every entry (all), or the membership
// entries of rooms.
func wide(inv schema.Inval) (all bool, rooms []string) {
	for _, key := range inv.Keys {
		if !isWide(inv.Table, key) {
			continue
		}
		if inv.Table == schema.TableMembers && key.Room != "" {
			rooms = append(rooms, key.Room)
		} else {
			all = true
		}
	}
	return all, rooms
}

// Publisher announces changes to the metadata: it replaces the Redis entries they
// make stale with tombstones, and then publishes the schema.Inval on
// im.cache.inval.<table>, on which every node drops its first-level entries. Redis
// goes first: a node that drops its entry on the announcement and reads again must not
// find the old value in Redis.
//
// The Cache publishes after each write it passes to the store; `laneim cdc` publishes
// what it reads in the MySQL binlog.
type Publisher struct {
	nc     *nats.Conn     // set once at construction; nil: no announcements
	remote *remote        // set once at construction; nil without Redis
	log    zerolog.Logger // set once at construction

	// published counts announcements (tests wait for every node to have them).
	published atomic.Uint64

	mu      sync.Mutex    // guards retries
	retries []retry       // Redis invalidations that failed, oldest first
	wake    chan struct{} // signals the retry loop; buffered 1
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the retry loop ends
	once    sync.Once
}

// retry is a failed Redis invalidation, tried again until until: by then every value
// it was to delete has expired on its own (fills live at most RedisTTL).
type retry struct {
	inv   schema.Inval
	until time.Time
}

// maxRetries bounds the failed Redis invalidations kept for retrying: 4,096 of them is
// a minute of a busy node's writes while Redis is away.
const maxRetries = 4096

// retryEvery is the pause between rounds of retries.
const retryEvery = 250 * time.Millisecond

// NewPublisher returns a Publisher on cfg.NATS and cfg.Redis (either may be nil). Its
// Redis key layout and TTLs come from cfg, which must match the caches' (the same
// Config, or at least the same Redis settings).
func NewPublisher(cfg Config) *Publisher {
	cfg.defaults()
	p := &Publisher{
		nc:   cfg.NATS,
		log:  cfg.Logger,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if cfg.Redis != nil {
		p.remote = newRemote(cfg)
		go p.retryLoop()
	} else {
		close(p.done)
	}
	return p
}

// Publish announces inv: Redis first, then NATS. A Redis failure does not hold up
// the announcement: the invalidation is retried in the background, and announced again
// once Redis took it, so that no node keeps what it read from Redis meanwhile. The
// error is NATS's.
func (p *Publisher) Publish(ctx context.Context, inv schema.Inval) error {
	if len(inv.Keys) == 0 {
		return nil
	}
	if p.remote != nil {
		// While Redis is known to be away the invalidation goes straight to the
		// retries rather than cost every write a timeout.
		if !p.remote.usable() {
			p.enqueue(inv)
		} else if err := p.remote.invalidate(ctx, inv); err != nil {
			p.remote.failed(redisInvalErrors, err)
			p.log.Warn().Err(err).Str("table", inv.Table).Int("keys", len(inv.Keys)).
				Msg("cache: Redis invalidation failed, retrying in the background")
			p.enqueue(inv)
		}
	}
	return p.announce(inv)
}

func (p *Publisher) announce(inv schema.Inval) error {
	if p.nc == nil {
		return nil
	}
	data, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	if err := p.nc.Publish(subjects.CacheInvalT(inv.Table), data); err != nil {
		return err
	}
	sentInvalidations.Inc()
	p.published.Add(1)
	return nil
}

func (p *Publisher) enqueue(inv schema.Inval) {
	p.mu.Lock()
	if len(p.retries) >= maxRetries {
		p.mu.Unlock()
		metricRedisRetriesDropped.Inc()
		return
	}
	p.retries = append(p.retries, retry{inv: inv, until: time.Now().Add(p.remote.fillTTL)})
	p.remote.pending.Store(int64(len(p.retries)))
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) retryLoop() {
	defer close(p.done)
	ticker := time.NewTicker(retryEvery)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-ticker.C:
		}
		p.retryPending()
	}
}

// retryPending tries the pending invalidations in order and stops at the first that
// fails again: Redis is still away.
func (p *Publisher) retryPending() {
	p.mu.Lock()
	pending := p.retries
	p.retries = nil
	p.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	// pending stays counted until the round ends: reads skip Redis meanwhile.
	defer func() {
		p.mu.Lock()
		p.remote.pending.Store(int64(len(p.retries)))
		p.mu.Unlock()
	}()
	now := time.Now()
	for i, r := range pending {
		if now.After(r.until) {
			continue
		}
		if err := p.remote.invalidate(context.Background(), r.inv); err != nil {
			redisInvalErrors.Inc()
			p.mu.Lock()
			// Kept ahead of what failed since: the order of invalidations does not
			// matter to Redis (each one only deletes), but the oldest expire first.
			p.retries = append(pending[i:len(pending):len(pending)], p.retries...)
			if len(p.retries) > maxRetries {
				metricRedisRetriesDropped.Add(float64(len(p.retries) - maxRetries))
				p.retries = p.retries[len(p.retries)-maxRetries:]
			}
			p.mu.Unlock()
			return
		}
		if err := p.announce(r.inv); err != nil {
			p.log.Warn().Err(err).Str("table", r.inv.Table).Msg("cache: announcing a retried invalidation failed")
		}
	}
}

// Close stops retrying failed Redis invalidations.
func (p *Publisher) Close() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// apply drops the first-level entries an invalidation received names.
func (c *Cache) apply(inv schema.Inval) {
	if all, rooms := wide(inv); all || len(rooms) > 0 {
		// Entries cannot be found by room here: start over (a rare event).
		c.local.dropAll()
	}
	touched(inv, c.local.drop)
}

// listen subscribes to every node's invalidations and drops the whole first level
// whenever some may have been lost: on a NATS reconnect (core NATS does not keep
// messages for a client that is away) and when the subscription overflowed.
func (c *Cache) listen() error {
	nc := c.cfg.NATS
	c.status = nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	go func() {
		for range c.status {
			metricLocalFlushes.WithLabelValues("reconnect").Inc()
			c.local.dropAll()
		}
	}()
	var lastDropped int
	sub, err := nc.Subscribe(subjects.CacheInval, func(m *nats.Msg) {
		receivedInvalidations.Inc()
		if dropped, err := m.Sub.Dropped(); err == nil && dropped != lastDropped {
			lastDropped = dropped
			metricLocalFlushes.WithLabelValues("dropped").Inc()
			c.local.dropAll()
		}
		var inv schema.Inval
		if err := json.Unmarshal(m.Data, &inv); err != nil {
			c.cfg.Logger.Warn().Err(err).Str("subject", m.Subject).Msg("cache: undecodable invalidation ignored")
			return
		}
		c.apply(inv)
		c.received.Add(1)
	})
	if err != nil {
		nc.RemoveStatusListener(c.status)
		return err
	}
	c.sub = sub
	// The subscription is in place once the server has it: an invalidation published
	// after listen returns reaches this node.
	return nc.Flush()
}
