package cache

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/laneim/laneim/store"
)

// pair keys an answer about two ids: (room, user) for membership, (user, blocked) for
// blocks.
type pair struct{ a, b string }

// pageKey is one page of a list: the id it starts after and its size.
type pageKey struct {
	after string
	limit int
}

// idPage is a page of ids (a room's members, a user's blocks).
type idPage struct {
	IDs  []string `json:"ids"`
	More bool     `json:"more"`
}

// userPage is a page of a user's rooms without their names, which are joined from the
// name entries (kindName): a rename then touches one entry per room, not the pages of
// every member.
type userPage struct {
	Rooms    []string `json:"rooms"`
	ReadSeqs []int64  `json:"read"`
	More     bool     `json:"more"`
}

// roomEntry is GetRoom's answer, a room or its absence.
type roomEntry struct {
	Room  store.Room `json:"room"`
	Found bool       `json:"found"`
}

// otterPages is a first-level cache of lists by owner.
type otterPages[P any] = otter.Cache[string, pageSet[P]]

// pageSet holds the cached pages of one list (a room's members, a user's rooms or
// blocks) under the list's owner, so that one invalidation drops them all. It is never
// changed once stored: adding a page stores a copy. A slice, not a map: nearly every
// owner has one page (a user's first 500 rooms), and a map of one entry costs some
// 600 bytes more, for every identified user.
type pageSet[P any] []ownedPage[P]

type ownedPage[P any] struct {
	key  pageKey
	page P
}

// maxPagesPerOwner bounds a pageSet: a user in 10,000 rooms reads 20 pages of 500.
const maxPagesPerOwner = 64

// genShards is the number of invalidation generations. An invalidation bumps the one
// of its key; a load stores its answer only if the generation it read before loading
// is unchanged. Keys sharing a shard just lose a fill now and then.
const genShards = 4096

// local is the first level: otter caches in this process, one per kind of answer, each
// with a TTL that bounds an entry's life should an invalidation be lost anyway.
type local struct {
	member      *otter.Cache[pair, bool]
	blocked     *otter.Cache[pair, bool]
	room        *otter.Cache[string, roomEntry]
	count       *otter.Cache[string, int]
	name        *otter.Cache[string, string]
	memberPages *otter.Cache[string, pageSet[idPage]]
	userPages   *otter.Cache[string, pageSet[userPage]]
	blockPages  *otter.Cache[string, pageSet[idPage]]

	seed  maphash.Seed             // set once at construction
	epoch atomic.Uint64            // bumped when everything is dropped
	gens  [genShards]atomic.Uint64 // bumped by an invalidation of a key of the shard
}

func newOtter[K comparable, V any](size int, ttl time.Duration) *otter.Cache[K, V] {
	return otter.Must(&otter.Options[K, V]{
		MaximumSize:      size,
		ExpiryCalculator: otter.ExpiryWriting[K, V](ttl),
	})
}

func newLocal(size int, ttl time.Duration) *local {
	// Pages are larger than single answers: fewer of them.
	pages := max(size/16, 64)
	return &local{
		member:      newOtter[pair, bool](size, ttl),
		blocked:     newOtter[pair, bool](size/4, ttl),
		room:        newOtter[string, roomEntry](size/4, ttl),
		count:       newOtter[string, int](size/4, ttl),
		name:        newOtter[string, string](size/4, ttl),
		memberPages: newOtter[string, pageSet[idPage]](pages, ttl),
		userPages:   newOtter[string, pageSet[userPage]](pages, ttl),
		blockPages:  newOtter[string, pageSet[idPage]](pages, ttl),
		seed:        maphash.MakeSeed(),
	}
}

// stamp is what a load captures before it starts: the generation of its key's shard
// and the epoch.
type stamp struct {
	shard uint32
	epoch uint64
	gen   uint64
}

func (l *local) shard(k kind, a, b string) uint32 {
	if k == kindName {
		// Names share one shard: a user's page fills the names of rooms it learns
		// only from the load, so it cannot stamp them one by one beforehand. Renames
		// are rare.
		return 0
	}
	h := maphash.String(l.seed, a)*31 + maphash.String(l.seed, b) + uint64(k)
	return uint32(h % genShards)
}

func (l *local) stamp(k kind, a, b string) stamp {
	s := stamp{shard: l.shard(k, a, b)}
	// The epoch is read first: dropAll bumps it before clearing, so a load that
	// captured the old epoch cannot store after the clear.
	s.epoch = l.epoch.Load()
	s.gen = l.gens[s.shard].Load()
	return s
}

// current reports whether nothing invalidated s's shard since s was taken.
func (l *local) current(s stamp) bool {
	return l.epoch.Load() == s.epoch && l.gens[s.shard].Load() == s.gen
}

// setIfCurrent stores v under key unless an invalidation of its shard happened since
// s. An invalidation racing the store itself is caught by the check after it: the
// invalidation bumps the generation before it deletes, so either this check sees the
// bump or the delete comes after the store.
func setIfCurrent[K comparable, V any](l *local, c *otter.Cache[K, V], key K, s stamp, v V) bool {
	if !l.current(s) {
		return false
	}
	c.Set(key, v)
	if !l.current(s) {
		c.Invalidate(key)
		return false
	}
	return true
}

// addPage stores page p of owner's list unless an invalidation of owner happened since
// s.
func addPage[P any](l *local, c *otter.Cache[string, pageSet[P]], owner string, pk pageKey, s stamp, p P) {
	old, _ := c.GetIfPresent(owner)
	set := make(pageSet[P], 0, min(len(old)+1, maxPagesPerOwner))
	if len(old) < maxPagesPerOwner {
		for _, op := range old {
			if op.key != pk {
				set = append(set, op)
			}
		}
	}
	set = append(set, ownedPage[P]{pk, p})
	setIfCurrent(l, c, owner, s, set)
}

func getPage[P any](c *otter.Cache[string, pageSet[P]], owner string, pk pageKey) (P, bool) {
	set, _ := c.GetIfPresent(owner)
	for _, op := range set {
		if op.key == pk {
			return op.page, true
		}
	}
	var zero P
	return zero, false
}

// drop invalidates one key of kind k: (a, b) for the pair kinds, a alone for the rest.
func (l *local) drop(k kind, a, b string) {
	l.gens[l.shard(k, a, b)].Add(1)
	switch k {
	case kindMember:
		l.member.Invalidate(pair{a, b})
	case kindBlocked:
		l.blocked.Invalidate(pair{a, b})
	case kindRoom:
		l.room.Invalidate(a)
	case kindCount:
		l.count.Invalidate(a)
	case kindName:
		l.name.Invalidate(a)
	case kindMemberPages:
		l.memberPages.Invalidate(a)
	case kindUserPages:
		l.userPages.Invalidate(a)
	case kindBlockPages:
		l.blockPages.Invalidate(a)
	}
}

// dropAll empties the first level.
func (l *local) dropAll() {
	l.epoch.Add(1)
	l.member.InvalidateAll()
	l.blocked.InvalidateAll()
	l.room.InvalidateAll()
	l.count.InvalidateAll()
	l.name.InvalidateAll()
	l.memberPages.InvalidateAll()
	l.userPages.InvalidateAll()
	l.blockPages.InvalidateAll()
}

func (l *local) close() {
	l.member.StopAllGoroutines()
	l.blocked.StopAllGoroutines()
	l.room.StopAllGoroutines()
	l.count.StopAllGoroutines()
	l.name.StopAllGoroutines()
	l.memberPages.StopAllGoroutines()
	l.userPages.StopAllGoroutines()
	l.blockPages.StopAllGoroutines()
}
