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
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/roles"
)

// roleFlags are the flags every role command lists in its usage.
var roleFlags = []string{"config", "nats-url", "http", "data", "node-id", "replicas", "log-level", "log-format"}

// roleEnv is the environment part of every role command's usage.
var roleEnv = fmt.Sprintf(`Configured by the environment (every key of configs/dev.yaml is also LANEIM_<KEY>),
the flags below, or a YAML file given with --config (configs/cluster.yaml is a sample):
  %-22s NATS servers, comma-separated (required)
  %-22s a .creds file; or %s and %s; or %s
                         (with none, the role connects as is and warns)
  %-22s replicas of the streams and buckets it creates (default 3 on a
                         clustered NATS server, else 1)
  %-22s where it keeps its node id (default: none, a new id each start)
  %-22s its node id (default: derived, kept in the data dir)
`, configs.EnvName("nats_url"), configs.EnvName("nats_creds"), configs.EnvName("nats_user"),
	configs.EnvName("nats_password"), configs.EnvName("nats_token"), configs.EnvName("replicas"),
	configs.EnvName("data"), configs.EnvName("node_id"))

// roleProcess is what every role command sets up around its role: configuration,
// logging, signals, its node id, its NATS connection, its entry in im_nodes and its
// HTTP listener, and the shutdown of all of it.
type roleProcess struct {
	role     string
	cfg      configs.Config
	log      zerolog.Logger
	id       string
	nc       *nats.Conn
	js       jetstream.JetStream
	replicas int
	// ctx ends at SIGINT or SIGTERM.
	ctx     context.Context
	cleanup []func() // run in reverse order by close
	reg     *nodes.Registration
	srv     *http.Server
}

// defaultsFor are a role's defaults: Default() without a data dir, and without an
// HTTP listener except for gateways.
func defaultsFor(role string) configs.Config {
	cfg := configs.Default()
	cfg.Data = ""
	if role != "gateway" {
		cfg.HTTP = ""
	}
	return cfg
}

// startRole loads the configuration of `laneim ROLE`, checks it with check (before
// anything waits), starts logging, takes the node id and connects to NATS, waiting for
// it. fs has the role's usage set.
func startRole(role string, fs *flag.FlagSet, args []string, check func(configs.Config) error) (*roleProcess, error) {
	cfg, err := configs.LoadWith(fs, args, defaultsFor(role))
	if err != nil {
		return nil, err
	}
	if cfg.NATSURL == "" {
		return nil, fmt.Errorf("%s: no NATS to connect to: set %s or --nats-url", role, configs.EnvName("nats_url"))
	}
	if check != nil {
		if err := check(cfg); err != nil {
			return nil, err
		}
	}
	p := &roleProcess{role: role, cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	log, closer, err := logging.New(cfg.Log, false)
	if err != nil {
		return nil, err
	}
	p.cleanup = append(p.cleanup, func() { _ = closer.Close() })
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	p.ctx = ctx
	p.cleanup = append(p.cleanup, stop)
	id, release, err := roles.NodeID(cfg, role)
	if err != nil {
		return nil, err
	}
	p.cleanup = append(p.cleanup, release)
	p.id = id
	p.log = log.With().Str("role", role).Str("node", id).Logger()
	p.log.Info().Interface("config", cfg.Redacted()).Msg("starting")
	if p.nc, err = roles.Connect(ctx, cfg, role, role+"-"+id, p.log); err != nil {
		return nil, err
	}
	nc := p.nc
	p.cleanup = append(p.cleanup, func() { nc.Close() })
	if p.js, err = jetstream.New(nc); err != nil {
		return nil, err
	}
	p.replicas = roles.Replicas(cfg, nc)
	ok = true
	return p, nil
}

// register puts the node in im_nodes once the bucket can be had (JetStream up, the
// bucket created by whichever node came first).
func (p *roleProcess) register(address string, connections func() int) error {
	return roles.WaitFor(p.ctx, p.log, "the im_nodes bucket", func(ctx context.Context) error {
		r, err := nodes.Register(ctx, p.js, nodes.Info{ID: p.id, Role: p.role, Address: address},
			nodes.Config{Connections: connections, Replicas: p.replicas, Logger: p.log})
		if err == nil {
			p.reg = r
		}
		return err
	})
}

// serve serves srv on the configured HTTP address, if any.
func (p *roleProcess) serve(srv *http.Server) (net.Addr, error) {
	if p.cfg.HTTP == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", p.cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", p.role, p.cfg.HTTP, err)
	}
	p.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error().Err(err).Msg("http server")
		}
	}()
	return ln.Addr(), nil
}

// healthServer serves /metrics, and /healthz: 200 while NATS is connected, with the
// node's id, the connected server and what status adds.
func (p *roleProcess) healthServer(status func() map[string]any) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		body := map[string]any{"role": p.role, "node": p.id, "nats": p.nc.IsConnected(), "server": p.nc.ConnectedServerName()}
		if status != nil {
			for k, v := range status() {
				body[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if !p.nc.IsConnected() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}

// wait blocks until SIGINT or SIGTERM, then withdraws the node: its im_nodes entry
// goes (no client is sent to it any more) and its HTTP listener stops taking
// requests, letting those in flight finish. A second signal exits at once.
func (p *roleProcess) wait() {
	<-p.ctx.Done()
	p.log.Info().Msg("shutting down (a second signal forces the exit)")
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		os.Exit(1)
	}()
	if p.reg != nil {
		p.reg.Stop()
		p.reg = nil
	}
	if p.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = p.srv.Shutdown(ctx)
		cancel()
	}
}

// close drains the NATS connection (what the role published goes out) and releases
// the rest, in reverse order of acquisition.
func (p *roleProcess) close() {
	if p.reg != nil {
		p.reg.Stop()
	}
	if p.nc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.nc.Drain()
		for p.nc.IsDraining() && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}
	for i := len(p.cleanup) - 1; i >= 0; i-- {
		p.cleanup[i]()
	}
	p.log.Info().Msg("stopped")
}

// needSecret checks that a gateway or logic has the JWT secret.
func needSecret(role string) func(configs.Config) error {
	return func(cfg configs.Config) error {
		if cfg.Secret == "" {
			return fmt.Errorf("%s: no JWT secret: set %s (32 bytes or more, the same on every gateway and logic node)",
				role, configs.EnvName("secret"))
		}
		return nil
	}
}
