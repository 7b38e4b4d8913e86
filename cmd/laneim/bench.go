package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/laneim/laneim/bench"
)

// runBench runs `laneim bench SCENARIO [flags]`, the load generator, until the
// scenario ends or SIGINT/SIGTERM.
func runBench(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.Main(ctx, args, os.Stdout, os.Stderr)
}
