// Package devstack runs every laneIM role in one process on embedded defaults: an
// embedded nats-server with JetStream on file storage, SQLite for messages and
// metadata (metadata in MySQL when cfg.MySQLDSN is set, message history in ScyllaDB or
// Cassandra when cfg.CQLHosts is), logic, pusher and one or more gateways with their
// HTTP listeners (serving the browser demo of package web at /). It is `laneim dev`,
// and the stack the end-to-end tests and `laneim bench --embedded` run against, so all
// three exercise the same code paths as a cluster.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/cache"
	"github.com/laneim/laneim/cdc"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/embednats"
	"github.com/laneim/laneim/gateway"
	"github.com/laneim/laneim/logic"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/pusher"
	"github.com/laneim/laneim/roles"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
	"github.com/laneim/laneim/web"
)

// Stack is a running all-in-one laneIM.
type Stack struct {
	NATS *embednats.Server
	// Messages is the message log, Meta the rooms, members, read states and blocks:
	// both the SQLite file in the data dir, or Meta in MySQL with cfg.MySQLDSN and
	// Messages in the CQL store with cfg.CQLHosts.
	Messages store.MessageStore
	Meta     store.MetaStore
	// Cache is logic's metadata cache in front of Meta, with Redis as its second
	// level when cfg.RedisURL is set.
	Cache    *cache.Cache
	Logic    *logic.Logic
	Pusher   *pusher.Pusher
	Gateways []*gateway.Gateway
	// CDC reads the MySQL binlog when cfg.MySQLDSN is set; nil otherwise.
	CDC *cdc.CDC
	// Addrs are the gateways' HTTP listen addresses, in order.
	Addrs  []string
	Secret []byte
	// OperatorContext is the nats CLI context file of the operator credential, ""
	// without a NATS listener; ServerContext the server role's (the server API).
	OperatorContext string
	ServerContext   string
	// APIKey is the server API's key: the first of cfg.APIKeys, or the one generated
	// and kept in the data dir's api_key.
	APIKey string

	natsUsers map[string]embednats.User // by name: every role's credential and the operator's
	logic     *roles.Logic              // Logic, Cache and Redis (nil without cfg.RedisURL)
	sqlite    *store.SQLite             // the data dir's database, whatever it holds
	cdc       *roles.CDC                // CDC and its publisher; nil without cfg.MySQLDSN
	conns     []*nats.Conn
	nodes     []*nodes.Registration
	servers   []*http.Server
	log       zerolog.Logger
	unlock    func() // releases the data dir's lock; nil until taken
	closeOnce sync.Once
}

