package subjects

import "testing"

func TestBuildersAndParsers(t *testing.T) {
	if got := InTransform(8); got != "im.in.{{partition(8,1)}}.{{wildcard(1)}}" {
		t.Fatalf("InTransform = %s", got)
	}
	if room, kind, ok := ParseRoomSubject(RoomMsgsT("general")); !ok || room != "general" || kind != KindMsgs {
		t.Fatalf("ParseRoomSubject = %q %q %v", room, kind, ok)
	}
	if _, _, ok := ParseRoomSubject(UserEventsT("bob")); ok {
		t.Fatal("a user subject parsed as a room subject")
	}
	if user, ok := ParseUserSubject(UserEventsT("bob")); !ok || user != "bob" {
		t.Fatalf("ParseUserSubject = %q %v", user, ok)
	}
	if RoomOfStored("im.in.3.general") != "general" || RoomOfStored(InT("x")) != "x" {
		t.Fatal("RoomOfStored")
	}
}
