package gateway

import (
	"testing"
	"time"
)

// TestHistoryBudget: requests take free slots or are refused, catch-ups wait for one
// and get them in the order they asked.
func TestHistoryBudget(t *testing.T) {
	var b historyBudget
	for i := range maxHistoriesInFlight {
		if !b.tryAcquire() {
			t.Fatalf("slot %d refused", i)
		}
	}
	if b.tryAcquire() {
		t.Fatal("a slot past the budget")
	}
	order := make(chan int, 2)
	for i := range 2 {
		go func() {
			b.acquire()
			order <- i
		}()
		time.Sleep(20 * time.Millisecond) // waiter i queued before waiter i+1
	}
	select {
	case i := <-order:
		t.Fatalf("waiter %d got a slot with none free", i)
	case <-time.After(50 * time.Millisecond):
	}
	b.release()
	if i := <-order; i != 0 {
		t.Fatalf("waiter %d served first", i)
	}
	if b.tryAcquire() {
		t.Fatal("a request took a slot ahead of a waiting catch-up")
	}
	b.release()
	if i := <-order; i != 1 {
		t.Fatalf("waiter %d served second", i)
	}
	for range maxHistoriesInFlight {
		b.release()
	}
	if n := b.inFlight(); n != 0 {
		t.Fatalf("%d slots taken after every release", n)
	}
}
