package subjects

import (
	"strings"
	"testing"
)

// allows reports whether one of the nats-server subject patterns matches subject.
func allows(patterns []string, subject string) bool {
	for _, p := range patterns {
		if matches(p, subject) {
			return true
		}
	}
	return false
}

func matches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range pt {
		if tok == ">" {
			return len(st) > i
		}
		if i >= len(st) || (tok != "*" && tok != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

// TestPresenceAndTypingPermissions: only gateways publish and read presence and typing;
// no other role can forge a user online or typing, nor read who is.
func TestPresenceAndTypingPermissions(t *testing.T) {
	subjects := []string{RoomTypingT("lobby"), PresenceGatewayT("gw1"), PresenceSyncT("gw1"), PresenceSnapT("gw2")}
	for _, role := range Roles {
		perms := RolePermissions(role)
		for _, s := range subjects {
			want := role == RoleGateway
			if got := allows(perms.Publish, s); got != want {
				t.Errorf("%s may publish %s: %v, want %v", role, s, got, want)
			}
			if got := allows(perms.Subscribe, s); got != want {
				t.Errorf("%s may subscribe to %s: %v, want %v", role, s, got, want)
			}
		}
	}
	// A gateway still cannot forge what is logic's or pusher's.
	gw := RolePermissions(RoleGateway)
	for _, s := range []string{RoomEventsT("lobby"), RoomMsgsT("lobby"), UserEventsT("bob"), CacheInvalT("members")} {
		if allows(gw.Publish, s) {
			t.Errorf("gateway may publish %s", s)
		}
	}
	if room, kind, ok := ParseRoomSubject(RoomTypingT("lobby")); !ok || room != "lobby" || kind != KindTyping {
		t.Errorf("ParseRoomSubject(typing) = %q %q %v", room, kind, ok)
	}
}

// TestServerRolePermissions: the server role calls the server API and nothing else,
// and only gateways serve it.
func TestServerRolePermissions(t *testing.T) {
	server := RolePermissions(RoleServer)
	if !allows(server.Publish, ServerAPI) || !allows(server.Subscribe, InboxPrefixT(RoleServer)+".abc") {
		t.Errorf("server role %+v cannot request %s", server, ServerAPI)
	}
	for _, s := range []string{InT("lobby"), SvcRoomCreate, SvcUserKick, UserEventsT("bob"), RoomMsgsT("lobby"), LogicPing} {
		if allows(server.Publish, s) {
			t.Errorf("server may publish %s", s)
		}
	}
	for _, s := range []string{"_INBOX.abc", InboxPrefixT(RoleGateway) + ".abc", RoomMsgsT("lobby"), UserEventsT("bob")} {
		if allows(server.Subscribe, s) {
			t.Errorf("server may subscribe to %s", s)
		}
	}
	for _, role := range Roles {
		perms := RolePermissions(role)
		if got, want := allows(perms.Subscribe, ServerAPI), role == RoleGateway; got != want {
			t.Errorf("%s may serve %s: %v, want %v", role, ServerAPI, got, want)
		}
		if allows(perms.Publish, ServerAPI) {
			t.Errorf("%s may call %s", role, ServerAPI)
		}
	}
}
