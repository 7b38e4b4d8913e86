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

// TestOfflineHookPermissions: only logic publishes mentions, only pusher (the
// notifier) asks who is active, checks memberships and publishes notifications, every
// gateway hears the question and may answer it, and no gateway reaches the membership
// check, which needs no user token.
func TestOfflineHookPermissions(t *testing.T) {
	for _, tc := range []struct {
		subject string
		publish string // the one role that may publish it
	}{
		{MentionT("lobby"), RoleLogic},
		{NotifyT("lobby"), RolePusher},
		{PresenceActive, RolePusher},
		{MembersCheck, RolePusher},
	} {
		for _, role := range Roles {
			if got := allows(RolePermissions(role).Publish, tc.subject); got != (role == tc.publish) {
				t.Errorf("%s may publish %s: %v", role, tc.subject, got)
			}
		}
	}
	gw := RolePermissions(RoleGateway)
	if !allows(gw.Subscribe, PresenceActive) || !gw.Responses {
		t.Error("a gateway cannot hear or answer who is active")
	}
	if !allows(RolePermissions(RoleLogic).Subscribe, MembersCheck) {
		t.Error("logic cannot serve the membership check")
	}
	pusher := RolePermissions(RolePusher)
	for _, s := range []string{"$JS.API.CONSUMER.CREATE." + StreamMentions + "." + NotifyConsumer,
		"$JS.API.CONSUMER.MSG.NEXT." + StreamMentions + "." + NotifyConsumer, "$JS.ACK." + StreamMentions + ".notify.1.2.3.4.5"} {
		if !allows(pusher.Publish, s) {
			t.Errorf("pusher may not publish %s", s)
		}
	}
}

// TestServerRolePermissions: the server role calls the server API and nothing else,
// and only gateways serve it.
func TestServerRolePermissions(t *testing.T) {
	server := RolePermissions(RoleServer)
	if !allows(server.Publish, ServerAPI) || !allows(server.Subscribe, InboxPrefixT(RoleServer)+".abc") {
		t.Errorf("server role %+v cannot request %s", server, ServerAPI)
	}
	for _, s := range []string{"$JS.API.STREAM.INFO." + StreamNotify, "$JS.API.CONSUMER.DURABLE.CREATE." + StreamNotify + ".push",
		"$JS.API.CONSUMER.MSG.NEXT." + StreamNotify + ".push", "$JS.ACK." + StreamNotify + ".push.1.2.3.4.5"} {
		if !allows(server.Publish, s) {
			t.Errorf("server may not publish %s: its backend cannot consume the offline hook", s)
		}
	}
	for _, s := range []string{InT("lobby"), SvcRoomCreate, SvcUserKick, UserEventsT("bob"), RoomMsgsT("lobby"), LogicPing,
		"$JS.API.STREAM.INFO." + StreamOut, "$JS.API.CONSUMER.MSG.NEXT." + StreamMentions + ".notify", "$JS.API.STREAM.DELETE." + StreamNotify} {
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