// Start starts the stack described by cfg (cfg.Data must be set) and returns once every
// gateway accepts connections. On failure everything started is stopped again.
func Start(ctx context.Context, cfg configs.Config, log zerolog.Logger) (_ *Stack, err error) {
	s := &Stack{log: log}
	defer func() {
		if err != nil {
			s.Close(context.Background())
		}
	}()
	if err := cfg.CheckDevListeners(); err != nil {
		return nil, err
	}
	if cfg.Data == "" {
		return nil, fmt.Errorf("data: dev needs a data directory")
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.unlock, err = lockDataDir(cfg.Data); err != nil {
		return nil, err
	}
	s.Secret = []byte(cfg.Secret)
	if len(s.Secret) == 0 {
		if s.Secret, err = auth.DevSecret(cfg.Data); err != nil {
			return nil, err
		}
	}
	if len(cfg.APIKeys) == 0 {
		key, err := auth.DevAPIKey(cfg.Data)
		if err != nil {
			return nil, err
		}
		cfg.APIKeys = []string{key}
	}
	s.APIKey = cfg.APIKeys[0]
	users, err := natsUsers(cfg.Data)
	if err != nil {
		return nil, err
	}
	s.natsUsers = make(map[string]embednats.User, len(users))
	for _, u := range users {
		s.natsUsers[u.Name] = u
	}
	s.NATS, err = embednats.Start(embednats.Options{
		Dir:    filepath.Join(cfg.Data, "nats"),
		Listen: cfg.NATSListenAddr(),
		Logger: log.With().Str("component", "nats").Logger(),
		Users:  users,
	})
	if err != nil {
		return nil, err
	}
	if url := s.NATS.ClientURL(); url != "" {
		if s.OperatorContext, err = writeOperatorContext(cfg.Data, url, s.natsUsers[subjects.RoleOperator].Password); err != nil {
			return nil, err
		}
		if s.ServerContext, err = writeServerContext(cfg.Data, url, s.ServerPassword()); err != nil {
			return nil, err
		}
	}
	sqlite, err := store.OpenSQLite(filepath.Join(cfg.Data, "laneim.db"), store.SQLiteOptions{Synchronous: cfg.Sync})
	if err != nil {
		return nil, err
	}
	s.sqlite = sqlite
	s.Messages, s.Meta = sqlite, sqlite
	if cfg.MySQLDSN != "" {
		mysql, err := store.OpenMySQL(ctx, cfg.MySQLDSN, store.MySQLOptions{Logger: log})
		if err != nil {
			return nil, err
		}
		s.Meta = mysql
	}
	if s.Messages, err = roles.OpenMessageStore(ctx, cfg, sqlite, log); err != nil {
		return nil, err
	}

	logicConn, err := s.connect("logic", subjects.RoleLogic)
	if err != nil {
		return nil, err
	}
	logicJS, err := jetstream.New(logicConn)
	if err != nil {
		return nil, err
	}
	if err := forgetPreviousRun(ctx, logicJS); err != nil {
		return nil, err
	}
	// Logic reads metadata through the cache, which announces each write after it
	// commits on logic's connection and drops what other nodes announce.
	s.logic, err = roles.StartLogic(ctx, cfg, logicConn, &roles.Stores{Messages: s.Messages, Meta: s.Meta},
		roles.LogicOptions{Secret: s.Secret, Logger: log.With().Str("role", "logic").Logger()})
	if err != nil {
		return nil, err
	}
	s.Logic, s.Cache = s.logic.Logic, s.logic.Cache

	if cfg.MySQLDSN != "" {
		if err := s.startCDC(ctx, cfg); err != nil {
			return nil, err
		}
	}

	pusherConn, err := s.connect("pusher", subjects.RolePusher)
	if err != nil {
		return nil, err
	}
	pusherCfg := roles.PusherConfig("", 1, log.With().Str("role", "pusher").Logger())
	pusherCfg.Notify = roles.NotifyConfig(cfg)
	s.Pusher, err = pusher.New(pusherCfg, pusherConn)
	if err != nil {
		return nil, err
	}
	if err := s.Pusher.Start(ctx); err != nil {
		return nil, fmt.Errorf("pusher: %w", err)
	}

	host, port, err := splitHostPort(cfg.HTTP)
	if err != nil {
		return nil, err
	}
	for i := range max(cfg.Gateways, 1) {
		// Each gateway has its own NATS connection and room subscriptions, as it
		// would on its own machine.
		nc, err := s.connect("gateway-"+strconv.Itoa(i), subjects.RoleGateway)
		if err != nil {
			return nil, err
		}
		// The status page lists the live nodes through logic's connection, which may
		// read the im_nodes bucket.
		gwCfg := roles.GatewayConfig(cfg, fmt.Sprintf("dev%d", i), s.Secret,
			func(ctx context.Context) ([]nodes.Info, error) { return nodes.List(ctx, logicJS) },
			log.With().Str("role", "gateway").Logger())
		gwCfg.Dev, gwCfg.DevTokenTTL, gwCfg.Web = true, cfg.TokenTTL, web.Handler()
		gw, err := gateway.New(gwCfg, nc)
		if err != nil {
			return nil, err
		}
		if err := gw.Start(ctx); err != nil {
			return nil, fmt.Errorf("gateway %d: %w", i, err)
		}
		s.Gateways = append(s.Gateways, gw)
		addr := net.JoinHostPort(host, "0")
		if port != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(port+i))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("gateway %d listen: %w", i, err)
		}
		srv := gw.NewHTTPServer()
		s.servers = append(s.servers, srv)
		s.Addrs = append(s.Addrs, ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("http server")
			}
		}()
	}
	if err := s.register(ctx, logicConn); err != nil {
		return nil, err
	}
	return s, nil
}

