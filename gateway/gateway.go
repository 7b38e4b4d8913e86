// Package gateway is laneIM's edge: WebSocket and HTTP for clients. It authenticates
// connections, keeps per-connection write queues, subscribes to a room's NATS subjects
// while local connections need them, writes the pre-encoded frames pusher publishes to
// every local subscriber unchanged, fills gaps and serves `since` catch-up from logic's
// history, and turns sends into IM_IN publications whose acks logic sends back; it
// repairs connections' room sets from logic when membership events may have been
// lost (resync.go). Beside the message path, gateways tell each other who is online
// (online.go), answer and announce who of a room is (presence.go, presencerooms.go),
// relay typing (typing.go), and tell the offline hook's notifier who of a message's
// mentioned users is looking at its room (active.go).
//
// Lock order: conn.memberMu, then room.mu, then presence.mu (which onlineSet shares),
// then conn.writeMu. A hub shard's mu, a connection's historyBudget.mu and resync.mu
// are leaves, held only around their own fields and never while taking another lock.
// users.mu is held only around NATS subscription calls.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/schema"
)

// Config configures a gateway. The zero value means the defaults.
type Config struct {
	// ID names this gateway on NATS (its ack subject). Default: random.
	ID string
	// Secret verifies client JWTs (HS256). Required.
	Secret []byte
	// Dev serves POST /v1/dev/token.
	Dev bool
	// MaxFrameBytes caps one client frame. Default 65536.
	MaxFrameBytes int
	// MaxBodyBytes caps one message body. Default 4096.
	MaxBodyBytes int
	// Heartbeat is the interval clients are told to heartbeat at; two missed
	// intervals close the connection with 4002. Default 30s.
	Heartbeat time.Duration
	// IdentifyTimeout is how long a new connection has to identify. Default 10s.
	IdentifyTimeout time.Duration
	// MaxQueueBytes caps a connection's outgoing queue; past it the connection is
	// closed with 4008. Default 8 MiB.
	MaxQueueBytes int
	// WriteTimeout bounds one write to a client; a client that takes nothing for
	// that long is closed as too slow. Default 10s.
	WriteTimeout time.Duration
	// SocketSendBuffer is a client socket's kernel send buffer. It bounds what a
	// client that stops reading holds in the kernel besides MaxQueueBytes: left to
	// autotuning it grows to megabytes, the writes keep succeeding, and the queue cap
	// never applies. Default 128 KiB (the kernel doubles it).
	SocketSendBuffer int
	// RequestTimeout bounds a request to logic. Default 5s.
	RequestTimeout time.Duration
	// SendTimeout is how long a send waits for its ack before failing with
	// unavailable (the client retries with the same nonce). Default 10s.
	SendTimeout time.Duration
	// RateLimit is the frames a second a connection may send (heartbeats aside),
	// and the HTTP requests a second of one user (server API requests aside), with
	// bursts of twice that. Zero or less: no limit.
	RateLimit float64
	// Workers deliver room frames; a room always goes to the same worker, which keeps
	// its frames in order. Default 8.
	Workers int
	// DevTokenTTL is the lifetime of tokens POST /v1/dev/token signs. Default 24h.
	DevTokenTTL time.Duration
	// HTTPReadTimeout bounds reading one HTTP request, body included, so that a
	// client trickling a body cannot hold a connection and its goroutine (slowloris).
	// WebSocket connections set their own deadlines once upgraded. Default 10s.
	HTTPReadTimeout time.Duration
	// HTTPIdleTimeout closes a keep-alive connection that sends no request for that
	// long. Default 60s.
	HTTPIdleTimeout time.Duration
	// MaxHeaderBytes caps an HTTP request's header. Default 32 KiB: a token and a
	// browser's usual headers take 2 to 4.
	MaxHeaderBytes int
	// APIKeys authenticate the server API over HTTP ("Authorization: Bearer <key>",
	// docs/protocol.md); with none it is served over NATS only (subjects.ServerAPI).
	APIKeys []string
	// OperatorKey lets an operator read GET /v1/status outside dev (Bearer
	// OperatorKey); empty, the route is not served outside dev.
	OperatorKey string
	// Nodes lists the live nodes for GET /v1/status and GET /v1/gateways; nil lists
	// none.
	Nodes func(ctx context.Context) ([]nodes.Info, error)
	// Web serves the browser demo at / in dev; nil serves nothing there.
	Web http.Handler
	// MaxRoomsPerUser is logic's cap on one user's rooms: identify registers a
	// connection in at most that many, reading the list in pages. Default 10000.
	MaxRoomsPerUser int
	// MaxConnsPerUser caps one user's connections on this gateway; one more is
	// closed with 4030 after identify. Each costs a read goroutine, a queue of up to
	// MaxQueueBytes, and a registration in every room of the user. Default 64.
	MaxConnsPerUser int
	// MaxSubscriptionsPerConn caps the rooms one connection is subscribed to (gets
	// msgs of); a subscribe past it is refused with forbidden. Default 256.
	MaxSubscriptionsPerConn int
	// TicksInterval is how often a connection gets a ticks frame at most: the newest
	// seqs of its passive rooms that changed. Default 1s.
	TicksInterval time.Duration
	// PresenceHeartbeat is how often the gateway tells the others it is alive (with
	// its online users' last seq) when it has no change to tell. Default 1s.
	PresenceHeartbeat time.Duration
	// PresenceTimeout is how long a gateway unheard of counts as alive: past it, its
	// users go offline. Default 4s.
	PresenceTimeout time.Duration
	// PresenceInterval is how often a room's presence subscribers get the changes,
	// at most. Default 1s.
	PresenceInterval time.Duration
	// TypingInterval is how often one connection's typing in a room is relayed, at
	// most. Default 3s.
	TypingInterval time.Duration
	Logger         zerolog.Logger
}

