package cdc

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/subjects"
)

// lock is the reader lock: the key CDCLockKey of im_cdc_lock, whose bucket TTL is
// the lock's. The holder refreshes it every ttl/3 by revision, so an update fails
// once anyone else has taken it; a standby can create the key only after it expired
// or was released. The holder gives up reading when a refresh fails, or when it has
// not refreshed for ttl/2 (NATS unreachable): the key outlives its last refresh by
// ttl, so the holder has stopped before anyone else can start.
type lock struct {
	kv  jetstream.KeyValue // set once
	id  string             // set once: this process, the lock's value
	ttl time.Duration      // set once

	revision uint64    // owned by the goroutine running run
	held     time.Time // owned by the goroutine running run: the last acquire or refresh
}

// acquire takes the lock if nobody holds it.
func (l *lock) acquire(ctx context.Context) (bool, error) {
	start := time.Now()
	rev, err := l.kv.Create(ctx, subjects.CDCLockKey, []byte(l.id))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.revision, l.held = rev, start
	return true, nil
}

// keep refreshes the held lock until ctx ends (then releases it) or it is lost
// (then calls lost, and returns).
func (l *lock) keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.release()
			return
		case <-t.C:
		}
		start := time.Now()
		refreshCtx, cancel := context.WithTimeout(ctx, l.ttl/4)
		rev, err := l.kv.Update(refreshCtx, subjects.CDCLockKey, []byte(l.id), l.revision)
		cancel()
		switch {
		case err == nil:
			l.revision, l.held = rev, start
		case ctx.Err() != nil:
			l.release()
			return
		case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound):
			// Expired (and maybe taken by another): someone else may be reading.
			lost(err)
			return
		default:
			metricErrors.WithLabelValues("lock").Inc()
			if time.Since(l.held) > l.ttl/2 {
				lost(err)
				return
			}
		}
	}
}

// release deletes the key if it is still this holder's, so that a standby takes
// over at once instead of after the TTL.
func (l *lock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), l.ttl/2)
	defer cancel()
	_ = l.kv.Delete(ctx, subjects.CDCLockKey, jetstream.LastRevision(l.revision))
}
