package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/testsvc"
)

// TestCacheFollowsMembership: with Redis as the second cache level, a membership
// change through the API is seen by the very next send, subscribe and history read,
// both ways, however warm the caches were: removed, forbidden at once; added back,
// allowed at once.
func TestCacheFollowsMembership(t *testing.T) {
	redis := testsvc.StartRedis(t)
	s := startStack(t, t.TempDir(), func(c *configs.Config) {
		c.RedisURL = redis.URL(0)
		c.Gateways = 2
	})
	room(t, s, "r", "alice", false, "bob")
	bob := connectTo(t, s, 1, "bob")
	post := func(user, nonce string) int {
		t.Helper()
		status, _ := httpDo(t, s, user, "POST", "/v1/rooms/r/messages", map[string]any{"nonce": nonce, "body": "hi"})
		return status
	}
	history := func(user string) int {
		t.Helper()
		status, _ := httpDo(t, s, user, "GET", "/v1/rooms/r/messages", nil)
		return status
	}

	for round := range 3 {
		// Warm: both levels hold bob as a member, and mallory as not one.
		for range 2 {
			if got := post("bob", fmt.Sprintf("warm%d", round)); got != http.StatusOK {
				t.Fatalf("round %d: bob's send: %d", round, got)
			}
			if got := history("bob"); got != http.StatusOK {
				t.Fatalf("round %d: bob's history: %d", round, got)
			}
			if got := history("mallory"); got != http.StatusForbidden {
				t.Fatalf("round %d: mallory's history: %d", round, got)
			}
		}
		bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")

		mustHTTP(t, s, "alice", "DELETE", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
		if got := post("bob", fmt.Sprintf("removed%d", round)); got != http.StatusForbidden {
			t.Fatalf("round %d: removed bob's send: %d, want 403", round, got)
		}
		if got := history("bob"); got != http.StatusForbidden {
			t.Fatalf("round %d: removed bob's history: %d, want 403", round, got)
		}
		bob.expectError("subscribe", map[string]any{"room": "r"}, "forbidden")

		mustHTTP(t, s, "alice", "PUT", "/v1/rooms/r/members/bob", nil, http.StatusNoContent)
		if got := post("bob", fmt.Sprintf("back%d", round)); got != http.StatusOK {
			t.Fatalf("round %d: re-added bob's send: %d, want 200", round, got)
		}
		if got := history("bob"); got != http.StatusOK {
			t.Fatalf("round %d: re-added bob's history: %d, want 200", round, got)
		}
		bob.mustCall("subscribe", map[string]any{"room": "r"}, "subscribed")
	}

	// The answers went through Redis: it holds the cache's entries.
	rc, err := cache.NewRedisClient(redis.URL(0), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "laneim:c:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("Redis holds no cache entries")
	}
}
