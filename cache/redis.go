package cache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneim/laneim/schema"
)

// NewRedisClient returns a client of url (redis://[user:password@]host:port/db) whose
// calls give up after timeout, for Config.Redis. Its connections are opened lazily: a
// Redis that is down at start is used once it answers.
func NewRedisClient(url string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = defaultRedisTimeout
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.PoolTimeout = timeout
	opts.ContextTimeoutEnabled = true
	// One retry heals a pooled connection Redis closed while it restarted; more would
	// only hold a request longer when it is down.
	opts.MaxRetries = 1
	return redis.NewClient(opts), nil
}

// Values in Redis: strings are "=" and the encoded answer, or the tombstone "!" an
// invalidation leaves for TombstoneTTL; lists are hashes of pages under their owner,
// field after|limit, whose tombstone is the field "!".
const (
	valuePrefix = "="
	tombstone   = "!"
)

// redisCode names each kind in Redis keys: <prefix><code>:<id>[:<id>]. Ids are
// schema.ValidID (no ':').
var redisCode = [numKinds]string{"m", "r", "c", "ml", "ur", "n", "b", "bl"}

func isHash(k kind) bool { return k == kindMemberPages || k == kindUserPages || k == kindBlockPages }

// fillPageScript adds a page to a list's hash unless an invalidation left its
// tombstone there, and gives the hash its TTL when it starts (so that every page of it
// goes within the TTL of the first).
const fillPageScript = `if redis.call('HEXISTS', KEYS[1], '!') == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1`

// redisState is the outcome of a read from the second level.
type redisState uint8

const (
	redisHit  redisState = iota
	redisMiss            // absent or a tombstone: load, and fill
	redisDown            // failed, skipped or timed out: load, do not fill
)

// remote is the second level: Redis shared by every node. Every call is bounded by
// timeout; a failure is a miss that is not filled, and for backoff after it reads and
// fills skip Redis altogether, so that a Redis that hangs costs one timeout per
// backoff, not one per request.
type remote struct {
	rc        *redis.Client // set once at construction
	prefix    string        // set once at construction
	timeout   time.Duration // set once at construction
	fillTTL   time.Duration // set once at construction
	tombTTL   time.Duration // set once at construction
	backoff   time.Duration // set once at construction
	downUntil atomic.Int64  // Unix ns before which reads and fills skip Redis
	// pending counts the invalidations that failed and wait for a retry: Redis may
	// still hold what they are to delete, so reads and fills skip it meanwhile.
	pending atomic.Int64
}

func (r *remote) key(k kind, a, b string) string {
	var sb strings.Builder
	sb.Grow(len(r.prefix) + len(redisCode[k]) + len(a) + len(b) + 2)
	sb.WriteString(r.prefix)
	sb.WriteString(redisCode[k])
	sb.WriteByte(':')
	sb.WriteString(a)
	if b != "" {
		sb.WriteByte(':')
		sb.WriteString(b)
	}
	return sb.String()
}

func pageField(pk pageKey) string { return pk.after + "|" + strconv.Itoa(pk.limit) }

func (r *remote) usable() bool {
	return r != nil && r.pending.Load() == 0 && time.Now().UnixNano() >= r.downUntil.Load()
}

// failed counts err and backs off, unless the caller gave up (context.Canceled),
// which says nothing of Redis.
func (r *remote) failed(counter interface{ Inc() }, err error) {
	counter.Inc()
	if !errors.Is(err, context.Canceled) {
		r.downUntil.Store(time.Now().Add(r.backoff).UnixNano())
	}
}

