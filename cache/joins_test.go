package cache

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laneim/laneim/store"
)

// soak is how long a hammering test runs: a few seconds, or LANEIM_SOAK_SECONDS.
func soak(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv("LANEIM_SOAK_SECONDS")
	if s == "" {
		if testing.Short() {
			return def / 4
		}
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("LANEIM_SOAK_SECONDS=%q: want a number of seconds", s)
	}
	return time.Duration(n) * time.Second
}

// TestJoinsSeeTheirRoom hammers one node the way `laneim bench rooms` does before
// anyone connects: public rooms created at once, then users joining themselves room
// by room, 128 at a time, each reading the room first as logic's viewRoom does,
// while the store's checkpointer copies and restarts the WAL and the node's own
// announcements come back over NATS. Beside them, readers fill and refill the entries
// the joins invalidate (the room's count and member pages) and read the room again.
//
// Every GetRoom of a room created before must find it, public; every join must add;
// and once a room's joins are done the node's count and first page of members must be
// the store's (no load that raced a join left its older answer behind).
func TestJoinsSeeTheirRoom(t *testing.T) {
	dur := soak(t, 4*time.Second)
	e := newEnv(t, "")
	c := e.node(nil)
	ctx := context.Background()
	caps := store.Caps{Rooms: 1 << 20, Created: 1 << 20, Blocks: 1 << 20}

	const rooms, perRoom, workers = 300, 300, 128
	ids := make([]string, rooms)
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for k := range rooms {
		ids[k] = fmt.Sprintf("run-r%d", k)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.CreateRoom(ctx, store.Room{ID: ids[k], Name: ids[k], Owner: "run-owner", Public: true}, caps); err != nil {
				t.Errorf("create %s: %v", ids[k], err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	var current atomic.Int64 // the room being joined
	stop := make(chan struct{})
	var side sync.WaitGroup
	for range 2 {
		side.Add(1)
		go func() {
			defer side.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Microsecond):
				}
				id := ids[current.Load()]
				if _, err := c.CountMembers(ctx, id); err != nil {
					fail("CountMembers(%s): %v", id, err)
				}
				if _, _, err := c.ListMembers(ctx, id, "", 100); err != nil {
					fail("ListMembers(%s): %v", id, err)
				}
				if r, err := c.GetRoom(ctx, id); err != nil || !r.Public {
					fail("beside the joins: GetRoom(%s) = %+v, %v", id, r, err)
				}
			}
		}()
	}

	deadline := time.Now().Add(dur)
	joins := 0
	for k := 0; k < rooms && time.Now().Before(deadline) && failures.Load() == 0; k++ {
		current.Store(int64(k))
		id := ids[k]
		for i := range perRoom {
			user := "run-u" + strconv.Itoa((k*7+i)%3000)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r, err := c.GetRoom(ctx, id)
				if err != nil || !r.Public {
					fail("join of %s by %s: GetRoom = %+v, %v", id, user, r, err)
					return
				}
				if added, err := c.AddMember(ctx, id, user, caps); err != nil || !added {
					fail("AddMember(%s, %s) = %v, %v", id, user, added, err)
				}
			}()
		}
		wg.Wait()
		joins += perRoom
		n, err := c.CountMembers(ctx, id)
		want, err2 := e.store.CountMembers(ctx, id)
		if err != nil || err2 != nil || n != want {
			fail("after the joins of %s: CountMembers %d, %v; store %d, %v", id, n, err, want, err2)
		}
		page, _, err := c.ListMembers(ctx, id, "", 100)
		wantPage, _, err2 := e.store.ListMembers(ctx, id, "", 100)
		if err != nil || err2 != nil || !slices.Equal(page, wantPage) {
			fail("after the joins of %s: ListMembers %v, %v; store %v, %v", id, page, err, wantPage, err2)
		}
	}
	close(stop)
	side.Wait()
	if joins == 0 {
		t.Fatal("no room joined")
	}
	t.Logf("%d joins", joins)
}
