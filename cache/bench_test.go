package cache

import (
	"context"
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
