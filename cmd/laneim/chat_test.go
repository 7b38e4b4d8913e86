package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
)

// lockedBuffer is an io.Writer the test reads while chat writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// chatSession is one laneim chat running in the test, fed lines through in.
type chatSession struct {
	in   *io.PipeWriter
	out  *lockedBuffer
	done chan error
}

func startChat(ctx context.Context, t *testing.T, url, user, room string) *chatSession {
	t.Helper()
	r, w := io.Pipe()
	s := &chatSession{in: w, out: &lockedBuffer{}, done: make(chan error, 1)}
	go func() { s.done <- chat(ctx, []string{"--url", url, "--user", user, room}, r, s.out) }()
	return s
}

func (s *chatSession) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits until the session printed want.
func (s *chatSession) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestChat: two laneim chat sessions on two gateways of a dev stack see each other's
// messages, come online for each other, edit and delete through commands, and list
// who is online; a command the server refuses prints its error and the chat goes on.
func TestChat(t *testing.T) {
	cfg := configs.Default()
	cfg.Data, cfg.HTTP, cfg.NATSListen, cfg.Gateways = t.TempDir(), "127.0.0.1:0", "none", 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack, err := devstack.Start(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close(ctx)

	alice := startChat(ctx, t, stack.URL(0), "alice", "lobby")
	alice.waitFor(t, "* alice in lobby")
	alice.waitFor(t, "* 1 online")
	bob := startChat(ctx, t, stack.URL(1), "bob", "lobby")
	bob.waitFor(t, "* bob in lobby")
	alice.waitFor(t, "* bob is online")

	alice.say(t, "hello")
	bob.waitFor(t, "[1] alice: hello")
	bob.say(t, "/edit 1 not mine")
	bob.waitFor(t, "! forbidden")
	alice.say(t, "/edit [1] hello, bob")
	bob.waitFor(t, "[2] alice edited [1]: hello, bob")
	alice.say(t, "/delete 1")
	bob.waitFor(t, "[3] alice deleted [1]")
	bob.say(t, "/who")
	bob.waitFor(t, "* 2 online: alice, bob")
	bob.say(t, "//slash")
	alice.waitFor(t, "[4] bob: /slash")
	bob.say(t, "/nope")
	bob.waitFor(t, "unknown command /nope")

	// alice owns lobby (her chat created it): she mutes bob, whose lines are refused.
	aliceToken, err := client.DevToken(ctx, stack.URL(0), "alice")
	if err != nil {
		t.Fatal(err)
	}
	api := &client.HTTP{Base: stack.URL(0), Token: aliceToken}
	if err := api.Mute(ctx, "lobby", "bob", client.SanctionOptions{}); err != nil {
		t.Fatal(err)
	}
	bob.waitFor(t, "* bob is muted")
	bob.say(t, "still here?")
	bob.waitFor(t, "! not sent: muted")

	bob.in.Close() // end of input: bob leaves
	if err := <-bob.done; err != nil {
		t.Fatalf("bob's chat: %v", err)
	}
	alice.waitFor(t, "* bob went offline")
	alice.in.Close()
	if err := <-alice.done; err != nil {
		t.Fatalf("alice's chat: %v", err)
	}
}
