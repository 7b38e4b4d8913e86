package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// TestClientServer: the Go client's Server, over HTTP with the API key and over NATS
// with the server role's credential, creates a room, adds a member, posts as a bot,
// reads presence, removes the member and kicks a user; errors come back typed.
func TestClientServer(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	nc, err := s.Connect(subjects.RoleServer, nats.CustomInboxPrefix(client.ServerInboxPrefix))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for name, srv := range map[string]*client.Server{
		"http": client.NewServerHTTP(s.URL(1), s.APIKey, nil),
		"nats": client.NewServerNATS(nc),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			room, user := "room-"+name, "user-"+name
			info, err := srv.CreateRoom(ctx, "owner", room, "Room "+name, false)
			if err != nil || info.Owner != "owner" || info.Name != "Room "+name {
				t.Fatalf("create: %+v, %v", info, err)
			}
			c := connect(t, s, user)
			if err := srv.AddMember(ctx, room, user); err != nil {
				t.Fatal(err)
			}
			if who, action := memberEvent(t, c, room); who != user || action != schema.ActionJoin {
				t.Fatalf("member event %s %s", who, action)
			}
			c.mustCall("subscribe", map[string]any{"room": room}, "subscribed")
			posted, err := srv.Post(ctx, room, "bot", "n1", map[string]string{"text": "hi"})
			if err != nil || posted.Seq != 1 || posted.Ts == 0 {
				t.Fatalf("post: %+v, %v", posted, err)
			}
			if m := msgFrom(t, c, room); m.User != "bot" || string(m.Body) != `{"text":"hi"}` {
				t.Fatalf("member got %+v", m)
			}
			// The other gateway hears of the session within a presence heartbeat.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				page, err := srv.Presence(ctx, room, "", 10)
				if err == nil && page.Online == 1 && len(page.Users) == 1 && page.Users[0] == user {
					break
				}
				if err != nil || time.Now().After(deadline) {
					t.Fatalf("presence: %+v, %v", page, err)
				}
			}
			var se *schema.Error
			if _, err := srv.Post(ctx, "nosuch", "bot", "n2", "x"); !errors.As(err, &se) || se.Code != schema.CodeNotFound || se.Status != http.StatusNotFound {
				t.Fatalf("post to a missing room: %v", err)
			}
			if err := srv.RemoveMember(ctx, room, user); err != nil {
				t.Fatal(err)
			}
			if who, action := memberEvent(t, c, room); who != user || action != schema.ActionLeave {
				t.Fatalf("member event %s %s", who, action)
			}
			if err := srv.Kick(ctx, user, "bye"); err != nil {
				t.Fatal(err)
			}
			if code := c.closeCode(5 * time.Second); code != schema.CloseKicked {
				t.Fatalf("close code %d", code)
			}
		})
	}
	// A wrong key is unauthorized.
	bad := client.NewServerHTTP(s.URL(0), "x"+s.APIKey[1:], nil)
	var se *schema.Error
	if _, err := bad.Post(context.Background(), "room-http", "bot", "n3", "x"); !errors.As(err, &se) || se.Code != schema.CodeUnauthorized {
		t.Fatalf("wrong key: %v", err)
	}
}