// register puts every role of the stack in the im_nodes bucket.
func (s *Stack) register(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	add := func(info nodes.Info, conns func() int) error {
		r, err := nodes.Register(ctx, js, info, nodes.Config{Connections: conns, Logger: s.log})
		if err != nil {
			return err
		}
		s.nodes = append(s.nodes, r)
		return nil
	}
	if err := add(nodes.Info{ID: host + "-logic", Role: "logic"}, nil); err != nil {
		return err
	}
	if err := add(nodes.Info{ID: host + "-pusher", Role: "pusher"}, nil); err != nil {
		return err
	}
	for i, gw := range s.Gateways {
		if err := add(nodes.Info{ID: gw.ID(), Role: "gateway", Address: s.Addrs[i]}, gw.Connections); err != nil {
			return err
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("http address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("http address %q: bad port", addr)
	}
	return host, port, nil
}

func (s *Stack) connect(name, role string) (*nats.Conn, error) {
	nc, err := s.Connect(role, nats.Name("laneim-"+name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	s.conns = append(s.conns, nc)
	return nc, nil
}

// ServerPassword is the password of the server role's NATS credential (user
// "server"), which may call the server API (subjects.ServerAPI) and nothing else.
func (s *Stack) ServerPassword() string { return s.natsUsers[subjects.RoleServer].Password }

// OperatorPassword is the password of the operator's NATS credential (user
// "operator", allowed everything), for tools such as the nats CLI.
func (s *Stack) OperatorPassword() string { return s.natsUsers[subjects.RoleOperator].Password }

// Connect opens an in-process NATS connection with role's credential
// (subjects.RoleGateway, ..., subjects.RoleOperator) and reply subjects under the
// role's inbox prefix. The caller closes it.
func (s *Stack) Connect(role string, opts ...nats.Option) (*nats.Conn, error) {
	u, ok := s.natsUsers[role]
	if !ok {
		return nil, fmt.Errorf("no NATS credential for role %q", role)
	}
	all := append([]nats.Option{nats.UserInfo(u.Name, u.Password), nats.CustomInboxPrefix(subjects.InboxPrefixT(role))}, opts...)
	return s.NATS.Connect(all...)
}

// URL is gateway i's base URL, http://host:port.
func (s *Stack) URL(i int) string { return "http://" + s.Addrs[i] }

// Close drains the stack: gateways close their connections with 1001 and stop
// listening, then pusher, logic, NATS and the store stop, in that order.
func (s *Stack) Close(ctx context.Context) {
	s.closeOnce.Do(func() { s.close(ctx) })
}

func (s *Stack) close(ctx context.Context) {
	for _, srv := range s.servers {
		srv.SetKeepAlivesEnabled(false)
	}
	for _, r := range s.nodes {
		r.Stop()
	}
	// HTTP first: no new connections, and requests in flight (a POST waiting for its
	// ack) finish while logic still runs. WebSockets are hijacked, so they are not
	// waited for here: the gateways close them next.
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
	for _, gw := range s.Gateways {
		gw.Shutdown(ctx)
	}
	if s.cdc != nil {
		s.cdc.Stop()
	}
	if s.Pusher != nil {
		s.Pusher.Stop()
	}
	if s.logic != nil {
		s.logic.Stop() // logic, the cache and Redis
	}
	for _, nc := range s.conns {
		_ = nc.Drain()
	}
	for _, nc := range s.conns {
		for nc.IsDraining() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if s.NATS != nil {
		s.NATS.Shutdown()
	}
	// Each store once: the SQLite file may hold both, or neither once MySQL and CQL
	// hold them.
	var stores []interface{ Close() error }
	if s.Meta != nil {
		stores = append(stores, s.Meta)
	}
	if s.Messages != nil {
		stores = append(stores, s.Messages)
	}
	if s.sqlite != nil {
		stores = append(stores, s.sqlite)
	}
	closed := map[any]bool{}
	for _, st := range stores {
		if closed[st] {
			continue
		}
		closed[st] = true
		if err := st.Close(); err != nil {
			s.log.Warn().Err(err).Msg("close store")
		}
	}
	if s.unlock != nil {
		s.unlock()
	}
}

// forgetPreviousRun clears what a previous process on this data dir left in the
// partition groups: its members' keys, which would keep a share of the partitions
// for their TTL, and its consumers' pins, which would hold them until the pinned TTL.
// The data-dir lock says that process is gone, so after a crash the restarted stack
// consumes what was left in IM_IN and IM_OUT at once instead of seconds later.
func forgetPreviousRun(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, subjects.BucketPartitions)
	if err == nil {
		keys, err := kv.Keys(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return fmt.Errorf("partition groups: %w", err)
		}
		for _, key := range keys {
			if err := kv.Delete(ctx, key); err != nil {
				return fmt.Errorf("partition groups: %w", err)
			}
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("partition groups: %w", err)
	}
	for _, name := range []string{subjects.StreamIn, subjects.StreamOut} {
		stream, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		for cons := range stream.ConsumerNames(ctx).Name() {
			// A consumer nobody is pinned to answers an error: nothing to undo.
			_ = stream.UnpinConsumer(ctx, cons, subjects.PriorityGroup)
		}
	}
	return nil
}
