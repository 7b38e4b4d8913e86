package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

func TestSQLiteAreMembers(t *testing.T) {
	testAreMembers(t, func(t *testing.T) MetaStore {
		s, _ := openTestSQLite(t)
		return s
	})
}

// testAreMembers: a MembersChecker answers as IsMember does, pair by pair.
func testAreMembers(t *testing.T, open func(t *testing.T) MetaStore) {
	ctx := context.Background()
	meta := open(t)
	s, ok := meta.(interface {
		MetaStore
		MembersChecker
	})
	if !ok {
		t.Fatalf("%T does not implement MembersChecker", meta)
	}
	for _, r := range []string{"r1", "r2"} {
		if err := s.CreateRoom(ctx, Room{ID: r, Name: r, Owner: "alice"}, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddMember(ctx, "r2", "bob", Caps{}); err != nil {
		t.Fatal(err)
	}
	// Past one chunk, with repeats and pairs that mix a member's room with another
	// member's user.
	var pairs [][2]string
	var want []bool
	for i := range 1200 {
		switch i % 4 {
		case 0:
			pairs, want = append(pairs, [2]string{"r1", "alice"}), append(want, true)
		case 1:
			pairs, want = append(pairs, [2]string{"r1", "bob"}), append(want, false)
		case 2:
			pairs, want = append(pairs, [2]string{"r2", "bob"}), append(want, true)
		default:
			pairs, want = append(pairs, [2]string{"nope", fmt.Sprint("u", i)}), append(want, false)
		}
	}
	got, err := s.AreMembers(ctx, pairs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("AreMembers differs from the memberships")
	}
	for i, p := range pairs[:8] {
		if one, _ := s.IsMember(ctx, p[0], p[1]); one != got[i] {
			t.Errorf("AreMembers %v = %v, IsMember %v", p, got[i], one)
		}
	}
}
