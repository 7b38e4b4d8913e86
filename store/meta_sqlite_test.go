package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/laneim/laneim/schema"
)

func TestSQLiteRooms(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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

func TestSQLiteMembers(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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

func TestSQLiteListMembers(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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

func TestSQLiteUserRoomsAndRead(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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

func TestSQLiteUserRoomsPages(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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

func TestSQLiteLeaveRooms(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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
	if got := heldBy(t, s, "u"); got != [3]int{1, 0, 0} {
		t.Fatalf("u holds %v, want 1 room", got)
	}
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

func TestSQLiteAreMembers(t *testing.T) {
	ctx := context.Background()
	s, _ := openTestSQLite(t)
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
