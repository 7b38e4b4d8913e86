package cache

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Levels and kinds, the labels of the hit and miss counters.
const (
	levelLocal = "local"
	levelRedis = "redis"
)

// kind is one sort of cached answer.
type kind uint8

const (
	kindMember      kind = iota // IsMember
	kindRoom                    // GetRoom
	kindCount                   // CountMembers
	kindMemberPages             // ListMembers
	kindUserPages               // UserRooms (room ids and read states)
	kindName                    // a room's name, joined into UserRooms pages
	kindBlocked                 // IsBlocked
	kindBlockPages              // ListBlocks
	numKinds
)

var kindNames = [numKinds]string{"member", "room", "count", "member_pages", "user_pages", "name", "blocked", "block_pages"}

func (k kind) String() string { return kindNames[k] }

// Metrics are process-wide: several caches in one process (tests) share them. The
// counters of the hot path are resolved once here, so that counting a hit is one
// atomic add and no label lookup.
var (
	metricHits = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cache_hits_total", Help: "Metadata cache hits, by level (local, redis) and kind of answer.",
	}, []string{"level", "kind"})
	metricMisses = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cache_misses_total", Help: "Metadata cache misses, by level (local, redis) and kind of answer.",
	}, []string{"level", "kind"})
	metricInvalidations = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cache_invalidations_total", Help: "Invalidation messages sent on and received from im.cache.inval.*, by direction.",
	}, []string{"direction"})
	metricRedisErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cache_redis_errors_total", Help: "Redis calls of the metadata cache that failed or timed out, by operation (get, fill, invalidate).",
	}, []string{"op"})
	metricLocalFlushes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "laneim_cache_local_flushes_total", Help: "Times the whole first level was dropped, by reason (reconnect: invalidations may have been lost while NATS was away; dropped: the subscription overflowed).",
	}, []string{"reason"})
	metricRedisRetriesDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "laneim_cache_redis_retries_dropped_total", Help: "Failed Redis invalidations not retried because the retry queue was full: Redis may serve their keys' old values until the fill TTL.",
	})

	hitsLocal, missesLocal, hitsRedis, missesRedis [numKinds]prometheus.Counter
	sentInvalidations                              = metricInvalidations.WithLabelValues("sent")
	receivedInvalidations                          = metricInvalidations.WithLabelValues("received")
	redisGetErrors                                 = metricRedisErrors.WithLabelValues("get")
	redisFillErrors                                = metricRedisErrors.WithLabelValues("fill")
	redisInvalErrors                               = metricRedisErrors.WithLabelValues("invalidate")
)

func init() {
	for k := range numKinds {
		hitsLocal[k] = metricHits.WithLabelValues(levelLocal, k.String())
		missesLocal[k] = metricMisses.WithLabelValues(levelLocal, k.String())
		hitsRedis[k] = metricHits.WithLabelValues(levelRedis, k.String())
		missesRedis[k] = metricMisses.WithLabelValues(levelRedis, k.String())
	}
}
