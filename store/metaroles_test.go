package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/laneim/laneim/schema"
)

// Room management and moderators, part of the MetaStore conformance suite.

func wantSchemaCode(t *testing.T, err error, code string) {
	t.Helper()
	var se *schema.Error
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func metaRoles(t *testing.T, s MetaStore) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, Room{ID: "r", Name: "R", Owner: "alice"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol"} {
		if _, err := s.AddMember(ctx, "r", u, Caps{}); err != nil {
			t.Fatal(err)
		}
	}

	// Moderators: members only, appointed once, listed in id order.
	for _, step := range []struct {
		user      string
		moderator bool
		changed   bool
		code      string
	}{
		{"carol", true, true, ""},
		{"bob", true, true, ""},
		{"bob", true, false, ""},
		{"dave", true, false, schema.CodeForbidden},
		{"dave", false, false, ""},
	} {
		changed, err := s.SetModerator(ctx, "r", step.user, step.moderator)
		if step.code != "" {
			wantSchemaCode(t, err, step.code)
			continue
		}
		if err != nil || changed != step.changed {
			t.Fatalf("SetModerator(%s, %v) = %v, %v; want %v", step.user, step.moderator, changed, err, step.changed)
		}
	}
	if got, err := s.ListModerators(ctx, "r", 10); err != nil || !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("moderators %v, %v", got, err)
	}
	if got, err := s.ListModerators(ctx, "r", 1); err != nil || !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("first moderator %v, %v", got, err)
	}
	for user, want := range map[string]bool{"bob": true, "carol": true, "alice": false, "dave": false} {
		if got, err := s.IsModerator(ctx, "r", user); err != nil || got != want {
			t.Errorf("IsModerator(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
	// A moderator who leaves stops being one, also on coming back.
	if _, err := s.RemoveMember(ctx, "r", "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddMember(ctx, "r", "carol", Caps{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.IsModerator(ctx, "r", "carol"); err != nil || got {
		t.Errorf("a moderator who left and came back: %v, %v", got, err)
	}
	if _, err := s.SetModerator(ctx, "r", "carol", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LeaveRooms(ctx, "carol", []string{"r"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.IsModerator(ctx, "r", "carol"); err != nil || got {
		t.Errorf("a moderator who left with LeaveRooms: %v, %v", got, err)
	}

	// Rename.
	if err := s.RenameRoom(ctx, "r", "Renamed"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameRoom(ctx, "r", "Renamed"); err != nil {
		t.Fatalf("rename to the same name: %v", err)
	}
	if room, err := s.GetRoom(ctx, "r"); err != nil || room.Name != "Renamed" {
		t.Fatalf("after rename: %+v, %v", room, err)
	}
	rooms, _, err := s.UserRooms(ctx, "bob", "", 10)
	if err != nil || len(rooms) != 1 || rooms[0].Name != "Renamed" {
		t.Fatalf("bob's rooms after rename: %+v, %v", rooms, err)
	}
	wantSchemaCode(t, s.RenameRoom(ctx, "nope", "x"), schema.CodeNotFound)

	// Transfer: to members only, within the created cap; a moderator made owner is
	// no longer listed; the old owner stays a member.
	wantSchemaCode(t, s.TransferRoom(ctx, "r", "dave", Caps{}), schema.CodeForbidden)
	wantSchemaCode(t, s.TransferRoom(ctx, "nope", "bob", Caps{}), schema.CodeNotFound)
	if err := s.CreateRoom(ctx, Room{ID: "bobs", Name: "B", Owner: "bob"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	wantCap(t, s.TransferRoom(ctx, "r", "bob", Caps{Created: 1}), CapCreated, "bob", 1)
	if err := s.TransferRoom(ctx, "r", "bob", Caps{Created: 2}); err != nil {
		t.Fatal(err)
	}
	if room, err := s.GetRoom(ctx, "r"); err != nil || room.Owner != "bob" {
		t.Fatalf("after transfer: %+v, %v", room, err)
	}
	if got, err := s.IsModerator(ctx, "r", "bob"); err != nil || got {
		t.Errorf("the new owner is still listed as a moderator: %v, %v", got, err)
	}
	if ok, err := s.IsMember(ctx, "r", "alice"); err != nil || !ok {
		t.Errorf("the old owner is no longer a member: %v, %v", ok, err)
	}
	// The created cap follows the room: alice may create one again under a cap of 1,
	// bob, at 2, may not create a third under 2.
	if err := s.CreateRoom(ctx, Room{ID: "alices", Name: "A", Owner: "alice"}, Caps{Created: 1}); err != nil {
		t.Fatalf("alice after giving her room away: %v", err)
	}
	wantCap(t, s.CreateRoom(ctx, Room{ID: "bobs2", Name: "B", Owner: "bob"}, Caps{Created: 2}), CapCreated, "bob", 2)

	// Delete: the members it had, and nothing of it left.
	if _, err := s.SetModerator(ctx, "r", "alice", true); err != nil {
		t.Fatal(err)
	}
	members, err := s.DeleteRoom(ctx, "r")
	if err != nil || !slices.Equal(members, []string{"alice", "bob"}) {
		t.Fatalf("DeleteRoom = %v, %v; want alice and bob", members, err)
	}
	if _, err := s.GetRoom(ctx, "r"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("GetRoom of a deleted room: %v", err)
	}
	for _, user := range []string{"alice", "bob"} {
		if ok, err := s.IsMember(ctx, "r", user); err != nil || ok {
			t.Errorf("%s is still a member: %v, %v", user, ok, err)
		}
		if ok, err := s.IsModerator(ctx, "r", user); err != nil || ok {
			t.Errorf("%s is still a moderator: %v, %v", user, ok, err)
		}
	}
	if n, err := s.CountMembers(ctx, "r"); err != nil || n != 0 {
		t.Errorf("count of a deleted room: %d, %v", n, err)
	}
	rooms, _, err = s.UserRooms(ctx, "alice", "", 10)
	if err != nil || len(rooms) != 1 || rooms[0].Room != "alices" {
		t.Errorf("alice's rooms after the delete: %+v, %v", rooms, err)
	}
	if _, err := s.DeleteRoom(ctx, "r"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("DeleteRoom again: %v", err)
	}
	// The id is free again, with caps counted right: bob owns one room now.
	if err := s.CreateRoom(ctx, Room{ID: "r", Name: "Again", Owner: "bob"}, Caps{Created: 2}); err != nil {
		t.Fatalf("re-create: %v", err)
	}
	if ok, err := s.IsModerator(ctx, "r", "alice"); err != nil || ok {
		t.Errorf("a moderator of the deleted room is one of the new: %v, %v", ok, err)
	}
}
