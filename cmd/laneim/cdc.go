package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/cdc"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/subjects"
)

// Credentials of a cluster role on NATS, from the environment only (never a flag:
// flags show in the process list).
const (
	envNATSCreds    = "LANEIM_NATS_CREDS"    // a .creds file (JWT + nkey seed)
	envNATSUser     = "LANEIM_NATS_USER"     // or a user and password
	envNATSPassword = "LANEIM_NATS_PASSWORD" //
)

// runCDC runs `laneim cdc` until SIGINT or SIGTERM: it reads the binlog of the MySQL
// metadata store (mysql_dsn) and announces the changes on the NATS cluster
// (nats_url), serving /healthz and /metrics on http.
func runCDC(args []string) error {
	fs := flag.NewFlagSet("laneim cdc", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: laneim cdc [flags]

Reads the binlog of laneIM's MySQL metadata database ($%s) and announces every
change of rooms, members and blocks on NATS ($%s), for the caches of every node.
Run two for failover: one reads at a time. NATS credentials come from $%s, or
$%s and $%s.

`, configs.EnvName("mysql_dsn"), configs.EnvName("nats_url"), envNATSCreds, envNATSUser, envNATSPassword)
		printFlags(fs, "config", "http", "nats-url", "log-level")
	}
	cfg, err := configs.Load(fs, args)
	if err != nil {
		return err
	}
	if cfg.MySQLDSN == "" {
		return fmt.Errorf("cdc: no MySQL to read: set %s", configs.EnvName("mysql_dsn"))
	}
	if cfg.NATSURL == "" {
		return fmt.Errorf("cdc: no NATS to publish on: set %s or --nats-url", configs.EnvName("nats_url"))
	}
	log, closer, err := logging.New(cfg.Log, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	log = log.With().Str("role", subjects.RoleCDC).Logger()

	opts := []nats.Option{nats.Name("laneim-cdc"), nats.MaxReconnects(-1),
		nats.CustomInboxPrefix(subjects.InboxPrefixT(subjects.RoleCDC))}
	if creds := os.Getenv(envNATSCreds); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	} else if user := os.Getenv(envNATSUser); user != "" {
		opts = append(opts, nats.UserInfo(user, os.Getenv(envNATSPassword)))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("cdc: connect to NATS %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Announcements go through the cache's publisher: with redis_url, the shared
	// cache's entries are replaced by tombstones before the nodes hear of the change.
	pubCfg := cache.Config{NATS: nc, Logger: log}
	if cfg.RedisURL != "" {
		rdb, err := cache.NewRedisClient(cfg.RedisURL, 0)
		if err != nil {
			return fmt.Errorf("redis_url: %w", err)
		}
		defer rdb.Close()
		pubCfg.Redis = rdb
	}
	publisher := cache.NewPublisher(pubCfg)
	defer publisher.Close()
	reader, err := cdc.New(cdc.Config{DSN: cfg.MySQLDSN, Invalidate: publisher.Publish, Logger: log}, nc)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = reader.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}
	defer reader.Stop()

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("cdc: listen %s (set --http): %w", cfg.HTTP, err)
	}
	srv := &http.Server{Handler: cdcHandler(nc, reader), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server")
		}
	}()
	log.Info().Str("http", ln.Addr().String()).Str("nats", cfg.NATSURL).Msg("laneim cdc is up")
	<-ctx.Done()
	log.Info().Msg("shutting down")
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	_ = srv.Shutdown(shutdownCtx)
	reader.Stop()
	_ = nc.Drain()
	return nil
}

// cdcHandler serves /metrics and /healthz: 200 while NATS is connected (a standby
// is healthy too), with whether this process holds the lock (leader) and reads
// (reading: it knows where from, so every change committed since is announced).
func cdcHandler(nc *nats.Conn, reader *cdc.CDC) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if !nc.IsConnected() {
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"nats": nc.IsConnected(), "leader": reader.Leader(), "reading": reader.Reading()})
	})
	return mux
}
