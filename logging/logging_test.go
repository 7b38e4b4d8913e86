package logging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func TestNewJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "laneim.log") // the directory is created
	cfg := configs.Default().Log
	cfg.File = path
	log, closer, err := New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("log file not created by New: %v", err)
	}
	log.Debug().Msg("hidden at info")
	log.Info().Str("room", "general").Msg("hello")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}

	lines := readLines(t, path)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1 (debug filtered): %q", len(lines), lines)
	}
	var event map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &event); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	if event["level"] != "info" || event["message"] != "hello" || event["room"] != "general" {
		t.Errorf("event %v", event)
	}
	stamp, _ := event["time"].(string)
	when, err := time.Parse(timeLayout, stamp)
	if err != nil || !strings.HasSuffix(stamp, "Z") || time.Since(when) > time.Minute {
		t.Errorf("time %q: want a current UTC timestamp with milliseconds (%v)", stamp, err)
	}
}

func TestNewFormats(t *testing.T) {
	tests := []struct {
		name    string
		format  string
		dev     bool
		console bool
	}{
		{"dev defaults to console", "", true, true},
		{"otherwise JSON", "", false, false},
		{"explicit json in dev", configs.FormatJSON, true, false},
		{"explicit console outside dev", configs.FormatConsole, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "laneim.log")
			cfg := configs.Default().Log
			cfg.File, cfg.Format, cfg.Level = path, tt.format, "debug"
			log, closer, err := New(cfg, tt.dev)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug().Str("room", "general").Msg("hello")
			closer.Close()

			line := readLines(t, path)[0]
			isJSON := json.Valid([]byte(line))
			if isJSON == tt.console {
				t.Fatalf("line %q: console %v, want %v", line, !isJSON, tt.console)
			}
			if tt.console {
				if strings.Contains(line, "\x1b[") {
					t.Errorf("colour codes in a file: %q", line)
				}
				if !strings.Contains(line, "DBG") || !strings.Contains(line, "hello") || !strings.Contains(line, "room=general") {
					t.Errorf("console line %q", line)
				}
				if _, err := time.Parse(consoleTimeLayout, strings.Fields(line)[0]); err != nil {
					t.Errorf("console line %q does not start with a %s time: %v", line, consoleTimeLayout, err)
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  configs.LogConfig
		want string
	}{
		{"bad level", configs.LogConfig{Level: "loud"}, "log level"},
		{"bad format", configs.LogConfig{Format: "xml"}, "log format"},
		{"unwritable file", configs.LogConfig{File: filepath.Join(notADir, "laneim.log"), MaxSizeMB: 1}, "log file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := New(tt.cfg, true)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNewStderr(t *testing.T) {
	log, closer, err := New(configs.LogConfig{Level: "disabled"}, false)
	if err != nil {
		t.Fatal(err)
	}
	log.Error().Msg("not shown: disabled")
	if err := closer.Close(); err != nil {
		t.Errorf("closing the stderr logger: %v", err)
	}
}

// fakeClock is a settable clock for RateLimited.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRateLimited(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	limiter := newRateLimited(time.Second, 3, clock.Now)

	allowed := func(n int) int {
		count := 0
		for range n {
			if limiter.Allow() {
				count++
			}
		}
		return count
	}

	if got := allowed(10); got != 3 {
		t.Fatalf("burst: %d allowed, want 3", got)
	}
	if got := limiter.Suppressed(); got != 7 {
		t.Errorf("suppressed %d, want 7", got)
	}
	if got := limiter.Suppressed(); got != 0 {
		t.Errorf("Suppressed does not reset: %d", got)
	}

	clock.Advance(999 * time.Millisecond)
	if got := allowed(5); got != 0 {
		t.Errorf("before one interval: %d allowed, want 0", got)
	}
	clock.Advance(time.Millisecond)
	if got := allowed(5); got != 1 {
		t.Errorf("after one interval: %d allowed, want 1", got)
	}

	// Partial intervals add up: 2.5 s earn 2 tokens and keep the half second.
	clock.Advance(2500 * time.Millisecond)
	if got := allowed(5); got != 2 {
		t.Errorf("after 2.5 intervals: %d allowed, want 2", got)
	}
	clock.Advance(500 * time.Millisecond)
	if got := allowed(5); got != 1 {
		t.Errorf("after the remaining half interval: %d allowed, want 1", got)
	}

	// A long quiet period refills only up to the burst.
	clock.Advance(time.Hour)
	if got := allowed(10); got != 3 {
		t.Errorf("after an hour: %d allowed, want the burst of 3", got)
	}

	// A full bucket that waits does not bank tokens beyond the burst: after a quiet
	// hour and a burst, the next token still takes a whole interval.
	clock.Advance(time.Hour)
	allowed(3)
	clock.Advance(999 * time.Millisecond)
	if got := allowed(1); got != 0 {
		t.Errorf("next token early: %d allowed", got)
	}
}

func TestRateLimitedEdges(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	unlimited := newRateLimited(0, 1, clock.Now)
	for i := range 100 {
		if !unlimited.Allow() {
			t.Fatalf("every=0 denied call %d", i)
		}
	}
	one := newRateLimited(time.Minute, 0, clock.Now) // burst 0 counts as 1
	if !one.Allow() || one.Allow() {
		t.Error("burst 0 should allow exactly one call")
	}
	if NewRateLimited(time.Second, 1) == nil || !NewRateLimited(time.Second, 1).Allow() {
		t.Error("NewRateLimited with the real clock denied its first call")
	}
}

func TestRateLimitedConcurrent(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	limiter := newRateLimited(time.Second, 10, clock.Now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Go(func() {
			n := 0
			for range 1000 {
				if limiter.Allow() {
					n++
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != 10 {
		t.Errorf("%d allowed across goroutines, want the burst of 10", total)
	}
	if got := limiter.Suppressed(); got != 8000-10 {
		t.Errorf("suppressed %d, want %d", got, 8000-10)
	}
}

func BenchmarkRateLimitedAllow(b *testing.B) {
	limiter := NewRateLimited(time.Second, 10)
	b.ReportAllocs()
	for b.Loop() {
		limiter.Allow()
	}
}
