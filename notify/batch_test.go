package notify

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestCollect: a lone item goes after the linger, a burst fills batches at once, and a
// context that ends returns what was taken.
func TestCollect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		in := make(chan int, 100)

		in <- 1
		start := time.Now()
		if got := collect(ctx, in, 10, 50*time.Millisecond); len(got) != 1 || got[0] != 1 {
			t.Fatalf("lone item: %v", got)
		}
		if waited := time.Since(start); waited != 50*time.Millisecond {
			t.Fatalf("a lone item waited %s, want the linger", waited)
		}

		for i := range 25 {
			in <- i
		}
		start = time.Now()
		for _, want := range []int{10, 10, 5} {
			if got := collect(ctx, in, 10, 50*time.Millisecond); len(got) != want {
				t.Fatalf("burst batch of %d, want %d", len(got), want)
			}
		}
		if waited := time.Since(start); waited != 50*time.Millisecond {
			t.Fatalf("a burst of 25 in batches of 10 took %s, want one linger (the last batch's)", waited)
		}

		// Items arriving during the linger join the batch.
		go func() {
			time.Sleep(10 * time.Millisecond)
			in <- 1
			time.Sleep(30 * time.Millisecond)
			in <- 2
			time.Sleep(30 * time.Millisecond)
			in <- 3
		}()
		if got := collect(ctx, in, 10, 50*time.Millisecond); len(got) != 2 {
			t.Fatalf("items within the linger of the first: %v, want 2", got)
		}
		if got := collect(ctx, in, 10, 50*time.Millisecond); len(got) != 1 {
			t.Fatalf("the next: %v", got)
		}

		ctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		if got := collect(ctx, in, 10, time.Minute); got != nil {
			t.Fatalf("an empty channel until the end: %v", got)
		}
	})
}