func (c *Config) defaults() {
	if c.ID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.ID = "gw" + hex.EncodeToString(b[:])
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = schema.DefaultMaxFrameBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = schema.DefaultMaxBodyBytes
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.IdentifyTimeout <= 0 {
		c.IdentifyTimeout = 10 * time.Second
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = 8 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SocketSendBuffer <= 0 {
		c.SocketSendBuffer = 128 << 10
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.DevTokenTTL <= 0 {
		c.DevTokenTTL = 24 * time.Hour
	}
	if c.HTTPReadTimeout <= 0 {
		c.HTTPReadTimeout = 10 * time.Second
	}
	if c.HTTPIdleTimeout <= 0 {
		c.HTTPIdleTimeout = 60 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	if c.MaxRoomsPerUser <= 0 {
		c.MaxRoomsPerUser = 10000
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = 64
	}
	if c.MaxSubscriptionsPerConn <= 0 {
		c.MaxSubscriptionsPerConn = 256
	}
	if c.TicksInterval <= 0 {
		c.TicksInterval = time.Second
	}
	if c.PresenceHeartbeat <= 0 {
		c.PresenceHeartbeat = time.Second
	}
	if c.PresenceTimeout <= 0 {
		c.PresenceTimeout = 4 * time.Second
	}
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = time.Second
	}
	if c.TypingInterval <= 0 {
		c.TypingInterval = 3 * time.Second
	}
}

// Gateway is one gateway node.
type Gateway struct {
	cfg      Config              // set once at construction
	nc       *nats.Conn          // set once at construction
	js       jetstream.JetStream // set once at construction
	upgrader websocket.Upgrader  // set once at construction
	hub      *hub                // room registry
	users    *users              // user registry (user event subscriptions)
	resync   *resync             // repairs of connections' rooms after lost events
	sends    *sends              // sends waiting for their ack
	ticker   *ticker             // flushes connections' coalesced ticks
	presence *presence           // who is online, presence events, typing
	active   *active             // answers the offline hook's question of who is active
	httpRate *userLimits         // per-user HTTP rate limits
	// serverTokens mints the server tokens of server API requests. Set once at
	// construction.
	serverTokens *serverTokens
	// serverAPI serves the server API over NATS; nil until Start. Set once by Start.
	serverAPI micro.Service
	idents    *userLimits // per-user identifies
	rates     statusRates // GET /v1/status's counter samples
	// gatewayList caches GET /v1/gateways for a second.
	gatewayList gatewaysCache
	started     time.Time        // set once at construction
	workers     []chan *nats.Msg // set once at construction; room msgs and ticks, by room hash
	control     chan *nats.Msg   // set once at construction; member, read and kick events
	log         zerolog.Logger   // set once at construction
	// hotLog rate-limits warnings on delivery paths, which could otherwise log once a
	// frame. Set once at construction.
	hotLog *logging.RateLimited

	mu       sync.Mutex
	conns    map[*conn]struct{} // guarded by mu
	draining bool               // guarded by mu

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// workerQueue is each delivery worker's channel size: NATS drops messages for a full
// channel (a slow consumer), which the gap fill then repairs from history, and the
// next tick supersedes a lost one.
const workerQueue = 16384

// controlQueue is the channel size of membership, read and kick events. They are few,
// and they never wait behind room traffic on one channel; a lost membership event is
// repaired from logic (resync), a lost read or kick is not.
const controlQueue = 1 << 16

// New returns a gateway over nc. Call Start before serving. The gateway takes over
// nc's error and reconnect handlers.
func New(cfg Config, nc *nats.Conn) (*Gateway, error) {
	cfg.defaults()
	if len(cfg.Secret) == 0 {
		return nil, fmt.Errorf("gateway: a JWT secret is required")
	}
	g := &Gateway{
		cfg:     cfg,
		nc:      nc,
		log:     cfg.Logger.With().Str("gateway", cfg.ID).Logger(),
		hotLog:  logging.NewRateLimited(time.Second, 5),
		conns:   make(map[*conn]struct{}),
		started: time.Now(),
	}
	g.upgrader = websocket.Upgrader{
		// The connection's frameReader reads the socket, not gorilla: its buffer
		// goes unused, so it gets the smallest size gorilla allows rather than
		// net/http's 4 KiB one.
		ReadBufferSize: 1,
		// The write loop writes frames itself; gorilla's buffer serves only the
		// final close frame, so it comes from a pool instead of every connection.
		WriteBufferPool: &sync.Pool{},
		// Clients are browsers on other origins and native apps; authentication is
		// the token in identify, not cookies, so any origin may connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	g.hub = newHub(g)
	g.ticker = newTicker(cfg.TicksInterval)
	g.httpRate = newUserLimits(cfg.RateLimit, int(2*cfg.RateLimit))
	g.serverTokens = newServerTokens(cfg.Secret)
	g.idents = newUserLimits(0, 0)
	if cfg.RateLimit > 0 {
		g.idents = newUserLimits(identifyRate, identifyBurst)
	}
	g.users = newUsers(g)
	g.resync = newResync(g)
	g.presence = newPresence(g)
	g.active = &active{gw: g}
	var err error
	g.sends, err = newSends(g)
	if err != nil {
		return nil, err
	}
	g.workers = make([]chan *nats.Msg, cfg.Workers)
	for i := range g.workers {
		g.workers[i] = make(chan *nats.Msg, workerQueue)
	}
	g.control = make(chan *nats.Msg, controlQueue)
	// A full channel drops messages (nats.go reports a slow consumer). Frames are
	// repaired by gap fill and ticks superseded; lost events, and whatever was
	// published during a reconnect, by re-reading membership from logic (resync).
	slowLog := logging.NewRateLimited(10*time.Second, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			metricNATSSlow.Inc()
			if sub != nil && !g.presence.onSlowConsumer(sub) {
				g.onSlowConsumer(sub.Subject)
			}
		}
		if slowLog.Allow() {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			g.log.Warn().Err(err).Str("subject", subject).Msg("NATS async error")
		}
	})
	nc.SetReconnectHandler(func(*nats.Conn) { g.onReconnect() })
	return g, nil
}

// hotWarn starts a warning on a delivery path, where a bad input or a failing
// dependency could log once a frame: a few a second pass, with the number held back
// since; over that it returns nil, on which zerolog's methods do nothing.
func (g *Gateway) hotWarn() *zerolog.Event {
	if !g.hotLog.Allow() {
		return nil
	}
	return g.log.Warn().Int64("suppressed", g.hotLog.Suppressed())
}

// ID is the gateway's id.
func (g *Gateway) ID() string { return g.cfg.ID }

// Start subscribes to the gateway's ack subject and starts the delivery workers.
func (g *Gateway) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	if err := g.sends.start(runCtx); err != nil {
		cancel()
		return err
	}
	for _, ch := range append([]chan *nats.Msg{g.control}, g.workers...) {
		g.wg.Go(func() { g.deliverLoop(runCtx, ch) })
	}
	g.wg.Go(func() { g.resync.run(runCtx) })
	g.wg.Go(func() { g.ticker.run(runCtx) })
	if err := g.presence.start(ctx, runCtx, &g.wg); err != nil {
		cancel()
		return fmt.Errorf("presence: %w", err)
	}
	if err := g.active.start(); err != nil {
		cancel()
		return fmt.Errorf("presence: %w", err)
	}
	if err := g.startServerAPI(runCtx); err != nil {
		cancel()
		return fmt.Errorf("server API: %w", err)
	}
	return g.nc.FlushWithContext(ctx)
}

// Connections returns the number of open client connections.
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Shutdown closes every client connection with 1001 and stops the workers. The HTTP
// server in front of Handler is the caller's to shut down.
func (g *Gateway) Shutdown(ctx context.Context) {
	if g.serverAPI != nil {
		// Other gateways take the server API's requests from now on.
		_ = g.serverAPI.Stop()
	}
	g.mu.Lock()
	g.draining = true
	conns := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.close(schema.CloseGoingAway, "server shutting down")
	}
	for _, c := range conns {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	g.active.stop()
	if g.stop != nil {
		g.stop()
	}
	g.sends.stop()
	g.wg.Wait()
	if g.stop != nil {
		// Every connection is closed and presence's loop has stopped: the other
		// gateways drop this one's users now rather than at the presence timeout.
		g.presence.online.stop()
	}
}

func (g *Gateway) addConn(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.conns[c] = struct{}{}
	metricConnections.Inc()
	return true
}

func (g *Gateway) removeConn(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.conns[c]; ok {
		delete(g.conns, c)
		metricConnections.Dec()
	}
}

// worker picks the delivery worker of a room.
func (g *Gateway) worker(room string) chan *nats.Msg {
	return g.workers[fnv32(room)%uint32(len(g.workers))]
}
