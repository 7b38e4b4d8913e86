package client

import "time"

// backoff is the wait before reconnect attempt number attempt (0 for the first):
// floor doubled per attempt, capped at ceiling, with "equal jitter": half of it fixed, half
// uniformly random (r in [0,1)). When a gateway restarts, its tens of thousands of
// clients all lose their connection at once; the random half spreads their reconnects
// over the window instead of landing them in the same millisecond, and the fixed half
// keeps any single client from hammering a server that is down.
func backoff(attempt int, floor, ceiling time.Duration, r float64) time.Duration {
	d := floor
	for i := 0; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	return d/2 + time.Duration(r*float64(d-d/2))
}
