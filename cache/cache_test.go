package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/testsvc"
)

func TestMain(m *testing.M) { testsvc.Main(m) }

// env is one metadata store shared by the caches of several nodes, with an embedded
// nats-server between them and optionally Redis.
type env struct {
	t     *testing.T
	path  string // of the SQLite database
	store *store.SQLite
	nats  *embednats.Server
	redis string // URL, "" without Redis
}

func newEnv(t *testing.T, redisURL string) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	st, err := store.OpenSQLite(path, store.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ns := embednats.StartTest(t)
	return &env{t: t, path: path, store: st, nats: ns, redis: redisURL}
}

// node starts a cache of its own (its own NATS connection and first level) in front
// of meta, the env's store unless given.
func (e *env) node(meta store.MetaStore, tune ...func(*Config)) *Cache {
	e.t.Helper()
	if meta == nil {
		meta = e.store
	}
	nc, err := e.nats.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	cfg := Config{NATS: nc}
	if e.redis != "" {
		rc, err := NewRedisClient(e.redis, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { rc.Close() })
		cfg.Redis = rc
	}
	for _, f := range tune {
		f(&cfg)
	}
	c := New(meta, cfg)
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// levels runs f without and with Redis.
func levels(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("local", func(t *testing.T) { f(t, newEnv(t, "")) })
	t.Run("redis", func(t *testing.T) { f(t, newEnv(t, testsvc.RedisURL(t))) })
}

// settle waits until each of nodes has received every announcement any of them sent
// (its own included, which drop its entries once more: a fill of its own between the
// write and the arrival would be dropped, and tests that count loads would count it).
func settle(t *testing.T, nodes ...*Cache) {
	t.Helper()
	eventually(t, "every announcement received", func() bool {
		var sent uint64
		for _, n := range nodes {
			sent += n.pub.published.Load()
		}
		for _, n := range nodes {
			if n.received.Load() < sent {
				return false
			}
		}
		return true
	})
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func must[V any](t *testing.T) func(V, error) V {
	return func(v V, err error) V {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func isMember(t *testing.T, m store.MetaStore, room, user string) bool {
	t.Helper()
	return must[bool](t)(m.IsMember(context.Background(), room, user))
}

func userRooms(t *testing.T, m store.MetaStore, user, after string, limit int) []store.UserRoom {
	t.Helper()
	rooms, _, err := m.UserRooms(context.Background(), user, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	return rooms
}

// TestAnswersFollowWrites checks every cached answer against the store after each kind
// of write, read through the writing node and through another node, twice each (a miss,
// then a hit).
func TestAnswersFollowWrites(t *testing.T) {
	levels(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.node(nil), e.node(nil)
		nodes := []*Cache{a, b, a, b}
		check := func(step string) {
			t.Helper()
			for i, n := range nodes {
				for _, room := range []string{"r1", "r2", "nope"} {
					for _, user := range []string{"alice", "bob", "carol"} {
						if got, want := isMember(t, n, room, user), isMember(t, e.store, room, user); got != want {
							t.Errorf("%s, node %d: IsMember(%s, %s) = %v, store %v", step, i, room, user, got, want)
						}
					}
					gotRoom, gotErr := n.GetRoom(ctx, room)
					wantRoom, wantErr := e.store.GetRoom(ctx, room)
					if gotRoom != wantRoom || errors.Is(gotErr, schema.ErrNotFound) != errors.Is(wantErr, schema.ErrNotFound) {
						t.Errorf("%s, node %d: GetRoom(%s) = %+v %v, store %+v %v", step, i, room, gotRoom, gotErr, wantRoom, wantErr)
					}
					if got, want := must[int](t)(n.CountMembers(ctx, room)), must[int](t)(e.store.CountMembers(ctx, room)); got != want {
						t.Errorf("%s, node %d: CountMembers(%s) = %d, store %d", step, i, room, got, want)
					}
					for _, after := range []string{"", "alice"} {
						got, gotMore, _ := n.ListMembers(ctx, room, after, 1)
						want, wantMore, _ := e.store.ListMembers(ctx, room, after, 1)
						if !slices.Equal(got, want) || gotMore != wantMore {
							t.Errorf("%s, node %d: ListMembers(%s, %q) = %v %v, store %v %v", step, i, room, after, got, gotMore, want, wantMore)
						}
					}
				}
				var pairs [][2]string
				for _, room := range []string{"r1", "r2", "nope"} {
					for _, user := range []string{"alice", "bob", "carol"} {
						pairs = append(pairs, [2]string{room, user})
					}
				}
				batch := must[[]bool](t)(n.AreMembers(ctx, pairs))
				for j, p := range pairs {
					if want := isMember(t, e.store, p[0], p[1]); batch[j] != want {
						t.Errorf("%s, node %d: AreMembers %v = %v, store %v", step, i, p, batch[j], want)
					}
				}
				for _, user := range []string{"alice", "bob", "carol"} {
					for _, page := range []struct {
						after string
						limit int
					}{{"", 0}, {"", 1}, {"r1", 1}} {
						got, want := userRooms(t, n, user, page.after, page.limit), userRooms(t, e.store, user, page.after, page.limit)
						if !slices.Equal(got, want) {
							t.Errorf("%s, node %d: UserRooms(%s, %q, %d) = %+v, store %+v", step, i, user, page.after, page.limit, got, want)
						}
					}
					for _, other := range []string{"alice", "bob"} {
						if got, want := must[bool](t)(n.IsBlocked(ctx, user, other)), must[bool](t)(e.store.IsBlocked(ctx, user, other)); got != want {
							t.Errorf("%s, node %d: IsBlocked(%s, %s) = %v, store %v", step, i, user, other, got, want)
						}
					}
					got, _, _ := n.ListBlocks(ctx, user, "", 0)
					want, _, _ := e.store.ListBlocks(ctx, user, "", 0)
					if !slices.Equal(got, want) {
						t.Errorf("%s, node %d: ListBlocks(%s) = %v, store %v", step, i, user, got, want)
					}
				}
			}
		}
		// Other nodes learn of a write over NATS, a moment later.
		settle := func() { t.Helper(); settle(t, a, b) }
		check("empty")
		steps := []struct {
			name  string
			write func() error
		}{
			{"create r1", func() error {
				return a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{})
			}},
			{"create r2", func() error { return a.CreateRoom(ctx, store.Room{ID: "r2", Name: "two", Owner: "bob"}, store.Caps{}) }},
			{"add bob", func() error { _, err := a.AddMember(ctx, "r1", "bob", store.Caps{}); return err }},
			{"add alice", func() error { _, err := b.AddMember(ctx, "r2", "alice", store.Caps{}); return err }},
			{"read", func() error { _, err := a.SetRead(ctx, "bob", "r1", 7); return err }},
			{"remove bob", func() error { _, err := b.RemoveMember(ctx, "r1", "bob"); return err }},
			{"block", func() error { _, err := a.Block(ctx, "carol", "alice", store.Caps{}); return err }},
			{"unblock", func() error { _, err := b.Unblock(ctx, "carol", "alice"); return err }},
			{"add carol", func() error { _, err := a.AddMember(ctx, "r2", "carol", store.Caps{}); return err }},
			{"rename", func() error { return b.RenameRoom(ctx, "r2", "renamed") }},
			{"transfer", func() error { return a.TransferRoom(ctx, "r2", "alice", store.Caps{}) }},
			{"moderator", func() error { _, err := b.SetModerator(ctx, "r2", "carol", true); return err }},
			{"leave", func() error { _, err := a.LeaveRooms(ctx, "alice", []string{"r1", "r2"}); return err }},
			{"delete r2", func() error { _, err := b.DeleteRoom(ctx, "r2"); return err }},
			{"create r2 again", func() error {
				return a.CreateRoom(ctx, store.Room{ID: "r2", Name: "again", Owner: "carol"}, store.Caps{})
			}},
		}
		for _, s := range steps {
			if err := s.write(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			settle()
			check(s.name)
		}
	})
}

// TestRenameSeenInRoomPages: a room's name is joined into its members' room pages from
// its own entry, so a rename (announced as the CDC announces a row changed in SQL)
// shows in every page at once.
func TestRenameSeenInRoomPages(t *testing.T) {
	levels(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.node(nil), e.node(nil)
		if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "old", Owner: "alice"}, store.Caps{}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AddMember(ctx, "r1", "bob", store.Caps{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*Cache{a, b} {
			for _, user := range []string{"alice", "bob"} {
				if got := userRooms(t, n, user, "", 0); len(got) != 1 || got[0].Name != "old" {
					t.Fatalf("rooms of %s: %+v", user, got)
				}
			}
		}
		e.exec(`UPDATE rooms SET name = 'new' WHERE id = 'r1'`)
		pub := NewPublisher(Config{NATS: a.cfg.NATS, Redis: a.cfg.Redis})
		defer pub.Close()
		if err := pub.Publish(ctx, schema.Inval{Table: schema.TableRooms, Keys: []schema.InvalKey{{Room: "r1", Change: schema.ChangeUpdate}}}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*Cache{a, b} {
			for _, user := range []string{"alice", "bob"} {
				eventually(t, "the new name in "+user+"'s rooms", func() bool {
					got := userRooms(t, n, user, "", 0)
					return len(got) == 1 && got[0].Name == "new"
				})
			}
			if room := must[store.Room](t)(n.GetRoom(ctx, "r1")); room.Name != "new" {
				t.Errorf("GetRoom: %+v", room)
			}
		}
	})
}

// exec runs SQL on the database behind the store's and the caches' back, as an
// operator's tool would.
func (e *env) exec(query string) {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		e.t.Fatal(err)
	}
}

// gatedStore is the real SQLite store, whose IsMember and UserRooms, once armed, read
// the store and then wait for release before returning: a load that read the old value
// and is held until an invalidation has happened.
type gatedStore struct {
	*store.SQLite
	armed      atomic.Bool
	loaded     chan struct{} // receives once a gated read has read the store
	release    chan struct{} // closed by the test to let it return
	isMember   atomic.Int64  // IsMember calls that reached the store
	areMembers atomic.Int64  // AreMembers calls that reached the store
}

func newGatedStore(st *store.SQLite) *gatedStore {
	return &gatedStore{SQLite: st, loaded: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gatedStore) gate() {
	if g.armed.CompareAndSwap(true, false) {
		g.loaded <- struct{}{}
		<-g.release
	}
}

func (g *gatedStore) IsMember(ctx context.Context, room, user string) (bool, error) {
	g.isMember.Add(1)
	v, err := g.SQLite.IsMember(ctx, room, user)
	g.gate()
	return v, err
}

func (g *gatedStore) AreMembers(ctx context.Context, pairs [][2]string) ([]bool, error) {
	g.areMembers.Add(1)
	v, err := g.SQLite.AreMembers(ctx, pairs)
	g.gate()
	return v, err
}

func (g *gatedStore) UserRooms(ctx context.Context, user, after string, limit int) ([]store.UserRoom, bool, error) {
	rooms, more, err := g.SQLite.UserRooms(ctx, user, after, limit)
	g.gate()
	return rooms, more, err
}

// TestNoStaleRefill forces the race: node a's load reads "member" from the store and
// is held; meanwhile the member is removed (through a, or through node b) and the
// invalidation is received; then the load returns. Its old answer may go to the caller
// that asked before the removal, but must not stay in either level: a's next read,
// and a third node's first, say "not a member".
func TestNoStaleRefill(t *testing.T) {
	levels(t, func(t *testing.T, e *env) {
		for i, tc := range []struct{ writer, reader string }{
			{"same node", "IsMember"}, {"other node", "IsMember"},
			{"same node", "AreMembers"}, {"other node", "AreMembers"},
		} {
			writer := tc.writer
			t.Run(tc.writer+", "+tc.reader, func(t *testing.T) {
				ctx := context.Background()
				room := fmt.Sprint("r", i)
				gated := newGatedStore(e.store)
				a := e.node(gated)
				w := a
				if writer == "other node" {
					w = e.node(nil)
				}
				if err := w.CreateRoom(ctx, store.Room{ID: room, Name: room, Owner: "alice"}, store.Caps{}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.AddMember(ctx, room, "bob", store.Caps{}); err != nil {
					t.Fatal(err)
				}
				if w == a {
					settle(t, a)
				} else {
					settle(t, a, w)
				}
				received := receivedCount(t, a)

				gated.armed.Store(true)
				type answer struct {
					member bool
					err    error
				}
				first := make(chan answer, 1)
				go func() {
					if tc.reader == "IsMember" {
						v, err := a.IsMember(ctx, room, "bob")
						first <- answer{v, err}
						return
					}
					v, err := a.AreMembers(ctx, [][2]string{{room, "alice"}, {room, "bob"}})
					if err != nil {
						first <- answer{false, err}
						return
					}
					first <- answer{v[1], err}
				}()
				<-gated.loaded // the load has read "member"
				if _, err := w.RemoveMember(ctx, room, "bob"); err != nil {
					t.Fatal(err)
				}
				// The invalidation has reached a: by a's own write, or over NATS.
				eventually(t, "a received the invalidation", func() bool { return receivedCount(t, a) > received })
				close(gated.release)
				if got := <-first; got.err != nil || !got.member {
					t.Fatalf("the held load answered %v %v, want the old true", got.member, got.err)
				}
				if isMember(t, a, room, "bob") {
					t.Fatal("a's next read is the stale answer")
				}
				if v, err := a.AreMembers(ctx, [][2]string{{room, "bob"}}); err != nil || v[0] {
					t.Fatalf("a's next batch read: %v %v", v, err)
				}
				if e.redis != "" {
					raw := redisValue(t, a, a.remote.key(kindMember, room, "bob"))
					if raw == valuePrefix+"1" {
						t.Fatal("Redis holds the stale answer")
					}
				}
				if isMember(t, e.node(nil), room, "bob") {
					t.Fatal("a fresh node reads the stale answer")
				}
				// After the tombstone is gone a fill is allowed again, and is fresh.
				if e.redis != "" {
					time.Sleep(a.cfg.TombstoneTTL + 100*time.Millisecond)
					if isMember(t, e.node(nil), room, "bob") {
						t.Fatal("a node reads the stale answer after the tombstone expired")
					}
				}
			})
		}
	})
}

// TestNoStaleRefillOfRoomPages: the same race on a user's room pages, whose read state
// changes.
func TestNoStaleRefillOfRoomPages(t *testing.T) {
	levels(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		gated := newGatedStore(e.store)
		a := e.node(gated)
		if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
			t.Fatal(err)
		}
		gated.armed.Store(true)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = a.UserRooms(ctx, "alice", "", 0)
		}()
		<-gated.loaded
		if _, err := a.SetRead(ctx, "alice", "r1", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := a.LeaveRooms(ctx, "alice", []string{"r1"}); err != nil {
			t.Fatal(err)
		}
		close(gated.release)
		<-done
		if got := userRooms(t, a, "alice", "", 0); len(got) != 0 {
			t.Fatalf("rooms after leaving: %+v", got)
		}
	})
}

func receivedCount(t *testing.T, c *Cache) uint64 { return c.received.Load() }

// redisValue reads key through c's Redis client: "" when absent, "error: ..." when
// Redis did not answer.
func redisValue(t *testing.T, c *Cache, key string) string {
	t.Helper()
	v, err := c.cfg.Redis.Get(context.Background(), key).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return v
}

// TestMissesCollapse: concurrent misses of one answer load it from the store once.
func TestMissesCollapse(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	gated := newGatedStore(e.store)
	a := e.node(gated)
	if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	gated.armed.Store(true)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if !isMember(t, a, "r1", "alice") {
				t.Error("alice is not a member")
			}
		})
	}
	<-gated.loaded
	// Let the others pile up behind the held load before releasing it.
	time.Sleep(50 * time.Millisecond)
	close(gated.release)
	wg.Wait()
	if n := gated.isMember.Load(); n != 1 {
		t.Fatalf("%d loads from the store, want 1", n)
	}
}

// TestNonMembershipCached: a refusal is answered from memory as well.
func TestNonMembershipCached(t *testing.T) {
	e := newEnv(t, "")
	gated := newGatedStore(e.store)
	a := e.node(gated)
	for range 100 {
		if isMember(t, a, "r1", "mallory") {
			t.Fatal("mallory is a member")
		}
	}
	if n := gated.isMember.Load(); n != 1 {
		t.Fatalf("%d loads from the store, want 1", n)
	}
}

// TestReconnectDropsLocal: an invalidation lost while NATS was away (here: a change
// made behind the cache's back and never announced) cannot outlive the reconnect.
func TestReconnectDropsLocal(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	a := e.node(nil)
	if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	if !isMember(t, a, "r1", "alice") {
		t.Fatal("alice is not a member")
	}
	if _, err := e.store.RemoveMember(ctx, "r1", "alice"); err != nil {
		t.Fatal(err)
	}
	if !isMember(t, a, "r1", "alice") {
		t.Fatal("the unannounced change is seen before the reconnect: the test proves nothing")
	}
	epoch := a.local.epoch.Load()
	if err := a.cfg.NATS.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first level dropped", func() bool { return a.local.epoch.Load() > epoch })
	if isMember(t, a, "r1", "alice") {
		t.Fatal("stale after the reconnect")
	}
}

// TestStoreDown: what the first level holds keeps serving; a miss and a write fail
// with the store's error.
func TestStoreDown(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	a := e.node(nil)
	if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	if !isMember(t, a, "r1", "alice") || isMember(t, a, "r1", "mallory") {
		t.Fatal("membership wrong")
	}
	if _, err := a.GetRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	if !isMember(t, a, "r1", "alice") || isMember(t, a, "r1", "mallory") {
		t.Fatal("cached membership not served with the store down")
	}
	if _, err := a.GetRoom(ctx, "r1"); err != nil {
		t.Fatalf("cached room not served with the store down: %v", err)
	}
	if _, err := a.IsMember(ctx, "r1", "bob"); err == nil {
		t.Fatal("a miss answered with the store down")
	}
	if _, err := a.AddMember(ctx, "r1", "bob", store.Caps{}); err == nil {
		t.Fatal("a write succeeded with the store down")
	}
	// A write that failed changed nothing and drops nothing: alice still sends.
	if _, err := a.RemoveMember(ctx, "r1", "alice"); err == nil {
		t.Fatal("a write succeeded with the store down")
	}
	if !isMember(t, a, "r1", "alice") {
		t.Fatal("a failed write dropped a cached membership")
	}
}

// TestRedisDown: with Redis stopped the cache answers from the first level and the
// store, right after writes too; once Redis is back it is used again, and nothing it
// held before is served stale.
func TestRedisDown(t *testing.T) {
	r := testsvc.StartRedis(t)
	e := newEnv(t, r.URL(0))
	ctx := context.Background()
	a, b := e.node(nil, fastRedis), e.node(nil, fastRedis)
	if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	if _, err := a.AddMember(ctx, "r1", "bob", store.Caps{}); err != nil {
		t.Fatal(err)
	}
	waitFilled(t, a, "r1", "bob", true)
	if !isMember(t, b, "r1", "bob") {
		t.Fatal("bob is not a member")
	}

	r.Stop()
	start := time.Now()
	if _, err := b.RemoveMember(ctx, "r1", "bob"); err != nil {
		t.Fatalf("remove with Redis down: %v", err)
	}
	if _, err := a.AddMember(ctx, "r1", "carol", store.Caps{}); err != nil {
		t.Fatalf("add with Redis down: %v", err)
	}
	if err := b.cfg.NATS.Flush(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees bob's removal", func() bool { return !isMember(t, a, "r1", "bob") })
	for _, n := range []*Cache{a, b} {
		if isMember(t, n, "r1", "bob") || !isMember(t, n, "r1", "carol") {
			t.Fatal("membership wrong with Redis down")
		}
		if rooms := userRooms(t, n, "carol", "", 0); len(rooms) != 1 || rooms[0].Name != "one" {
			t.Fatalf("carol's rooms with Redis down: %+v", rooms)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("serving with Redis down took %v", took)
	}

	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	// Back: a new answer is filled into Redis again.
	waitFilled(t, a, "r1", "dave", false)
	for _, n := range []*Cache{a, b} {
		n.local.dropAll()
		if isMember(t, n, "r1", "bob") || !isMember(t, n, "r1", "carol") {
			t.Fatal("membership wrong after Redis returned")
		}
	}
}

// fastRedis shortens the backoff after a Redis failure and the tombstones of
// invalidations, which keep fills out of Redis meanwhile.
func fastRedis(c *Config) {
	c.RedisBackoff = 50 * time.Millisecond
	c.TombstoneTTL = 300 * time.Millisecond
}

// waitFilled reads (room, user) on c until Redis holds the answer want: the first
// reads after an invalidation are not filled while its tombstone lives.
func waitFilled(t *testing.T, c *Cache, room, user string, want bool) {
	t.Helper()
	raw := valuePrefix + "0"
	if want {
		raw = valuePrefix + "1"
	}
	eventually(t, "Redis holds the membership", func() bool {
		c.local.dropAll()
		if isMember(t, c, room, user) != want {
			t.Fatalf("IsMember(%s, %s) is not %v", room, user, want)
		}
		return redisValue(t, c, c.remote.key(kindMember, room, user)) == raw
	})
}

// TestRedisInvalidationRetried: an invalidation that failed while Redis was unreachable
// is retried once it answers, so that the old value it still holds (here: Redis
// paused rather than restarted) is not served.
func TestRedisInvalidationRetried(t *testing.T) {
	r := testsvc.StartRedis(t)
	e := newEnv(t, r.URL(0))
	ctx := context.Background()
	a, b := e.node(nil, fastRedis), e.node(nil, fastRedis)
	if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	waitFilled(t, a, "r1", "alice", true)
	key := a.remote.key(kindMember, "r1", "alice")
	// Make Redis unreachable for a's publisher alone by pausing its clients; the
	// value stays in Redis.
	pause(t, e.redis, 1500*time.Millisecond)
	if _, err := a.RemoveMember(ctx, "r1", "alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retried invalidation reached Redis", func() bool {
		v := redisValue(t, a, key)
		return v != valuePrefix+"1" && !strings.HasPrefix(v, "error")
	})
	if isMember(t, b, "r1", "alice") {
		t.Fatal("b reads the stale answer")
	}
}

// pause makes Redis hold every client's commands for d (CLIENT PAUSE).
func pause(t *testing.T, url string, d time.Duration) {
	t.Helper()
	rc, err := NewRedisClient(url, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Do(context.Background(), "CLIENT", "PAUSE", fmt.Sprint(d.Milliseconds()), "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
}

// TestManyKeysOneRoundTrip: a user's page of rooms read from Redis on a node that has
// none of it costs one HGET for the page and one MGET for all the names.
func TestManyKeysOneRoundTrip(t *testing.T) {
	e := newEnv(t, testsvc.RedisURL(t))
	ctx := context.Background()
	a := e.node(nil, fastRedis)
	for i := range 200 {
		room := fmt.Sprintf("r%03d", i)
		if err := a.CreateRoom(ctx, store.Room{ID: room, Name: "name " + room, Owner: "alice"}, store.Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	// Past the tombstones of the creations, a's read fills Redis.
	time.Sleep(a.cfg.TombstoneTTL)
	want := userRooms(t, a, "alice", "", 0)
	b := e.node(nil, fastRedis)
	warmRedis(t, b)
	var trips atomic.Int64
	b.cfg.Redis.AddHook(countTrips{&trips})
	pageHits, nameHits := testutil.ToFloat64(hitsRedis[kindUserPages]), testutil.ToFloat64(hitsRedis[kindName])
	got := userRooms(t, b, "alice", "", 0)
	if !slices.Equal(got, want) || len(got) != 200 {
		t.Fatalf("rooms from Redis differ: %d rooms", len(got))
	}
	if n := trips.Load(); n != 2 {
		t.Fatalf("%d Redis round trips, want 2 (page, names)", n)
	}
	// Tests run one at a time: the process-wide counters moved by this read alone.
	if d := testutil.ToFloat64(hitsRedis[kindUserPages]) - pageHits; d != 1 {
		t.Errorf("Redis page hits counted %v, want 1", d)
	}
	if d := testutil.ToFloat64(hitsRedis[kindName]) - nameHits; d != 200 {
		t.Errorf("Redis name hits counted %v, want 200", d)
	}
}

// warmRedis connects c's Redis client before a test counts round trips: go-redis
// keeps pipelines on connections of their own, each opened with a HELLO.
func warmRedis(t *testing.T, c *Cache) {
	t.Helper()
	ctx := context.Background()
	if err := c.cfg.Redis.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error { p.Ping(ctx); return nil }); err != nil {
		t.Fatal(err)
	}
}

// countTrips counts Redis round trips: a command or a pipeline each.
type countTrips struct{ n *atomic.Int64 }

func (h countTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h countTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRedisHangs: a Redis that accepts commands but does not answer (CLIENT PAUSE)
// costs a read or a write one short timeout, not a stall, and answers stay right.
func TestRedisHangs(t *testing.T) {
	r := testsvc.StartRedis(t)
	e := newEnv(t, r.URL(0))
	ctx := context.Background()
	a, b := e.node(nil, fastRedis), e.node(nil, fastRedis)
	if err := a.CreateRoom(ctx, store.Room{ID: "r1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, "r1", "bob", store.Caps{}); err != nil {
		t.Fatal(err)
	}
	settle(t, a, b)
	waitFilled(t, a, "r1", "bob", true)

	pauseAll(t, e.redis, 2*time.Second)
	start := time.Now()
	if !isMember(t, b, "r1", "bob") || isMember(t, b, "r1", "carol") {
		t.Fatal("membership wrong while Redis hangs")
	}
	if _, err := a.RemoveMember(ctx, "r1", "bob"); err != nil {
		t.Fatal(err)
	}
	if isMember(t, a, "r1", "bob") {
		t.Fatal("a's own removal not seen while Redis hangs")
	}
	settle(t, a, b)
	if isMember(t, b, "r1", "bob") {
		t.Fatal("b does not see the removal while Redis hangs")
	}
	// Each Redis call gives up after 100ms, and the backoff spares the calls after it.
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("reads and a write with Redis hanging took %v", took)
	}
	// Once Redis answers again, nothing it held is served: the removal's retried
	// invalidation reaches it.
	eventually(t, "the retried invalidation reached Redis", func() bool {
		v := redisValue(t, a, a.remote.key(kindMember, "r1", "bob"))
		return v != valuePrefix+"1" && !strings.HasPrefix(v, "error")
	})
	for _, n := range []*Cache{a, b} {
		n.local.dropAll()
		if isMember(t, n, "r1", "bob") {
			t.Fatal("stale after Redis came back")
		}
	}
}

func pauseAll(t *testing.T, url string, d time.Duration) {
	t.Helper()
	rc, err := NewRedisClient(url, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Do(context.Background(), "CLIENT", "PAUSE", fmt.Sprint(d.Milliseconds()), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
}

// TestAreMembersOneRoundTrip: a batch of memberships missing from the first level costs
// one MGET, and what Redis lacks one store query and one fill.
func TestAreMembersOneRoundTrip(t *testing.T) {
	e := newEnv(t, testsvc.RedisURL(t))
	ctx := context.Background()
	a := e.node(nil, fastRedis)
	var pairs [][2]string
	for i := range 100 {
		room := fmt.Sprintf("r%03d", i)
		if err := a.CreateRoom(ctx, store.Room{ID: room, Name: room, Owner: "alice"}, store.Caps{}); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]string{room, "alice"}, [2]string{room, "mallory"})
	}
	settle(t, a)
	time.Sleep(a.cfg.TombstoneTTL) // past the tombstones of the creations

	gated := newGatedStore(e.store)
	b := e.node(gated, fastRedis)
	warmRedis(t, b)
	var trips atomic.Int64
	b.cfg.Redis.AddHook(countTrips{&trips})
	check := func(what string, wantTrips, wantLoads int64) {
		t.Helper()
		trips.Store(0)
		loads := gated.areMembers.Load()
		got, err := b.AreMembers(ctx, pairs)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pairs {
			if got[i] != (p[1] == "alice") {
				t.Fatalf("%s: AreMembers %v = %v", what, p, got[i])
			}
		}
		if n := trips.Load(); n != wantTrips {
			t.Errorf("%s: %d Redis round trips, want %d", what, n, wantTrips)
		}
		if n := gated.areMembers.Load() - loads; n != wantLoads {
			t.Errorf("%s: %d store queries, want %d", what, n, wantLoads)
		}
	}
	check("cold", 2, 1) // MGET, then the fill
	if n := gated.isMember.Load(); n != 0 {
		t.Errorf("%d IsMember calls reached the store", n)
	}
	check("warm", 0, 0)
	b.local.dropAll()
	check("from Redis", 1, 0)
}

// TestWideInvalidations: what `laneim cdc` announces for a whole table (a key naming
// nothing) or for a room deleted in SQL (a members key naming the room alone) drops
// every entry it covers, in both levels, although no key lists them.
func TestWideInvalidations(t *testing.T) {
	levels(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.node(nil), e.node(nil)
		for _, r := range []string{"r1", "r2"} {
			if err := a.CreateRoom(ctx, store.Room{ID: r, Name: r, Owner: "alice"}, store.Caps{}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.AddMember(ctx, r, "bob", store.Caps{}); err != nil {
				t.Fatal(err)
			}
		}
		settle(t, a, b)
		for _, n := range []*Cache{a, b} {
			if !isMember(t, n, "r1", "bob") || !isMember(t, n, "r2", "bob") {
				t.Fatal("bob is not a member")
			}
		}
		pub := NewPublisher(Config{NATS: must[*nats.Conn](t)(e.nats.Connect()), Redis: a.cfg.Redis})
		defer pub.Close()

		// Behind the caches' back, as SQL would: r1's members go.
		if _, err := e.store.RemoveMember(ctx, "r1", "bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.RemoveMember(ctx, "r1", "alice"); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, schema.Inval{Table: schema.TableMembers, Keys: []schema.InvalKey{{Room: "r1", Change: schema.ChangeDelete}}}); err != nil {
			t.Fatal(err)
		}
		for i, n := range []*Cache{a, b} {
			eventually(t, fmt.Sprintf("node %d drops r1's memberships", i), func() bool { return !isMember(t, n, "r1", "bob") })
			if !isMember(t, n, "r2", "bob") {
				t.Fatalf("node %d lost r2", i)
			}
		}
		fresh := e.node(nil) // reads Redis first, if any
		if isMember(t, fresh, "r1", "bob") {
			t.Fatal("a fresh node found r1's membership in Redis")
		}

		// A whole table: r2's member removed, announced as every row.
		if _, err := e.store.RemoveMember(ctx, "r2", "bob"); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, schema.Inval{Table: schema.TableMembers, Keys: []schema.InvalKey{{}}}); err != nil {
			t.Fatal(err)
		}
		for i, n := range []*Cache{a, b, fresh} {
			eventually(t, fmt.Sprintf("node %d drops every membership", i), func() bool { return !isMember(t, n, "r2", "bob") })
		}
		if isMember(t, e.node(nil), "r2", "bob") {
			t.Fatal("a fresh node found r2's membership in Redis")
		}
	})
}
