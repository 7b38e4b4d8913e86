package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSQLiteReadersSeeCommittedRooms: while joins commit one after another (as many
// as the writer takes), the checkpointer copies and restarts the WAL, and other reads
// are cut short by their context (interrupted reader connections, discarded and opened
// again), every GetRoom of a room committed before finds it, public. Reads are made
// both on busy reader connections and, as in a join phase where only a room's first
// join reads it, on connections that sat idle while the WAL moved on.
// LANEIM_SOAK_SECONDS runs it longer.
func TestSQLiteReadersSeeCommittedRooms(t *testing.T) {
	dur := 4 * time.Second
	if s := os.Getenv("LANEIM_SOAK_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("LANEIM_SOAK_SECONDS=%q: want a number of seconds", s)
		}
		dur = time.Duration(n) * time.Second
	} else if testing.Short() {
		dur = time.Second
	}
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "meta.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	caps := Caps{Rooms: 1 << 20, Created: 1 << 20, Blocks: 1 << 20}
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
			if err := s.CreateRoom(ctx, Room{ID: ids[k], Name: ids[k], Owner: "owner", Public: true}, caps); err != nil {
				t.Errorf("create %s: %v", ids[k], err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var bad atomic.Int64
	check := func(id string) {
		r, err := s.GetRoom(ctx, id)
		if err != nil || !r.Public || r.ID != id {
			if bad.Add(1) <= 10 {
				t.Errorf("GetRoom(%s) = %+v, %v", id, r, err)
			}
		}
	}
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Add(2)
	go func() {
		// Reads cut short by their context.
		defer side.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			c, cancel := context.WithTimeout(ctx, time.Duration(n%50)*time.Microsecond)
			_, _, _ = s.UserRooms(c, "u"+strconv.Itoa(n%10000), "", 500)
			_, _ = s.CountMembers(c, ids[n%rooms])
			cancel()
		}
	}()
	go func() {
		// Rare reads, on connections idle since the last.
		defer side.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			check(ids[(n*37)%rooms])
		}
	}()

	deadline := time.Now().Add(dur)
	joins := 0
	for k := 0; k < rooms && time.Now().Before(deadline) && bad.Load() == 0; k++ {
		for i := range perRoom {
			user := "u" + strconv.Itoa((k*7+i)%3000)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if i%50 == 0 {
					check(ids[k])
					check(ids[rooms-1-(k*13+i)%rooms])
				}
				if _, err := s.AddMember(ctx, ids[k], user, caps); err != nil {
					t.Errorf("AddMember(%s, %s): %v", ids[k], user, err)
				}
			}()
		}
		wg.Wait()
		joins += perRoom
	}
	close(stop)
	side.Wait()
	t.Logf("%d joins", joins)
}
