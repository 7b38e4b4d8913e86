package store

import (
	"context"
	"slices"
	"testing"
)

func TestSQLiteBlocks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
	caps := Caps{Blocks: 3}
	blockTests := []struct {
		user, blocked string
		wantAdded     bool
	}{
		{"u", "m2", true}, {"u", "m1", true}, {"u", "m2", false}, {"v", "m1", true}, {"u", "m3", true},
	}
	for _, tt := range blockTests {
		added, err := s.Block(ctx, tt.user, tt.blocked, caps)
		if err != nil || added != tt.wantAdded {
			t.Fatalf("Block(%s, %s) = %v, %v; want %v", tt.user, tt.blocked, added, err, tt.wantAdded)
		}
	}
	_, err := s.Block(ctx, "u", "m4", caps)
	wantCap(t, err, CapBlocks, "u", 3)
	if added, err := s.Block(ctx, "u", "m1", caps); err != nil || added {
		t.Fatalf("repeated block at the cap: %v, %v", added, err)
	}
	isTests := []struct {
		user, blocked string
		want          bool
	}{
		{"u", "m1", true}, {"u", "m4", false}, {"v", "m1", true}, {"v", "m2", false}, {"m1", "u", false},
	}
	for _, tt := range isTests {
		if got, err := s.IsBlocked(ctx, tt.user, tt.blocked); err != nil || got != tt.want {
			t.Errorf("IsBlocked(%s, %s) = %v, %v; want %v", tt.user, tt.blocked, got, err, tt.want)
		}
	}
	listTests := []struct {
		after    string
		limit    int
		want     []string
		wantMore bool
	}{
		{"", 0, []string{"m1", "m2", "m3"}, false},
		{"", 2, []string{"m1", "m2"}, true},
		{"m2", 2, []string{"m3"}, false},
		{"m3", 2, nil, false},
	}
	for _, tt := range listTests {
		got, more, err := s.ListBlocks(ctx, "u", tt.after, tt.limit)
		if err != nil || !slices.Equal(got, tt.want) || more != tt.wantMore {
			t.Errorf("ListBlocks(after %q, %d) = %v, %v, %v; want %v, %v", tt.after, tt.limit, got, more, err, tt.want, tt.wantMore)
		}
	}
	if removed, err := s.Unblock(ctx, "u", "m2"); err != nil || !removed {
		t.Fatalf("Unblock = %v, %v", removed, err)
	}
	if removed, err := s.Unblock(ctx, "u", "m2"); err != nil || removed {
		t.Fatalf("second Unblock = %v, %v", removed, err)
	}
	if ok, _ := s.IsBlocked(ctx, "u", "m2"); ok {
		t.Fatal("still blocked after Unblock")
	}
	// Unblocking freed a place under the cap.
	if added, err := s.Block(ctx, "u", "m4", caps); err != nil || !added {
		t.Fatalf("Block after Unblock: %v, %v", added, err)
	}
	if got := heldBy(t, s, "u"); got != [3]int{0, 0, 3} {
		t.Fatalf("u holds %v, want 3 blocks", got)
	}
}
