package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// TestMuteAcrossLogicNodes: with two logic nodes, a mute takes effect at once on the
// node that ingests the room's sends, whichever node served the mute: a send right
// after it is refused within 2 s, well inside the 10 s for which a node keeps a room's
// mutes without an announcement. Each room's mute is served by either node at random,
// so over six rooms some (all but once in 32 runs) cross nodes.
func TestMuteAcrossLogicNodes(t *testing.T) {
	h := startCluster(t, 1, 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h.waitShared(subjects.RoleLogic, partitionCount, 30*time.Second)
	api := h.http(0, "alice")
	bob := h.dial(ctx, "bob", 0)
	for i := range 6 {
		room := fmt.Sprintf("mute%d", i)
		h.createRoom(ctx, room, "alice", "bob")
		// The ingesting node now holds the room's mutes: nobody.
		if _, err := bob.Send(ctx, room, "before"); err != nil {
			t.Fatal(err)
		}
		muted := time.Now()
		if err := api.Mute(ctx, room, "bob", client.SanctionOptions{}); err != nil {
			t.Fatal(err)
		}
		for n := 0; ; n++ {
			_, err := bob.Send(ctx, room, fmt.Sprintf("after %d", n))
			var se *schema.Error
			if errors.As(err, &se) && se.Code == schema.CodeMuted {
				t.Logf("%s: refused %v after the mute", room, time.Since(muted).Round(time.Millisecond))
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", room, err)
			}
			if time.Since(muted) > 2*time.Second {
				t.Fatalf("%s: a send accepted %v after bob's mute", room, time.Since(muted))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := api.Unmute(ctx, room, "bob"); err != nil {
			t.Fatal(err)
		}
		unmuted := time.Now()
		for {
			_, err := bob.Send(ctx, room, "unmuted")
			if err == nil {
				break
			}
			if time.Since(unmuted) > 2*time.Second {
				t.Fatalf("%s: still refused %v after the unmute: %v", room, time.Since(unmuted), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
