package logging

import (
	"sync"
	"time"
)

// RateLimited is a token bucket for log lines on hot paths, after derp's
// RateLimitedFn: a burst of lines passes, then one per interval, and the lines held
// back are counted so the next one can say how many were lost.
//
//	if limiter.Allow() {
//		log.Warn().Int64("suppressed", limiter.Suppressed()).Msg("write queue full")
//	}
//
// Safe for concurrent use; one mutex, no allocation.
type RateLimited struct {
	every time.Duration    // set once at construction
	burst int              // set once at construction
	now   func() time.Time // set once at construction; a test clock in tests

	mu         sync.Mutex
	tokens     int       // guarded by mu
	refilledAt time.Time // guarded by mu; the time the tokens were last counted up to
	suppressed int64     // guarded by mu; denied calls since the last Suppressed
}

// NewRateLimited allows burst calls at once, then one call per every. every <= 0
// allows every call; burst < 1 counts as 1.
func NewRateLimited(every time.Duration, burst int) *RateLimited {
	return newRateLimited(every, burst, time.Now)
}

func newRateLimited(every time.Duration, burst int, now func() time.Time) *RateLimited {
	burst = max(burst, 1)
	return &RateLimited{every: every, burst: burst, now: now, tokens: burst, refilledAt: now()}
}

// Allow reports whether the caller may log now, and spends a token if so.
func (r *RateLimited) Allow() bool {
	if r.every <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.tokens < r.burst {
		if earned := now.Sub(r.refilledAt) / r.every; earned > 0 {
			r.tokens = int(min(int64(r.tokens)+int64(earned), int64(r.burst)))
			if r.tokens == r.burst {
				r.refilledAt = now
			} else {
				// Keep the part of an interval already waited.
				r.refilledAt = r.refilledAt.Add(earned * r.every)
			}
		}
	}
	if r.tokens == 0 {
		r.suppressed++
		return false
	}
	if r.tokens == r.burst {
		// A full bucket earns nothing while it waits: count from its first use.
		r.refilledAt = now
	}
	r.tokens--
	return true
}

// Suppressed returns how many calls Allow denied since the previous Suppressed, and
// resets the count.
func (r *RateLimited) Suppressed() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.suppressed
	r.suppressed = 0
	return n
}
