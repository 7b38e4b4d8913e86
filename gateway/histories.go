package gateway

import "sync"

// maxHistoriesInFlight bounds one connection's history reads at logic: its history
// requests and the reads of its catch-ups together, so that one client cannot keep
// logic's history capacity (64 reads a node) busy in front of everyone else's.
const maxHistoriesInFlight = 4

// historyBudget counts a connection's history reads in flight. A history request that
// finds no slot is refused; a catch-up waits for one, first come first served. The
// zero value is ready.
type historyBudget struct {
	mu      sync.Mutex
	used    int             // guarded by mu
	waiters []chan struct{} // guarded by mu: catch-ups waiting for a slot, in order
}

// tryAcquire takes a slot if one is free.
func (b *historyBudget) tryAcquire() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used >= maxHistoriesInFlight {
		return false
	}
	b.used++
	return true
}

// acquire takes a slot, waiting for one. Every holder releases its slot within one
// request timeout, so the wait is bounded.
func (b *historyBudget) acquire() {
	b.mu.Lock()
	if b.used < maxHistoriesInFlight && len(b.waiters) == 0 {
		b.used++
		b.mu.Unlock()
		return
	}
	ready := make(chan struct{})
	b.waiters = append(b.waiters, ready)
	b.mu.Unlock()
	<-ready // release handed its slot over
}

// release gives a slot back, to the longest waiting catch-up if there is one.
func (b *historyBudget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 {
		close(b.waiters[0])
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		return
	}
	b.used--
}

// inFlight is the number of slots taken.
func (b *historyBudget) inFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
