package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/laneim/laneim/schema"
)

// testMetaStore is the conformance suite of MetaStore: every implementation runs it
// (TestSQLiteMeta, TestMySQLMeta), each case on a fresh, empty store from open.
func testMetaStore(t *testing.T, open func(t *testing.T) MetaStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s MetaStore)
	}{
		{"Rooms", metaRooms},
		{"Members", metaMembers},
		{"ListMembers", metaListMembers},
		{"UserRoomsAndRead", metaUserRoomsAndRead},
		{"UserRoomsPages", metaUserRoomsPages},
		{"LeaveRooms", metaLeaveRooms},
		{"Caps", metaCaps},
		{"ConcurrentCaps", metaConcurrentCaps},
		{"Blocks", metaBlocks},
		{"CaseSensitiveIDs", metaCaseSensitiveIDs},
		{"Roles", metaRoles},
		{"Sanctions", metaSanctions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

// wantCap fails unless err is a *CapError of the cap name for user, at limit.
func wantCap(t *testing.T, err error, name, user string, limit int) {
	t.Helper()
	var ce *CapError
	if !errors.As(err, &ce) || *ce != (CapError{Cap: name, User: user, Max: limit}) {
		t.Fatalf("got %v, want the %s cap of %d on %s", err, name, limit, user)
	}
}

func metaRooms(t *testing.T, s MetaStore) {
	ctx := context.Background()
	general := Room{ID: "general", Name: "General", Owner: "alice", Public: true, Created: 1764064800123}
	if err := s.CreateRoom(ctx, general, Caps{}); err != nil {
		t.Fatal(err)
	}

	t.Run("create duplicate", func(t *testing.T) {
		err := s.CreateRoom(ctx, Room{ID: "general", Name: "Other", Owner: "bob"}, Caps{})
		var se *schema.Error
		if !errors.As(err, &se) || se.HTTPStatus() != 409 || se.Code != schema.CodeConflict {
			t.Fatalf("duplicate CreateRoom: %v", err)
		}
		// The failed create changed nothing.
		if got, _ := s.GetRoom(ctx, "general"); got != general {
			t.Errorf("room after duplicate create: %+v", got)
		}
		if ok, _ := s.IsMember(ctx, "general", "bob"); ok {
			t.Error("duplicate create made bob a member")
		}
	})
	t.Run("get", func(t *testing.T) {
		got, err := s.GetRoom(ctx, "general")
		if err != nil || got != general {
			t.Fatalf("GetRoom = %+v, %v; want %+v", got, err, general)
		}
	})
	t.Run("get missing", func(t *testing.T) {
		_, err := s.GetRoom(ctx, "nope")
		if !errors.Is(err, schema.ErrNotFound) {
			t.Fatalf("GetRoom of a missing room: %v", err)
		}
	})
	t.Run("created defaults to now", func(t *testing.T) {
		before := time.Now().UnixMilli()
		if err := s.CreateRoom(ctx, Room{ID: "private", Owner: "bob"}, Caps{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRoom(ctx, "private")
		if err != nil || got.Public || got.Owner != "bob" || got.Created < before || got.Created > time.Now().UnixMilli() {
			t.Fatalf("GetRoom = %+v, %v", got, err)
		}
	})
	t.Run("owner is a member", func(t *testing.T) {
		if ok, err := s.IsMember(ctx, "general", "alice"); err != nil || !ok {
			t.Fatalf("IsMember(owner) = %v, %v", ok, err)
		}
		if n, err := s.CountMembers(ctx, "general"); err != nil || n != 1 {
			t.Fatalf("CountMembers = %d, %v", n, err)
		}
	})
}

func metaMembers(t *testing.T, s MetaStore) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, Room{ID: "r", Name: "R", Owner: "owner"}, Caps{}); err != nil {
		t.Fatal(err)
	}

	addTests := []struct {
		name      string
		room      string
		user      string
		wantAdded bool
		wantErr   error
	}{
		{"new member", "r", "bob", true, nil},
		{"again", "r", "bob", false, nil},
		{"owner again", "r", "owner", false, nil},
		{"another", "r", "carol", true, nil},
		{"missing room", "nope", "bob", false, schema.ErrNotFound},
	}
	for _, tt := range addTests {
		t.Run("add "+tt.name, func(t *testing.T) {
			added, err := s.AddMember(ctx, tt.room, tt.user, Caps{})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("AddMember error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || added != tt.wantAdded {
				t.Fatalf("AddMember = %v, %v; want %v", added, err, tt.wantAdded)
			}
		})
	}
	if ok, _ := s.IsMember(ctx, "nope", "bob"); ok {
		t.Error("member of a missing room")
	}

	memberTests := []struct {
		room, user string
		want       bool
	}{
		{"r", "bob", true}, {"r", "carol", true}, {"r", "dave", false}, {"nope", "bob", false},
	}
	for _, tt := range memberTests {
		t.Run("is member "+tt.room+" "+tt.user, func(t *testing.T) {
			if got, err := s.IsMember(ctx, tt.room, tt.user); err != nil || got != tt.want {
				t.Fatalf("IsMember = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if n, err := s.CountMembers(ctx, "r"); err != nil || n != 3 {
		t.Fatalf("CountMembers = %d, %v; want 3", n, err)
	}
	if n, err := s.CountMembers(ctx, "nope"); err != nil || n != 0 {
		t.Fatalf("CountMembers(missing) = %d, %v; want 0", n, err)
	}

	t.Run("remove", func(t *testing.T) {
		if _, err := s.SetRead(ctx, "carol", "r", 7); err != nil {
			t.Fatal(err)
		}
		removed, err := s.RemoveMember(ctx, "r", "carol")
		if err != nil || !removed {
			t.Fatalf("RemoveMember = %v, %v", removed, err)
		}
		removed, err = s.RemoveMember(ctx, "r", "carol")
		if err != nil || removed {
			t.Fatalf("second RemoveMember = %v, %v", removed, err)
		}
		if removed, err := s.RemoveMember(ctx, "nope", "carol"); err != nil || removed {
			t.Fatalf("RemoveMember(missing room) = %v, %v", removed, err)
		}
		if ok, _ := s.IsMember(ctx, "r", "carol"); ok {
			t.Error("carol still a member")
		}
		// Rejoining starts from a fresh read state.
		if _, err := s.AddMember(ctx, "r", "carol", Caps{}); err != nil {
			t.Fatal(err)
		}
		rooms, _, err := s.UserRooms(ctx, "carol", "", 0)
		if err != nil || len(rooms) != 1 || rooms[0].ReadSeq != 0 {
			t.Fatalf("UserRooms after rejoin = %+v, %v", rooms, err)
		}
	})
}

func metaListMembers(t *testing.T, s MetaStore) {
	ctx := context.Background()
	if err := s.CreateRoom(ctx, Room{ID: "r", Owner: "u00"}, Caps{}); err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := range 250 {
		user := fmt.Sprintf("u%02d", i)
		all = append(all, user)
		if i > 0 {
			if _, err := s.AddMember(ctx, "r", user, Caps{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(all) // "u100" sorts before "u11"
	tests := []struct {
		name     string
		room     string
		after    string
		limit    int
		want     []string
		wantMore bool
	}{
		{"first page", "r", "", 3, all[:3], true},
		{"next page", "r", all[2], 3, all[3:6], true},
		{"last page exact", "r", all[246], 3, all[247:], false},
		{"last page short", "r", all[247], 5, all[248:], false},
		{"after the last", "r", all[249], 5, nil, false},
		{"after a non-member id", "r", "u105x", 2, all[slices.Index(all, "u105")+1 : slices.Index(all, "u105")+3], true},
		{"default limit", "r", "", 0, all[:100], true},
		{"everything", "r", "", 250, all, false},
		{"missing room", "nope", "", 10, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := s.ListMembers(ctx, tt.room, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || more != tt.wantMore {
				t.Errorf("got %v more %v, want %v more %v", got, more, tt.want, tt.wantMore)
			}
		})
	}
	t.Run("walk all pages", func(t *testing.T) {
		var got []string
		after := ""
		for {
			page, more, err := s.ListMembers(ctx, "r", after, 7)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if !more {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(got, all) {
			t.Errorf("pages hold %d members, want %d in order", len(got), len(all))
		}
	})
}

func metaUserRoomsAndRead(t *testing.T, s MetaStore) {
	ctx := context.Background()
	for _, r := range []Room{{ID: "b", Name: "Bee", Owner: "alice"}, {ID: "a", Name: "Ay", Owner: "bob"}, {ID: "c", Name: "Sea", Owner: "bob"}} {
		if err := s.CreateRoom(ctx, r, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddMember(ctx, "a", "alice", Caps{}); err != nil {
		t.Fatal(err)
	}

	readTests := []struct {
		name       string
		user, room string
		seq        int64
		want       int64
		wantErr    error
	}{
		{"raise", "alice", "a", 5, 5, nil},
		{"same", "alice", "a", 5, 5, nil},
		{"never lowers", "alice", "a", 3, 5, nil},
		{"zero", "alice", "a", 0, 5, nil},
		{"raise again", "alice", "a", 9, 9, nil},
		{"other room", "alice", "b", 2, 2, nil},
		{"not a member", "alice", "c", 2, 0, schema.ErrNotFound},
		{"missing room", "alice", "nope", 2, 0, schema.ErrNotFound},
		{"not a member, lower seq", "alice", "c", -1, 0, schema.ErrNotFound},
	}
	for _, tt := range readTests {
		t.Run("set read "+tt.name, func(t *testing.T) {
			got, err := s.SetRead(ctx, tt.user, tt.room, tt.seq)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("SetRead error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SetRead = %d, %v; want %d", got, err, tt.want)
			}
		})
	}

	userTests := []struct {
		user string
		want []UserRoom
	}{
		{"alice", []UserRoom{{"a", "Ay", 9}, {"b", "Bee", 2}}},
		{"bob", []UserRoom{{"a", "Ay", 0}, {"c", "Sea", 0}}},
		{"nobody", nil},
	}
	for _, tt := range userTests {
		t.Run("user rooms "+tt.user, func(t *testing.T) {
			got, more, err := s.UserRooms(ctx, tt.user, "", 0)
			if err != nil || more || !slices.Equal(got, tt.want) {
				t.Fatalf("UserRooms = %+v, %v, %v; want %+v", got, more, err, tt.want)
			}
		})
	}
}

func metaUserRoomsPages(t *testing.T, s MetaStore) {
	ctx := context.Background()
	var all []string
	for i := range 250 {
		room := fmt.Sprintf("r%d", i)
		all = append(all, room)
		if err := s.CreateRoom(ctx, Room{ID: room, Name: "N" + room, Owner: "owner"}, Caps{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddMember(ctx, room, "u", Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(all) // "r100" sorts before "r11"
	ids := func(rooms []UserRoom) []string {
		var out []string
		for _, r := range rooms {
			if r.Name != "N"+r.Room {
				t.Errorf("room %s named %q", r.Room, r.Name)
			}
			out = append(out, r.Room)
		}
		return out
	}
	tests := []struct {
		name     string
		user     string
		after    string
		limit    int
		want     []string
		wantMore bool
	}{
		{"first page", "u", "", 3, all[:3], true},
		{"next page", "u", all[2], 3, all[3:6], true},
		{"last page exact", "u", all[246], 3, all[247:], false},
		{"last page short", "u", all[247], 5, all[248:], false},
		{"after the last", "u", all[249], 5, nil, false},
		{"after a room it is not in", "u", "r105x", 2, all[slices.Index(all, "r105")+1 : slices.Index(all, "r105")+3], true},
		{"default limit covers all 250", "u", "", 0, all, false},
		{"exactly all", "u", "", 250, all, false},
		{"nobody", "nobody", "", 10, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := s.UserRooms(ctx, tt.user, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) || more != tt.wantMore {
				t.Errorf("got %v more %v, want %v more %v", ids(got), more, tt.want, tt.wantMore)
			}
		})
	}
	t.Run("default limit is 500", func(t *testing.T) {
		for i := range 260 {
			room := fmt.Sprintf("s%d", i)
			if err := s.CreateRoom(ctx, Room{ID: room, Name: "N" + room, Owner: "u"}, Caps{}); err != nil {
				t.Fatal(err)
			}
		}
		got, more, err := s.UserRooms(ctx, "u", "", 0)
		if err != nil || len(got) != 500 || !more {
			t.Fatalf("default page: %d rooms, more %v, %v", len(got), more, err)
		}
	})
}

func metaLeaveRooms(t *testing.T, s MetaStore) {
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c", "d"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Owner: "owner"}, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.AddMember(ctx, id, "u", Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetRead(ctx, "u", "b", 4); err != nil {
		t.Fatal(err)
	}
	// In the order given, each once; rooms it is not in, or that do not exist, skipped.
	left, err := s.LeaveRooms(ctx, "u", []string{"c", "d", "nosuch", "a", "c"})
	if err != nil || !slices.Equal(left, []string{"c", "a"}) {
		t.Fatalf("LeaveRooms = %v, %v; want [c a]", left, err)
	}
	rooms, _, err := s.UserRooms(ctx, "u", "", 0)
	if err != nil || len(rooms) != 1 || rooms[0].Room != "b" || rooms[0].ReadSeq != 4 {
		t.Fatalf("rooms left: %+v, %v", rooms, err)
	}
	// Leaving freed two places under the rooms cap.
	if _, err := s.AddMember(ctx, "a", "u", Caps{Rooms: 2}); err != nil {
		t.Fatalf("add after leaving, at 1 of 2 rooms: %v", err)
	}
	_, err = s.AddMember(ctx, "c", "u", Caps{Rooms: 2})
	wantCap(t, err, CapRooms, "u", 2)
	if left, err := s.LeaveRooms(ctx, "u", nil); err != nil || len(left) != 0 {
		t.Fatalf("LeaveRooms(nil) = %v, %v", left, err)
	}
	// The owner may leave its own room too; the room stays.
	if left, err := s.LeaveRooms(ctx, "owner", []string{"d"}); err != nil || !slices.Equal(left, []string{"d"}) {
		t.Fatalf("owner leaves: %v, %v", left, err)
	}
	if _, err := s.GetRoom(ctx, "d"); err != nil {
		t.Fatal(err)
	}
}

func metaCaps(t *testing.T, s MetaStore) {
	ctx := context.Background()
	caps := Caps{Rooms: 3, Created: 2}

	// Creating counts against both caps of the owner.
	for _, id := range []string{"a", "b"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Owner: "alice"}, caps); err != nil {
			t.Fatal(err)
		}
	}
	err := s.CreateRoom(ctx, Room{ID: "c", Owner: "alice"}, caps)
	wantCap(t, err, CapCreated, "alice", 2)
	if _, err := s.GetRoom(ctx, "c"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("a refused create made the room: %v", err)
	}
	// The cap is checked before the id: a duplicate at the cap is refused by the cap.
	err = s.CreateRoom(ctx, Room{ID: "a", Owner: "alice"}, caps)
	wantCap(t, err, CapCreated, "alice", 2)

	// Bob creates rooms of his own and adds alice to them up to her rooms cap.
	for _, id := range []string{"x", "y"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Owner: "bob"}, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	if added, err := s.AddMember(ctx, "x", "alice", caps); err != nil || !added {
		t.Fatalf("add to x: %v, %v", added, err)
	}
	_, err = s.AddMember(ctx, "y", "alice", caps)
	wantCap(t, err, CapRooms, "alice", 3)
	if ok, _ := s.IsMember(ctx, "y", "alice"); ok {
		t.Fatal("a refused add made alice a member")
	}
	// Adding a member again is no new membership: never refused.
	if added, err := s.AddMember(ctx, "x", "alice", caps); err != nil || added {
		t.Fatalf("re-add at the cap: %v, %v", added, err)
	}
	// At her rooms cap, alice may not create a room either, whatever Created allows.
	err = s.CreateRoom(ctx, Room{ID: "d", Owner: "alice"}, Caps{Rooms: 3, Created: 10})
	wantCap(t, err, CapRooms, "alice", 3)
	// A zero cap is none.
	if added, err := s.AddMember(ctx, "y", "alice", Caps{}); err != nil || !added {
		t.Fatalf("add without caps: %v, %v", added, err)
	}
	// Leaving frees a place under a cap.
	if _, err := s.RemoveMember(ctx, "x", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMember(ctx, "y", "alice"); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AddMember(ctx, "y", "alice", caps); err != nil || !added {
		t.Fatalf("add after leaving: %v, %v", added, err)
	}
	// alice is back at 3 rooms and 2 created, bob at 2 and 2.
	_, err = s.AddMember(ctx, "x", "alice", caps)
	wantCap(t, err, CapRooms, "alice", 3)
	err = s.CreateRoom(ctx, Room{ID: "e", Owner: "alice"}, Caps{Created: 2})
	wantCap(t, err, CapCreated, "alice", 2)
	err = s.CreateRoom(ctx, Room{ID: "e", Owner: "bob"}, Caps{Rooms: 2})
	wantCap(t, err, CapRooms, "bob", 2)
	if err := s.CreateRoom(ctx, Room{ID: "e", Owner: "bob"}, Caps{Rooms: 3, Created: 3}); err != nil {
		t.Fatalf("bob's third room under caps of 3: %v", err)
	}
}

// metaConcurrentCaps: writes racing for the last places under a cap never take more
// than the cap between them.
func metaConcurrentCaps(t *testing.T, s MetaStore) {
	ctx := context.Background()
	const writers, limit = 12, 5
	for i := range writers {
		if err := s.CreateRoom(ctx, Room{ID: fmt.Sprintf("r%d", i), Owner: "owner"}, Caps{}); err != nil {
			t.Fatal(err)
		}
	}
	race := func(name string, write func(i int) (bool, error)) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var added, refused int
		for i := range writers {
			wg.Go(func() {
				ok, err := write(i)
				var ce *CapError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.As(err, &ce):
					refused++
				case err != nil:
					t.Errorf("%s %d: %v", name, i, err)
				case ok:
					added++
				}
			})
		}
		wg.Wait()
		if added != limit || refused != writers-limit {
			t.Errorf("%s: %d added and %d refused by a cap of %d, want %d and %d", name, added, refused, limit, limit, writers-limit)
		}
	}
	race("add", func(i int) (bool, error) {
		return s.AddMember(ctx, fmt.Sprintf("r%d", i), "u", Caps{Rooms: limit})
	})
	race("create", func(i int) (bool, error) {
		err := s.CreateRoom(ctx, Room{ID: fmt.Sprintf("c%d", i), Owner: "v"}, Caps{Created: limit})
		return err == nil, err
	})
	race("block", func(i int) (bool, error) {
		return s.Block(ctx, "w", fmt.Sprintf("m%d", i), Caps{Blocks: limit})
	})
	if rooms, _, err := s.UserRooms(ctx, "u", "", 0); err != nil || len(rooms) != limit {
		t.Errorf("u is in %d rooms, %v; want %d", len(rooms), err, limit)
	}
	if blocks, _, err := s.ListBlocks(ctx, "w", "", 0); err != nil || len(blocks) != limit {
		t.Errorf("w blocks %d, %v; want %d", len(blocks), err, limit)
	}
}

func metaBlocks(t *testing.T, s MetaStore) {
	ctx := context.Background()
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
	// Unblocking freed a place under the cap, and only one.
	if added, err := s.Block(ctx, "u", "m4", caps); err != nil || !added {
		t.Fatalf("Block after Unblock: %v, %v", added, err)
	}
	_, err = s.Block(ctx, "u", "m5", caps)
	wantCap(t, err, CapBlocks, "u", 3)
}

// metaCaseSensitiveIDs: ids differ by case (schema.ValidID), and pages are in byte
// order, upper case before lower.
func metaCaseSensitiveIDs(t *testing.T, s MetaStore) {
	ctx := context.Background()
	for _, id := range []string{"room", "Room"} {
		if err := s.CreateRoom(ctx, Room{ID: id, Name: "name of " + id, Owner: "alice"}, Caps{}); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
	if got, err := s.GetRoom(ctx, "Room"); err != nil || got.Name != "name of Room" {
		t.Fatalf("GetRoom(Room) = %+v, %v", got, err)
	}
	if _, err := s.GetRoom(ctx, "ROOM"); !errors.Is(err, schema.ErrNotFound) {
		t.Fatalf("GetRoom(ROOM): %v", err)
	}
	for _, user := range []string{"bob", "Bob", "_b", "-b", "0b"} {
		if added, err := s.AddMember(ctx, "room", user, Caps{}); err != nil || !added {
			t.Fatalf("add %s: %v, %v", user, added, err)
		}
	}
	if ok, err := s.IsMember(ctx, "room", "BOB"); err != nil || ok {
		t.Fatalf("IsMember(BOB) = %v, %v", ok, err)
	}
	if ok, err := s.IsMember(ctx, "Room", "bob"); err != nil || ok {
		t.Fatalf("IsMember(Room, bob) = %v, %v", ok, err)
	}
	got, _, err := s.ListMembers(ctx, "room", "", 0)
	if want := []string{"-b", "0b", "Bob", "_b", "alice", "bob"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListMembers = %v, %v; want byte order %v", got, err, want)
	}
	if removed, err := s.RemoveMember(ctx, "room", "BOB"); err != nil || removed {
		t.Fatalf("RemoveMember(BOB) = %v, %v", removed, err)
	}
	if _, err := s.Block(ctx, "alice", "Bob", Caps{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.IsBlocked(ctx, "alice", "bob"); err != nil || ok {
		t.Fatalf("IsBlocked(alice, bob) = %v, %v", ok, err)
	}
	// A name of 200 bytes of any script, kept byte for byte.
	name := strings.Repeat("é", 50) + strings.Repeat("😀", 25)
	if err := s.CreateRoom(ctx, Room{ID: "named", Name: name, Owner: "alice", Created: time.Now().UnixMilli()}, Caps{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRoom(ctx, "named"); err != nil || got.Name != name {
		t.Fatalf("GetRoom(named) = %q, %v", got.Name, err)
	}
}
