package client

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lowest, highest := 100*time.Millisecond, 5*time.Second
	for attempt := 0; attempt < 100; attempt++ {
		lo, hi := backoff(attempt, lowest, highest, 0), backoff(attempt, lowest, highest, 0.999999)
		full := lowest << min(attempt, 10)
		if full > highest {
			full = highest
		}
		if lo != full/2 || hi > full || hi < full-time.Millisecond {
			t.Fatalf("attempt %d: [%v, %v], want [%v, %v]", attempt, lo, hi, full/2, full)
		}
	}
	if d := backoff(3, time.Second, time.Second, 0.5); d != 750*time.Millisecond {
		t.Fatalf("min == max: %v", d)
	}
	if d := backoff(1<<30, time.Hour, 2*time.Hour, 0); d != time.Hour {
		t.Fatalf("huge attempt: %v", d)
	}
}
