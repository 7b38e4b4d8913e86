package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
)

// TestNodesCommand: laneim nodes finds a running dev through the operator context in
// its data dir and lists every role.
func TestNodesCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := configs.Default()
	cfg.Data, cfg.HTTP, cfg.NATSListen, cfg.Gateways = dir, "127.0.0.1:0", "127.0.0.1:0", 2
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stack, err := devstack.Start(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close(ctx)
	var out bytes.Buffer
	if err := listNodes(&out, []string{"--data", dir}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ROLE") {
		t.Fatalf("laneim nodes printed:\n%s", out.String())
	}
	for i, role := range []string{"gateway", "gateway", "logic", "pusher"} {
		if !strings.HasPrefix(lines[i+1], role) {
			t.Errorf("row %d is %q, want a %s", i+1, lines[i+1], role)
		}
	}
	if !strings.Contains(out.String(), stack.Addrs[1]) {
		t.Errorf("gateway 1's address %s is missing:\n%s", stack.Addrs[1], out.String())
	}
	// A cluster's way: nats_url and the credential of the environment.
	t.Setenv("LANEIM_NATS_USER", "operator")
	t.Setenv("LANEIM_NATS_PASSWORD", stack.OperatorPassword())
	out.Reset()
	if err := listNodes(&out, []string{"--nats-url", stack.NATS.ClientURL(), "--json"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), `"role"`); n != 4 {
		t.Errorf("laneim nodes --nats-url listed %d nodes:\n%s", n, out.String())
	}
	t.Setenv("LANEIM_NATS_USER", "")
	if err := listNodes(&out, []string{"--data", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "--context") {
		t.Errorf("without a dev in the data dir: %v, want a hint", err)
	}
}
