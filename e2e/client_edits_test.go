package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
)

// TestClientEditDelete: the Go client edits and deletes, and reads the entries and the
// room events as the protocol has them.
func TestClientEditDelete(t *testing.T) {
	s := startStack(t, t.TempDir(), nil)
	room(t, s, "r", "alice", false, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(user string) *client.Client {
		c, err := client.Dial(ctx, client.Config{URL: "ws://" + s.Addrs[0] + "/v1/ws", Token: token(t, s, user)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice, bob := dial("alice"), dial("bob")
	if _, err := bob.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Send(ctx, "r", "helo")
	if err != nil {
		t.Fatal(err)
	}
	edited, err := alice.Edit(ctx, "r", sent.Seq, "hello")
	if err != nil || edited.Seq != sent.Seq+1 {
		t.Fatalf("edit: %+v, %v", edited, err)
	}
	var se *schema.Error
	if _, err := bob.Edit(ctx, "r", sent.Seq, "mine"); !errors.As(err, &se) || se.Code != schema.CodeForbidden {
		t.Fatalf("bob's edit of alice's message: %v", err)
	}
	deleted, err := alice.Delete(ctx, "r", sent.Seq)
	if err != nil || deleted.Seq != sent.Seq+2 {
		t.Fatalf("delete: %+v, %v", deleted, err)
	}

	var got []schema.Message
	for len(got) < 3 {
		select {
		case ev := <-bob.Events():
			msgs, err := ev.Messages()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, msgs...)
		case <-ctx.Done():
			t.Fatalf("bob has %d of 3 entries", len(got))
		}
	}
	if got[1].Kind != schema.KindEdit || got[1].Ref != sent.Seq || string(got[1].Body) != `"hello"` ||
		got[2].Kind != schema.KindDelete || got[2].Ref != sent.Seq {
		t.Fatalf("live entries: %+v", got)
	}
	page, err := bob.History(ctx, schema.HistoryD{Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := page.Messages()
	if err != nil || len(msgs) != 3 || msgs[0].Kind != schema.KindDeleted || string(msgs[0].Body) != "null" {
		t.Fatalf("history: %+v, %v", msgs, err)
	}

	h := &client.HTTP{Base: s.URL(0), Token: token(t, s, "alice")}
	if _, err := h.RenameRoom(ctx, "r", "New name"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-bob.Events():
			if ev.Room == nil {
				continue
			}
			if ev.Op != schema.OpRoom || ev.Room.Room != "r" || ev.Room.Action != schema.RoomRenamed || ev.Room.Name != "New name" {
				t.Fatalf("room event: %+v", ev.Room)
			}
		case <-ctx.Done():
			t.Fatal("no room event")
		}
		break
	}
	if err := h.SetModerator(ctx, "r", "bob", true); err != nil {
		t.Fatal(err)
	}
	if info, err := h.TransferRoom(ctx, "r", "bob"); err != nil || info.Owner != "bob" {
		t.Fatalf("transfer: %+v, %v", info, err)
	}
	if err := h.DeleteRoom(ctx, "r"); !errors.As(err, &se) || se.Code != schema.CodeForbidden {
		t.Fatalf("the old owner deletes the room: %v", err)
	}
	hb := &client.HTTP{Base: s.URL(0), Token: token(t, s, "bob")}
	if err := hb.DeleteRoom(ctx, "r"); err != nil {
		t.Fatal(err)
	}
}
