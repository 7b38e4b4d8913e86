package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/laneim/laneim/schema"
)

// Mutes and bans, part of the MetaStore conformance suite.

func metaSanctions(t *testing.T, s MetaStore) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, Room{ID: "r", Name: "R", Owner: "alice", Public: true}, Caps{}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRoom(ctx, Room{ID: "other", Name: "O", Owner: "alice"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		if _, err := s.AddMember(ctx, "r", u, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetModerator(ctx, "r", "carol", true); err != nil {
		t.Fatal(err)
	}
	const now = 1_000_000

	// Mutes: replaced by a second one, listed while active, read back whole.
	for _, m := range []Sanction{
		{Room: "r", User: "bob", Kind: SanctionMute, Until: now + 5000, By: "alice", Reason: "spam", Created: now},
		{Room: "r", User: "dave", Kind: SanctionMute, Until: now - 1, By: "alice", Created: now - 10},
		{Room: "r", User: "bob", Kind: SanctionMute, Until: 0, By: "carol", Reason: "more spam", Created: now + 1},
		{Room: "other", User: "bob", Kind: SanctionMute, Until: now + 1, By: "alice", Created: now},
	} {
		if member, err := s.Sanction(ctx, m); err != nil || member {
			t.Fatalf("Sanction(%+v) = %v, %v; want false (a mute does not report membership)", m, member, err)
		}
	}
	got, found, err := s.GetSanction(ctx, "r", "bob", SanctionMute)
	want := Sanction{Room: "r", User: "bob", Kind: SanctionMute, Until: 0, By: "carol", Reason: "more spam", Created: now + 1}
	if err != nil || !found || got != want {
		t.Fatalf("GetSanction = %+v, %v, %v; want %+v", got, found, err, want)
	}
	if _, found, err := s.GetSanction(ctx, "r", "bob", SanctionBan); err != nil || found {
		t.Fatalf("a ban nobody imposed: %v, %v", found, err)
	}
	if got, found, err := s.GetSanction(ctx, "r", "dave", SanctionMute); err != nil || !found || got.Active(now) {
		t.Fatalf("an ended mute: %+v, %v, %v; want found and not active", got, found, err)
	}
	list, more, err := s.Sanctions(ctx, "r", SanctionMute, "", now, 10)
	if err != nil || more || len(list) != 1 || list[0] != want {
		t.Fatalf("Sanctions = %+v, %v, %v; want bob's alone (dave's has ended)", list, more, err)
	}
	if list, _, err := s.Sanctions(ctx, "r", SanctionMute, "", now-100, 10); err != nil || len(list) != 2 {
		t.Fatalf("Sanctions before dave's ended = %+v, %v", list, err)
	}
	mutes, err := s.RoomMutes(ctx, []string{"r", "other", "none"}, now)
	if err != nil || len(mutes) != 2 || len(mutes["r"]) != 1 || mutes["r"]["bob"] != 0 || mutes["other"]["bob"] != now+1 {
		t.Fatalf("RoomMutes = %v, %v", mutes, err)
	}
	if mutes, err := s.RoomMutes(ctx, []string{"other"}, now+1); err != nil || len(mutes) != 0 {
		t.Fatalf("RoomMutes once other's has ended = %v, %v", mutes, err)
	}
	if lifted, err := s.Lift(ctx, "r", "bob", SanctionMute); err != nil || !lifted {
		t.Fatalf("Lift = %v, %v", lifted, err)
	}
	if lifted, err := s.Lift(ctx, "r", "bob", SanctionMute); err != nil || lifted {
		t.Fatalf("Lift again = %v, %v", lifted, err)
	}
	if mutes, err := s.RoomMutes(ctx, []string{"r"}, now); err != nil || len(mutes) != 0 {
		t.Fatalf("RoomMutes after the lift = %v, %v", mutes, err)
	}
	// A muted member stays one.
	if ok, err := s.IsMember(ctx, "r", "bob"); err != nil || !ok {
		t.Fatalf("bob after a mute: member %v, %v", ok, err)
	}

	// Bans: the member and its moderator role go; a ban of a non-member is kept.
	ban := Sanction{Room: "r", User: "carol", Kind: SanctionBan, By: "alice", Reason: "abuse", Created: now}
	if member, err := s.Sanction(ctx, ban); err != nil || !member {
		t.Fatalf("ban carol = %v, %v; want she was a member", member, err)
	}
	if ok, err := s.IsMember(ctx, "r", "carol"); err != nil || ok {
		t.Fatalf("carol after the ban: member %v, %v", ok, err)
	}
	if ok, err := s.IsModerator(ctx, "r", "carol"); err != nil || ok {
		t.Fatalf("carol after the ban: moderator %v, %v", ok, err)
	}
	if n, err := s.CountMembers(ctx, "r"); err != nil || n != 3 {
		t.Fatalf("members after the ban: %d, %v; want 3", n, err)
	}
	if member, err := s.Sanction(ctx, ban); err != nil || member {
		t.Fatalf("ban carol again = %v, %v; want she was no member", member, err)
	}
	if member, err := s.Sanction(ctx, Sanction{Room: "r", User: "eve", Kind: SanctionBan, By: "alice", Until: now + 10}); err != nil || member {
		t.Fatalf("ban eve = %v, %v", member, err)
	}
	list, more, err = s.Sanctions(ctx, "r", SanctionBan, "", now, 1)
	if err != nil || !more || len(list) != 1 || list[0] != ban {
		t.Fatalf("first ban = %+v, %v, %v; want carol's and more", list, more, err)
	}
	list, more, err = s.Sanctions(ctx, "r", SanctionBan, "carol", now, 1)
	if err != nil || more || len(list) != 1 || list[0].User != "eve" || list[0].Created == 0 {
		t.Fatalf("second ban = %+v, %v, %v; want eve's with a created time", list, more, err)
	}
	if list, _, err := s.Sanctions(ctx, "r", SanctionMute, "", now, 10); err != nil || len(list) != 0 {
		t.Fatalf("bans listed as mutes: %+v, %v", list, err)
	}
	// Rejoining is logic's refusal, not the store's: the row is what logic reads.
	if _, err := s.AddMember(ctx, "r", "carol", Caps{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.IsModerator(ctx, "r", "carol"); err != nil || ok {
		t.Fatalf("a banned moderator who came back: moderator %v, %v", ok, err)
	}

	// A missing room.
	if _, err := s.Sanction(ctx, Sanction{Room: "nope", User: "bob", Kind: SanctionBan, By: "alice"}); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("a sanction in a missing room: %v", err)
	}

	// A deleted room takes its sanctions along; one created again with the id has none.
	if _, err := s.Sanction(ctx, Sanction{Room: "r", User: "dave", Kind: SanctionMute, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRoom(ctx, Room{ID: "r", Name: "Again", Owner: "alice"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{SanctionMute, SanctionBan} {
		if list, _, err := s.Sanctions(ctx, "r", kind, "", 0, 10); err != nil || len(list) != 0 {
			t.Fatalf("%ss of a room deleted and created again: %+v, %v", kind, list, err)
		}
	}
	if mutes, err := s.RoomMutes(ctx, []string{"r"}, 0); err != nil || len(mutes) != 0 {
		t.Fatalf("mutes of a room deleted and created again: %v, %v", mutes, err)
	}
	if list, _, err := s.Sanctions(ctx, "other", SanctionMute, "", 0, 10); err != nil ||
		!slices.EqualFunc(list, []string{"bob"}, func(s Sanction, u string) bool { return s.User == u }) {
		t.Fatalf("the other room's mutes: %+v, %v", list, err)
	}
}