func (r *remote) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// get reads one string answer.
func (r *remote) get(ctx context.Context, k kind, a, b string) (string, redisState) {
	if !r.usable() {
		return "", redisDown
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	v, err := r.rc.Get(ctx, r.key(k, a, b)).Result()
	return r.result(k, v, err)
}

// getPage reads one page of owner's list.
func (r *remote) getPage(ctx context.Context, k kind, owner string, pk pageKey) (string, redisState) {
	if !r.usable() {
		return "", redisDown
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	v, err := r.rc.HGet(ctx, r.key(k, owner, ""), pageField(pk)).Result()
	if err == nil {
		v = valuePrefix + v
	}
	return r.result(k, v, err)
}

func (r *remote) result(k kind, v string, err error) (string, redisState) {
	switch {
	case errors.Is(err, redis.Nil):
		missesRedis[k].Inc()
		return "", redisMiss
	case err != nil:
		r.failed(redisGetErrors, err)
		return "", redisDown
	case !strings.HasPrefix(v, valuePrefix):
		missesRedis[k].Inc()
		return "", redisMiss
	}
	hitsRedis[k].Inc()
	return v[len(valuePrefix):], redisHit
}

// mget reads the string answers of kind k for each id in one round trip; found[i]
// tells whether values[i] is one. ok is false when Redis could not be read.
func (r *remote) mget(ctx context.Context, k kind, ids []string) (values []string, found []bool, ok bool) {
	if !r.usable() || len(ids) == 0 {
		return nil, nil, false
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.key(k, id, "")
	}
	return r.mgetKeys(ctx, k, keys)
}

// mgetPairs is mget for the kinds keyed by two ids.
func (r *remote) mgetPairs(ctx context.Context, k kind, ids [][2]string) (values []string, found []bool, ok bool) {
	if !r.usable() || len(ids) == 0 {
		return nil, nil, false
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.key(k, id[0], id[1])
	}
	return r.mgetKeys(ctx, k, keys)
}

func (r *remote) mgetKeys(ctx context.Context, k kind, keys []string) (values []string, found []bool, ok bool) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := r.rc.MGet(ctx, keys...).Result()
	if err != nil {
		r.failed(redisGetErrors, err)
		return nil, nil, false
	}
	values, found = make([]string, len(keys)), make([]bool, len(keys))
	for i, v := range res {
		s, isString := v.(string)
		if isString && strings.HasPrefix(s, valuePrefix) {
			values[i], found[i] = s[len(valuePrefix):], true
			hitsRedis[k].Inc()
		} else {
			missesRedis[k].Inc()
		}
	}
	return values, found, true
}

// fresh reports whether a load that started at start may still fill: an invalidation
// during it left a tombstone that lives TombstoneTTL, and a fill must land while it
// does, or it could put back what the invalidation deleted.
func (r *remote) fresh(start time.Time) bool { return time.Since(start) < r.tombTTL/2 }

// fill stores string answers loaded from the store since start, unless a tombstone
// (or a fresher fill) holds their key: SET NX.
func (r *remote) fill(ctx context.Context, start time.Time, k kind, ids [][2]string, values []string) {
	if !r.usable() || len(ids) == 0 || !r.fresh(start) {
		return
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			p.SetNX(ctx, r.key(k, id[0], id[1]), valuePrefix+values[i], r.fillTTL)
		}
		return nil
	})
	if err != nil {
		r.failed(redisFillErrors, err)
	}
}

// fillPage stores a page loaded from the store since start, with the names of its
// rooms for a user's page, in one round trip.
func (r *remote) fillPage(ctx context.Context, start time.Time, k kind, owner string, pk pageKey, value string, names map[string]string) {
	if !r.usable() || !r.fresh(start) {
		return
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Eval(ctx, fillPageScript, []string{r.key(k, owner, "")}, pageField(pk), value, r.fillTTL.Milliseconds())
		for room, name := range names {
			p.SetNX(ctx, r.key(kindName, room, ""), valuePrefix+name, r.fillTTL)
		}
		return nil
	})
	if err != nil {
		r.failed(redisFillErrors, err)
	}
}

// invalidate replaces every entry inv touches by a tombstone, in one MULTI: a fill
// cannot slip between the delete of a list and its tombstone. It ignores the backoff:
// an invalidation is always tried.
func (r *remote) invalidate(parent context.Context, inv schema.Inval) error {
	ctx, cancel := r.ctx(parent)
	defer cancel()
	// A user leaving 500 rooms touches its room pages 500 times: once is enough.
	seen := make(map[string]bool, 4*len(inv.Keys))
	_, err := r.rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		touched(inv, func(k kind, a, b string) {
			key := r.key(k, a, b)
			if seen[key] {
				return
			}
			seen[key] = true
			if isHash(k) {
				p.Del(ctx, key)
				p.HSet(ctx, key, tombstone, "1")
				p.PExpire(ctx, key, r.tombTTL)
			} else {
				p.Set(ctx, key, tombstone, r.tombTTL)
			}
		})
		return nil
	})
	if err != nil {
		return err
	}
	// What the keys do not list one by one is found with SCAN. A fill racing the scan
	// may survive until its TTL: whole-table changes are an operator's TRUNCATE or
	// ALTER, and room deletions made in SQL.
	all, rooms := wide(inv)
	if !all && len(rooms) == 0 {
		return nil
	}
	ctx, cancelScan := context.WithTimeout(parent, wideTimeout)
	defer cancelScan()
	if all {
		return r.deleteMatching(ctx, r.prefix+"*")
	}
	for _, room := range rooms {
		if err := r.deleteMatching(ctx, r.key(kindMember, room, "")+":*"); err != nil {
			return err
		}
	}
	return nil
}

// wideTimeout bounds the scans of a wide invalidation.
const wideTimeout = 10 * time.Second

// deleteMatching deletes every key matching pattern, a scan page at a time.
func (r *remote) deleteMatching(ctx context.Context, pattern string) error {
	var cursor uint64
	for {
		keys, next, err := r.rc.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := r.rc.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
