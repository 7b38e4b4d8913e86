package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
)

// TestClientModeration: the Go client mutes, bans and lists them, and reads a mute's
// refusal and the room events as the protocol has them.
func TestClientModeration(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", true, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bob, err := client.Dial(ctx, client.Config{URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: token(t, s, "bob")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	roomEvent := func(action string) *schema.RoomEventD {
		t.Helper()
		for {
			select {
			case ev := <-bob.Events():
				if ev.Room != nil && ev.Room.Action == action {
					return ev.Room
				}
			case <-ctx.Done():
				t.Fatalf("no room event %s", action)
			}
		}
	}
	h := &client.HTTP{Base: s.URL(0), Token: token(t, s, "alice")}
	until := time.Now().Add(time.Hour).UnixMilli()
	if err := h.Mute(ctx, "r", "bob", client.SanctionOptions{Until: until, Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	if d := roomEvent(schema.RoomMuted); d.User != "bob" || d.Until != until {
		t.Fatalf("muted event: %+v", d)
	}
	var se *schema.Error
	if _, err := bob.Send(ctx, "r", "hi"); !errors.As(err, &se) || se.Code != schema.CodeMuted {
		t.Fatalf("a muted send: %v", err)
	}
	page, err := h.Mutes(ctx, "r", "", 10)
	if err != nil || len(page.Users) != 1 || page.More ||
		page.Users[0] != (schema.SanctionInfo{User: "bob", Until: until, By: "alice", Reason: "spam"}) {
		t.Fatalf("mutes: %+v, %v", page, err)
	}
	if err := h.Unmute(ctx, "r", "bob"); err != nil {
		t.Fatal(err)
	}
	roomEvent(schema.RoomUnmuted)
	if _, err := bob.Send(ctx, "r", "hi"); err != nil {
		t.Fatalf("a send after the unmute: %v", err)
	}

	if err := h.Ban(ctx, "r", "bob", client.SanctionOptions{Duration: 60_000}); err != nil {
		t.Fatal(err)
	}
	if d := roomEvent(schema.RoomBanned); d.User != "bob" || d.Until == 0 {
		t.Fatalf("banned event: %+v", d)
	}
	hb := &client.HTTP{Base: s.URL(0), Token: token(t, s, "bob")}
	if err := hb.Do(ctx, "PUT", "/v1/rooms/r/members/bob", nil, nil); !errors.Is(err, schema.ErrForbidden) {
		t.Fatalf("a banned user joins: %v", err)
	}
	if page, err := h.Bans(ctx, "r", "", 0); err != nil || len(page.Users) != 1 || page.Users[0].User != "bob" {
		t.Fatalf("bans: %+v, %v", page, err)
	}
	if err := h.Unban(ctx, "r", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := hb.Do(ctx, "PUT", "/v1/rooms/r/members/bob", nil, nil); err != nil {
		t.Fatalf("an unbanned user joins: %v", err)
	}
}
