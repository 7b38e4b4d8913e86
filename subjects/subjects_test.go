package subjects

import (
	"strings"
	"testing"
)

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
	if MentionT("lobby") != "im.mention.lobby" || NotifyT("lobby") != "im.notify.lobby" || MentionMsgIDT("lobby", 42, 1767225600000) != "lobby:42:1767225600000" {
		t.Fatal("offline hook builders")
	}
}

func TestNonceEncodingKeepsEveryByte(t *testing.T) {
	seen := map[string]string{}
	for _, n := range []string{"n", " n", "n ", "  ", " ", "a:b", "~!@#$%^&*()", `"\`} {
		v := EncodeNonce(n)
		if strings.TrimSpace(v) != v || strings.ContainsAny(v, ": \r\n") {
			t.Errorf("EncodeNonce(%q) = %q: not a header-safe token", n, v)
		}
		if got, ok := DecodeNonce(v); !ok || got != n {
			t.Errorf("DecodeNonce(EncodeNonce(%q)) = %q, %v", n, got, ok)
		}
		id := MsgIDT("r", "u", n)
		if other, dup := seen[id]; dup {
			t.Errorf("nonces %q and %q share the dedupe id %q", n, other, id)
		}
		seen[id] = n
	}
	if _, ok := DecodeNonce("not base64!"); ok {
		t.Error("DecodeNonce accepted a value EncodeNonce cannot produce")
	}
}

// FuzzNonce: every nonce survives its header encoding byte for byte, and decoding any
// header value never panics.
func FuzzNonce(f *testing.F) {
	f.Add("plain")
	f.Add("  spaced ")
	f.Add("a:b\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := DecodeNonce(EncodeNonce(s)); !ok || got != s {
			t.Fatalf("nonce %q came back as %q", s, got)
		}
		_, _ = DecodeNonce(s)
	})
}
