package partition

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/subjects"
)

// DefaultTTL is how long a group member's key outlives the member, and the
// consumers' PinnedTTL: a dead node's partitions move about this long after its last
// refresh. 3s keeps failover within a few seconds while leaving a refresh (every
// TTL/3) two chances to land.
const DefaultTTL = 3 * time.Second

// GroupConfig configures one node's membership in its role's partition group.
type GroupConfig struct {
	Role       string // "logic" or "pusher", set by the caller
	Node       string // unique among the role's live nodes, set by the caller
	Partitions int    // partitions to share, set by the caller
	// TTL is how long the member's key outlives it. Default DefaultTTL. The bucket
	// is created with it; a member's refreshes follow its own TTL.
	TTL time.Duration
	// Replicas of the im_partitions bucket if this node creates it. Default 1.
	Replicas int
	// Run consumes partition p until ctx ends, releases it and returns. Required.
	Run    func(ctx context.Context, p int)
	Logger zerolog.Logger
}

// GroupBucket opens (creating if needed, with replicas) the im_partitions bucket with
// keys living ttl. Nodes starting together may race to create it: the loser opens the
// winner's.
func GroupBucket(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, subjects.BucketPartitions)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         subjects.BucketPartitions,
			Description:    "laneIM partition group members",
			History:        1,
			TTL:            ttl,
			LimitMarkerTTL: ttl,
			Replicas:       max(replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, subjects.BucketPartitions)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", subjects.BucketPartitions, err)
	}
	return kv, nil
}

// Group is one node's membership in its role's partition group: it owns the
// partitions the assignment gives it among the live members and runs them.
type Group struct {
	cfg GroupConfig        // set once at construction
	kv  jetstream.KeyValue // set once at construction
	key string             // <role>.<node>, set once at construction
	// refreshed is when the last successful put of the key was sent, in UnixNano: the
	// member is healthy while it is recent. Written by the refresher, read by the loop.
	refreshed atomic.Int64
	stop      context.CancelFunc
	done      sync.WaitGroup

	mu    sync.Mutex
	owned []int // guarded by mu: the partitions owned, ascending
}

// claim is one partition's Run on this node. Owned by the loop.
type claim struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned (the partition is released)
}

// JoinGroup registers the node in its role's group and starts running the partitions
// it owns. Stop leaves the group.
func JoinGroup(ctx context.Context, js jetstream.JetStream, cfg GroupConfig) (*Group, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Role == "" || cfg.Node == "" || strings.ContainsAny(cfg.Role+cfg.Node, ".*> ") || cfg.Run == nil {
		return nil, fmt.Errorf("partition group: role %q and node %q must be non-empty NATS tokens, and Run set", cfg.Role, cfg.Node)
	}
	kv, err := GroupBucket(ctx, js, cfg.TTL, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg, kv: kv, key: cfg.Role + "." + cfg.Node}
	if err := g.put(ctx); err != nil {
		return nil, fmt.Errorf("join %s: %w", g.key, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	watcher, err := kv.Watch(runCtx, cfg.Role+".*")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", subjects.BucketPartitions, err)
	}
	g.stop = cancel
	g.done.Go(func() { g.refresh(runCtx) })
	g.done.Go(func() { g.loop(runCtx, watcher) })
	return g, nil
}

// Owned returns the partitions this node owns now.
func (g *Group) Owned() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.owned)
}

// Stop leaves the group: the key goes, so that the others start taking over at once,
// and every owned partition is released (each Run returns) before Stop does.
func (g *Group) Stop() {
	g.stop()
	g.done.Wait()
}

