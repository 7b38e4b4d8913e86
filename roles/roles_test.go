package roles

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
)

// A derived node id is kept in the data dir: the next process on it is the same node,
// a second one at the same time is refused, and an explicit id needs no data dir.
func TestNodeID(t *testing.T) {
	cfg := configs.Default()
	cfg.Data = t.TempDir()
	id, release, err := NodeID(cfg, "logic")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(id, "-logic-") || unsafeID.MatchString(id) {
		t.Fatalf("derived id %q", id)
	}
	if _, _, err := NodeID(cfg, "logic"); err == nil || !strings.Contains(err.Error(), "LANEIM_NODE_ID") {
		t.Fatalf("a second logic on the data dir: %v, want a refusal naming LANEIM_NODE_ID", err)
	}
	other, releaseOther, err := NodeID(cfg, "pusher")
	if err != nil || other == id {
		t.Fatalf("a pusher on the same data dir: %q, %v", other, err)
	}
	releaseOther()
	release()
	again, release, err := NodeID(cfg, "logic")
	if err != nil || again != id {
		t.Fatalf("restarted: %q, %v, want %q", again, err, id)
	}
	release()

	cfg.NodeID, cfg.Data = "gw-7", ""
	if id, release, err := NodeID(cfg, "gateway"); err != nil || id != "gw-7" {
		t.Fatalf("explicit id: %q, %v", id, err)
	} else {
		release()
	}
	cfg.NodeID = ""
	a, _, _ := NodeID(cfg, "gateway")
	b, _, _ := NodeID(cfg, "gateway")
	if a == b {
		t.Fatalf("without a data dir two ids are the same: %q", a)
	}
}

// WaitFor retries until the step succeeds, and when ctx ends first returns an error
// with the step's last error.
func TestWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tries := 0
		start := time.Now()
		err := WaitFor(t.Context(), zerolog.Nop(), "a thing", func(context.Context) error {
			tries++
			if tries < 5 {
				return errors.New("not yet")
			}
			return nil
		})
		if err != nil || tries != 5 {
			t.Fatalf("err %v after %d tries", err, tries)
		}
		// Pauses 100, 200, 400 and 800ms.
		if waited := time.Since(start); waited != 1500*time.Millisecond {
			t.Fatalf("waited %v", waited)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err = WaitFor(ctx, zerolog.Nop(), "the impossible", func(context.Context) error { return errors.New("never") })
		if err == nil || !strings.Contains(err.Error(), "the impossible") || !strings.Contains(err.Error(), "never") {
			t.Fatalf("err %v", err)
		}
		// A try that hangs is cut at 5s and tried again.
		hung := 0
		err = WaitFor(t.Context(), zerolog.Nop(), "a hanging thing", func(ctx context.Context) error {
			hung++
			if hung == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		if err != nil || hung != 2 {
			t.Fatalf("err %v after %d tries", err, hung)
		}
	})
}
