package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/gateway"
	"github.com/laneim/laneim/logic"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/pusher"
	"github.com/laneim/laneim/roles"
	"github.com/laneim/laneim/subjects"
)

// drainTimeout bounds a role's graceful stop after SIGTERM.
const drainTimeout = 15 * time.Second

func roleFlagSet(role, what string, extra ...string) *flag.FlagSet {
	fs := flag.NewFlagSet("laneim "+role, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: laneim %s [flags]\n\n%s\n\n%s\n", role, what, roleEnv)
		printFlags(fs, append(roleFlags, extra...)...)
	}
	return fs
}

// runGateway runs `laneim gateway`: the WebSocket and HTTP edge on http, advertised
// in im_nodes (GET /v1/gateways) as public_url, until SIGINT or SIGTERM, then closes
// its clients' connections with 1001 (they move to another gateway).
func runGateway(args []string) error {
	fs := roleFlagSet(subjects.RoleGateway, fmt.Sprintf(
		"The client edge: WebSocket and HTTP on --http (%s), advertised to clients by\nGET /v1/gateways as --public-url (%s; default http:// and the listen address).\nNeeds %s.",
		configs.EnvName("http"), configs.EnvName("public_url"), configs.EnvName("secret")), "public-url")
	p, err := startRole(subjects.RoleGateway, fs, args, func(cfg configs.Config) error {
		if cfg.HTTP == "" {
			return fmt.Errorf("gateway: no listener: set %s or --http", configs.EnvName("http"))
		}
		return needSecret(subjects.RoleGateway)(cfg)
	})
	if err != nil {
		return err
	}
	defer p.close()
	gw, err := gateway.New(roles.GatewayConfig(p.cfg, p.id, []byte(p.cfg.Secret),
		func(ctx context.Context) ([]nodes.Info, error) { return nodes.List(ctx, p.js) }, p.log), p.nc)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	err = gw.Start(startCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	addr, err := p.serve(gw.NewHTTPServer())
	if err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	public := p.cfg.PublicURL
	if public == "" {
		public = "http://" + advertised(addr.String())
	}
	if err := p.register(strings.TrimRight(public, "/"), gw.Connections); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	p.log.Info().Str("http", addr.String()).Str("public_url", public).Msg("laneim gateway is up")
	p.wait()
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	gw.Shutdown(ctx)
	return nil
}

// advertised is a listen address as others can dial it: an unspecified host (all
// interfaces) becomes the host name.
func advertised(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// runLogic runs `laneim logic`: it creates the streams if it comes first, consumes its
// share of the IM_IN partitions and serves logic's services in their queue group,
// until SIGINT or SIGTERM, then hands its partitions over.
func runLogic(args []string) error {
	fs := roleFlagSet(subjects.RoleLogic, fmt.Sprintf(
		"Stores sends, serves history and membership. Needs %s, and shared stores: MySQL\n(%s) and the CQL store (%s), unless --single-logic lets this one keep\nits data in SQLite in its data dir. Redis (%s) is the shared cache.",
		configs.EnvName("secret"), configs.EnvName("mysql_dsn"), configs.EnvName("cql_hosts"), configs.EnvName("redis_url")),
		"single-logic", "partitions")
	p, err := startRole(subjects.RoleLogic, fs, args, checkLogic)
	if err != nil {
		return err
	}
	defer p.close()
	if !roles.Shared(p.cfg) {
		release, err := roles.Lock(filepath.Join(p.cfg.Data, devstack.LockFile))
		if err != nil {
			return fmt.Errorf("logic: %w", err)
		}
		p.cleanup = append(p.cleanup, release)
		p.log.Warn().Msg("single logic: data in SQLite in the data dir, which no other logic node sees")
	}
	stores, err := roles.OpenStores(p.ctx, p.cfg, p.log)
	if err != nil {
		return err
	}
	p.cleanup = append(p.cleanup, func() { stores.Close(p.log) })
	// The streams first, with a wait: a NATS cluster that has just started has no
	// JetStream meta leader, and R3 streams need three servers up.
	streams := logic.StreamsConfig{Partitions: p.cfg.Partitions, DedupeWindow: p.cfg.DedupeWindow, Replicas: p.replicas}
	err = roles.WaitFor(p.ctx, p.log, fmt.Sprintf("JetStream to create or open the streams (R%d)", p.replicas), func(ctx context.Context) error {
		_, err := logic.EnsureStreams(ctx, p.js, streams)
		return err
	})
	if err != nil {
		return err
	}
	var node *roles.Logic
	err = roles.WaitForEach(p.ctx, p.log, "logic to start", 10*time.Second, func(ctx context.Context) error {
		node, err = roles.StartLogic(ctx, p.cfg, p.nc, stores, roles.LogicOptions{Secret: []byte(p.cfg.Secret), Node: p.id, Replicas: p.replicas, Logger: p.log})
		return err
	})
	if err != nil {
		return err
	}
	p.cleanup = append(p.cleanup, node.Stop)
	if _, err := p.serve(p.healthServer(func() map[string]any {
		return map[string]any{"partitions": node.Logic.Partitions()}
	})); err != nil {
		return err
	}
	if err := p.register("", nil); err != nil {
		return err
	}
	p.log.Info().Int("replicas", p.replicas).Msg("laneim logic is up")
	p.wait()
	// Its services leave the queue group and its partitions go to the other nodes;
	// batches in flight are stored and acked first.
	node.Stop()
	return nil
}

// checkLogic refuses a logic node without the secret, or whose data no other logic
// node would see, unless single_logic says it is the only one.
func checkLogic(cfg configs.Config) error {
	if err := needSecret(subjects.RoleLogic)(cfg); err != nil {
		return err
	}
	if roles.Shared(cfg) {
		return nil
	}
	if !cfg.SingleLogic {
		return fmt.Errorf("logic: messages and metadata must be in stores every logic node shares: set %s and %s, "+
			"or pass --single-logic (%s=true) to run this one logic node on SQLite in its data dir",
			configs.EnvName("mysql_dsn"), configs.EnvName("cql_hosts"), configs.EnvName("single_logic"))
	}
	if cfg.Data == "" {
		return fmt.Errorf("logic: --single-logic keeps its SQLite file in the data dir: set %s or --data", configs.EnvName("data"))
	}
	return os.MkdirAll(cfg.Data, 0o755)
}

// runPusher runs `laneim pusher`: it waits for the streams, consumes its share of the
// IM_OUT partitions, until SIGINT or SIGTERM, then hands them over.
func runPusher(args []string) error {
	fs := roleFlagSet(subjects.RolePusher, fmt.Sprintf("Publishes stored messages to the rooms' subjects, for every gateway, and runs the\noffline hook's notifier (IM_NOTIFY; POSTs to %s when set). Waits for\nthe streams a logic node creates.", configs.EnvName("offline_webhook_url")))
	p, err := startRole(subjects.RolePusher, fs, args, nil)
	if err != nil {
		return err
	}
	defer p.close()
	err = roles.WaitFor(p.ctx, p.log, "the streams (created by the first logic node)", func(ctx context.Context) error {
		_, err := p.js.Stream(ctx, subjects.StreamOut)
		return err
	})
	if err != nil {
		return err
	}
	pusherCfg := roles.PusherConfig(p.id, p.replicas, p.log)
	pusherCfg.Notify = roles.NotifyConfig(p.cfg)
	ps, err := pusher.New(pusherCfg, p.nc)
	if err != nil {
		return err
	}
	err = roles.WaitForEach(p.ctx, p.log, "pusher to start", 10*time.Second, func(ctx context.Context) error { return ps.Start(ctx) })
	if err != nil {
		return err
	}
	p.cleanup = append(p.cleanup, ps.Stop)
	if _, err := p.serve(p.healthServer(func() map[string]any {
		return map[string]any{"partitions": ps.Partitions()}
	})); err != nil {
		return err
	}
	if err := p.register("", nil); err != nil {
		return err
	}
	p.log.Info().Int("replicas", p.replicas).Msg("laneim pusher is up")
	p.wait()
	ps.Stop()
	return nil
}
