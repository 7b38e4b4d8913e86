package roles

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// waitLogEvery is how often WaitFor says what it is still waiting for.
const waitLogEvery = 5 * time.Second

// WaitFor calls try until it succeeds or ctx ends, pausing between tries from 100ms
// up to 2s, and logs what it waits for (with try's last error) after the first failure
// and every few seconds after. Each try gets at most 5s: a JetStream request that
// gets no answer (no meta leader yet) times out and is tried again.
func WaitFor(ctx context.Context, log zerolog.Logger, what string, try func(ctx context.Context) error) error {
	return WaitForEach(ctx, log, what, 5*time.Second, try)
}

// WaitForEach is WaitFor with each try bounded by tryTimeout.
func WaitForEach(ctx context.Context, log zerolog.Logger, what string, tryTimeout time.Duration, try func(ctx context.Context) error) error {
	pause := 100 * time.Millisecond
	var logged time.Time
	start := time.Now()
	for {
		tryCtx, cancel := context.WithTimeout(ctx, tryTimeout)
		err := try(tryCtx)
		cancel()
		if err == nil {
			if !logged.IsZero() {
				log.Info().Dur("waited", time.Since(start).Round(time.Millisecond)).Msgf("%s: ready", what)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), err)
		}
		if time.Since(logged) >= waitLogEvery {
			log.Warn().Err(err).Dur("waited", time.Since(start).Round(time.Second)).Msgf("waiting for %s", what)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}
