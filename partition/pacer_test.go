package partition

import (
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	cfg := Config{MaxLinger: 150 * time.Millisecond, LingerPerMessage: 750 * time.Microsecond}
	var p pacer
	now := time.Unix(1000, 0)
	if w := p.wait(cfg, now); w != 0 {
		t.Fatalf("first batch waits %v", w)
	}
	p.handed(1, now)
	// A trickle (5 a second) is never held: the interval is far shorter than the gap.
	for range 20 {
		now = now.Add(200 * time.Millisecond)
		if w := p.wait(cfg, now); w > 0 {
			t.Fatalf("trickle held %v", w)
		}
		p.handed(1, now)
	}
	// A sustained 400 a second (4 every 10ms) pushes the interval to the cap.
	for range 200 {
		now = now.Add(10 * time.Millisecond)
		p.handed(4, now)
	}
	if w := p.wait(cfg, now); w != cfg.MaxLinger {
		t.Fatalf("busy partition waits %v, want the cap %v", w, cfg.MaxLinger)
	}
	// No pacing configured: never waits.
	if w := p.wait(Config{}, now); w != 0 {
		t.Fatalf("unpaced wait %v", w)
	}
}