func (g *Group) put(ctx context.Context) error {
	// The key's TTL runs from when the server stored it, after sent: counting from
	// sent errs on the side of expiring early.
	sent := time.Now()
	if _, err := g.kv.Put(ctx, g.key, []byte(sent.UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	g.refreshed.Store(sent.UnixNano())
	return nil
}

// refresh puts the key every TTL/3 until ctx ends, then deletes it.
func (g *Group) refresh(ctx context.Context) {
	t := time.NewTicker(g.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			delCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = g.kv.Delete(delCtx, g.key)
			cancel()
			return
		case <-t.C:
			putCtx, cancel := context.WithTimeout(ctx, g.cfg.TTL/3)
			if err := g.put(putCtx); err != nil && ctx.Err() == nil {
				g.cfg.Logger.Warn().Err(err).Str("member", g.key).Msg("refresh partition group key")
			}
			cancel()
		}
	}
}

// healthy says whether the key was refreshed recently enough that it cannot have
// expired: past 2/3 of the TTL, the member gives everything up first.
func (g *Group) healthy() bool {
	return time.Since(time.Unix(0, g.refreshed.Load())) < 2*g.cfg.TTL/3
}

// loop follows the member set and starts and stops partitions. It owns claims.
func (g *Group) loop(ctx context.Context, watcher jetstream.KeyWatcher) {
	members := make(map[string]bool)
	claims := make(map[int]*claim)
	ready := false // the watcher has delivered every existing key
	check := time.NewTicker(g.cfg.TTL / 6)
	defer check.Stop()
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	updates := watcher.Updates()
	var rewatch <-chan time.Time // set while the watch is down
	wasHealthy := true
	for {
		select {
		case <-ctx.Done():
			g.assign(claims, nil)
			for _, c := range claims {
				<-c.done
			}
			return
		case entry, ok := <-updates:
			if !ok {
				// The watch ended (the connection closed): without a view of the
				// members, own nothing until it is back.
				g.cfg.Logger.Warn().Str("member", g.key).Msg("partition group watch ended; giving up every partition until it is back")
				updates, watcher, ready = nil, nil, false
				clear(members)
				g.assign(claims, nil)
				rewatch = time.After(g.cfg.TTL)
				continue
			}
			if entry == nil {
				ready = true
			} else {
				node := strings.TrimPrefix(entry.Key(), g.cfg.Role+".")
				if entry.Operation() == jetstream.KeyValuePut {
					members[node] = true
				} else {
					delete(members, node)
				}
			}
		case <-rewatch:
			w, err := g.kv.Watch(ctx, g.cfg.Role+".*")
			if err != nil {
				rewatch = time.After(g.cfg.TTL)
				continue
			}
			watcher, updates, rewatch = w, w.Updates(), nil
			continue
		case <-check.C:
			if healthy := g.healthy(); healthy == wasHealthy {
				continue
			} else if wasHealthy = healthy; !healthy {
				g.cfg.Logger.Warn().Str("member", g.key).Msg("partition group key not refreshed in time; giving up every partition")
			}
		}
		if !ready {
			continue
		}
		var live []string
		if g.healthy() {
			members[g.cfg.Node] = true // our own put may not have come back yet
			live = make([]string, 0, len(members))
			for node := range members {
				live = append(live, node)
			}
		}
		g.assign(claims, live)
	}
}

// assign starts Run for the partitions this node owns among live and cancels the
// others. A partition regained while its previous Run still releases starts once
// that Run returned.
func (g *Group) assign(claims map[int]*claim, live []string) {
	want := make(map[int]bool)
	for p, owner := range Assign(live, g.cfg.Partitions) {
		if owner == g.cfg.Node {
			want[p] = true
		}
	}
	var acquired, released []int
	for p, c := range claims {
		if !want[p] && c.cancel != nil {
			c.cancel()
			c.cancel = nil
			released = append(released, p)
		}
	}
	for p := range want {
		if c := claims[p]; c != nil && c.cancel != nil {
			continue
		}
		previous := claims[p]
		ctx, cancel := context.WithCancel(context.Background())
		c := &claim{cancel: cancel, done: make(chan struct{})}
		claims[p] = c
		acquired = append(acquired, p)
		go func() {
			defer close(c.done)
			if previous != nil {
				<-previous.done
			}
			g.cfg.Run(ctx, p)
		}()
	}
	if len(acquired) == 0 && len(released) == 0 {
		return
	}
	slices.Sort(acquired)
	slices.Sort(released)
	owned := make([]int, 0, len(want))
	for p := range want {
		owned = append(owned, p)
	}
	slices.Sort(owned)
	g.mu.Lock()
	g.owned = owned
	g.mu.Unlock()
	metricOwned.WithLabelValues(g.cfg.Role).Set(float64(len(owned)))
	metricHandovers.WithLabelValues(g.cfg.Role, "acquired").Add(float64(len(acquired)))
	metricHandovers.WithLabelValues(g.cfg.Role, "released").Add(float64(len(released)))
	g.cfg.Logger.Info().Str("role", g.cfg.Role).Str("node", g.cfg.Node).Int("members", len(live)).
		Ints("acquired", acquired).Ints("released", released).Ints("owned", owned).Msg("partitions moved")
}

// Assign maps each of n partitions to one of members (nil when there are none):
// rendezvous (highest-random-weight) hashing bounded to a fair share. Every
// (partition, member) pair has a pseudo-random weight; going through the pairs from
// the heaviest, a partition goes to the member of the pair while that member holds
// fewer than n/len(members) (rounded down); the n mod len(members) partitions left
// then go the same way, one each, to members that got no extra yet. Every member holds
// n/len(members) rounded down or up, every node computes the same map from the same
// set, and a join or leave moves little besides the joiner's or leaver's share,
// since a pair's weight does not depend on the other members.
func Assign(members []string, n int) []string {
	if len(members) == 0 || n <= 0 {
		return nil
	}
	members = slices.Clone(members)
	slices.Sort(members)
	members = slices.Compact(members)
	type pair struct {
		partition int
		member    int
		weight    uint64
	}
	pairs := make([]pair, 0, n*len(members))
	for p := range n {
		for i, m := range members {
			pairs = append(pairs, pair{p, i, weight(m, p)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.weight, a.weight); c != 0 {
			return c
		}
		if c := cmp.Compare(a.partition, b.partition); c != 0 {
			return c
		}
		return cmp.Compare(a.member, b.member)
	})
	base := n / len(members)
	count := make([]int, len(members))
	owner := make([]string, n)
	for _, pr := range pairs {
		if owner[pr.partition] == "" && count[pr.member] < base {
			owner[pr.partition] = members[pr.member]
			count[pr.member]++
		}
	}
	for _, pr := range pairs {
		if owner[pr.partition] == "" && count[pr.member] == base {
			owner[pr.partition] = members[pr.member]
			count[pr.member]++
		}
	}
	return owner
}

// weight is member's pseudo-random weight for partition p: FNV-1a, then a 64-bit
// finalizer so that members differing in one character spread well.
func weight(member string, p int) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(member))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(strconv.Itoa(p)))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9e53a2f7b09
	x ^= x >> 33
	return x
}

// NodeName is a default member name: the host name, as a NATS token, and a random
// suffix, so that two processes on one host are two members.
func NodeName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '-'
		}
		return r
	}, host)
	if host == "" {
		host = "node"
	}
	return host + "-" + strconv.FormatUint(rand.Uint64()%(1<<32), 36)
}
