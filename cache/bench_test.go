package cache

import (
	"context"
	"strconv"
	"testing"

	"github.com/laneim/laneim/store"
)

// BenchmarkIsMemberWarm is the membership check of every send at logic's ingest with
// the answer in the first level.
func BenchmarkIsMemberWarm(b *testing.B) {
	st, err := store.OpenSQLite(b.TempDir()+"/meta.db", store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateRoom(ctx, store.Room{ID: "room-1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		b.Fatal(err)
	}
	c := New(st, Config{})
	defer c.Close()
	if ok, err := c.IsMember(ctx, "room-1", "alice"); err != nil || !ok {
		b.Fatalf("IsMember: %v %v", ok, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if ok, _ := c.IsMember(ctx, "room-1", "alice"); !ok {
			b.Fatal("not a member")
		}
	}
}

// BenchmarkIsMemberWarmParallel is the same from every core at once.
func BenchmarkIsMemberWarmParallel(b *testing.B) {
	st, err := store.OpenSQLite(b.TempDir()+"/meta.db", store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateRoom(ctx, store.Room{ID: "room-1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		b.Fatal(err)
	}
	c := New(st, Config{})
	defer c.Close()
	if _, err := c.IsMember(ctx, "room-1", "alice"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = c.IsMember(ctx, "room-1", "alice")
		}
	})
}

// BenchmarkAreMembersWarm is ingest's check of a batch of 256 sends from 64 senders
// with every answer in the first level; ns/op is per batch.
func BenchmarkAreMembersWarm(b *testing.B) {
	st, err := store.OpenSQLite(b.TempDir()+"/meta.db", store.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateRoom(ctx, store.Room{ID: "room-1", Name: "one", Owner: "alice"}, store.Caps{}); err != nil {
		b.Fatal(err)
	}
	pairs := make([][2]string, 64)
	for i := range pairs {
		pairs[i] = [2]string{"room-1", "user-" + strconv.Itoa(i)}
	}
	c := New(st, Config{})
	defer c.Close()
	if _, err := c.AreMembers(ctx, pairs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.AreMembers(ctx, pairs); err != nil {
			b.Fatal(err)
		}
	}
}
