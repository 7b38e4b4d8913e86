package notify

import (
	"context"
	"time"
)

// collect takes a batch from in: it waits for a first item (nil when ctx ends first),
// then takes more until it holds max or linger has passed since the first. A lone
// mention goes on within linger; a burst fills batches at once, and each batch costs
// one membership check, one question to the gateways and one POST.
func collect[T any](ctx context.Context, in <-chan T, max int, linger time.Duration) []T {
	var batch []T
	select {
	case <-ctx.Done():
		return nil
	case item := <-in:
		batch = append(batch, item)
	}
	timer := time.NewTimer(linger)
	defer timer.Stop()
	for len(batch) < max {
		select {
		case <-ctx.Done():
			return batch
		case <-timer.C:
			return batch
		case item := <-in:
			batch = append(batch, item)
		}
	}
	return batch
}
