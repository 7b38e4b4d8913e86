package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/store"
)

// runDev runs `laneim dev`: the whole stack in one process until SIGINT or SIGTERM,
// then drains it.
func runDev(args []string) error {
	fs := flag.NewFlagSet("laneim dev", flag.ContinueOnError)
	cfg, err := configs.Load(fs, args)
	if err != nil {
		return err
	}
	log, closer, err := logging.New(cfg.Log, true)
	if err != nil {
		return err
	}
	defer closer.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	stack, err := devstack.Start(startCtx, cfg, log)
	cancel()
	if err != nil {
		return err
	}
	log.Info().Str("data", cfg.Data).Strs("http", stack.Addrs).Msg("laneim dev is up")
	printBanner(cfg, stack)

	<-ctx.Done()
	stop()
	log.Info().Msg("shutting down: draining connections (Ctrl-C again to force)")
	go func() {
		// A second signal forces the exit.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		os.Exit(1)
	}()
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelDrain()
	stack.Close(drainCtx)
	log.Info().Msg("stopped")
	return nil
}

// printBanner tells a newcomer where everything is and what to try first.
func printBanner(cfg configs.Config, stack *devstack.Stack) {
	base := stack.URL(0)
	if strings.HasPrefix(stack.Addrs[0], "[::]:") || strings.HasPrefix(stack.Addrs[0], "0.0.0.0:") {
		base = "http://127.0.0.1:" + stack.Addrs[0][strings.LastIndexByte(stack.Addrs[0], ':')+1:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nlaneIM dev is running (data in %s)\n", cfg.Data)
	for i := range stack.Addrs {
		u := stack.URL(i)
		if i == 0 {
			u = base
		}
		fmt.Fprintf(&b, "  gateway %d   %s   (WebSocket %s/v1/ws)\n", i, u, strings.Replace(u, "http", "ws", 1))
	}
	if url := stack.NATS.ClientURL(); url != "" {
		fmt.Fprintf(&b, "  NATS        %s   (credentials required: the operator's context is %s)\n", url, stack.OperatorContext)
		fmt.Fprintf(&b, "              nats context add laneim-dev --server %s --user operator --password %s\n",
			url, stack.OperatorPassword())
		fmt.Fprintf(&b, "              nats --context laneim-dev sub 'im.room.*.msgs'\n")
		fmt.Fprintf(&b, "  server API  over NATS as user server (context %s):\n", stack.ServerContext)
		fmt.Fprintf(&b, "              nats --server %s --user server --password %s --inbox-prefix _INBOX_server \\\n", url, stack.ServerPassword())
		fmt.Fprintf(&b, "                req im.server.api '{\"method\":\"GET\",\"path\":\"/v1/rooms/general/presence\"}'\n")
	}
	if mysql, err := store.MySQLConfig(cfg.MySQLDSN, store.MySQLOptions{}); err == nil {
		fmt.Fprintf(&b, "  metadata    MySQL %s, database %s\n", mysql.Addr, mysql.DBName)
	}
	fmt.Fprintf(&b, "  metrics     %s/metrics\n\n", base)
	fmt.Fprintf(&b, "Get a token:   curl -s -X POST %s/v1/dev/token -d '{\"user\":\"alice\"}'\n", base)
	fmt.Fprintf(&b, "           or: go run ./cmd/laneim token --data %s alice\n", cfg.Data)
	fmt.Fprintf(&b, "Chat:          go run ./cmd/laneim chat --url %s --user alice general\n", base)
	fmt.Fprintf(&b, "Server API:    curl -s -X POST %s/v1/rooms/general/messages -H 'Authorization: Bearer %s' \\\n", base, stack.APIKey)
	fmt.Fprintf(&b, "                 -H 'Laneim-User: bot' -d '{\"nonce\":\"n1\",\"body\":\"hello\"}'   (the key: api_keys, or %s)\n\n",
		filepath.Join(cfg.Data, "api_key"))
	fmt.Fprint(os.Stderr, b.String())
}
