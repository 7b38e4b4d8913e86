package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/client"
	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
	"github.com/laneim/laneim/logging"
	"github.com/laneim/laneim/schema"
)

// tokenTTL outlives any bench run.
const tokenTTL = 24 * time.Hour

// target is the laneIM under load: gateways reachable over loopback, and how to get
// tokens for them.
type target struct {
	baseURLs []string // http://127.0.0.1:port, one per gateway
	wsURLs   []string // ws://127.0.0.1:port/v1/ws, same order
	secret   []byte   // signs tokens locally; nil: ask POST /v1/dev/token
	http     *http.Client

	stack   *devstack.Stack // the embedded stack, or nil
	dataDir string          // the embedded stack's temporary data dir

	tokenMu sync.Mutex
	tokens  map[string]string // guarded by tokenMu: dev tokens already fetched
}

func newTarget(baseURLs []string, secret []byte) (*target, error) {
	t := &target{secret: secret, tokens: make(map[string]string)}
	for _, raw := range baseURLs {
		base, err := loopbackURL(raw)
		if err != nil {
			return nil, err
		}
		ws, err := client.WSURL(base)
		if err != nil {
			return nil, err
		}
		t.baseURLs = append(t.baseURLs, base)
		t.wsURLs = append(t.wsURLs, ws)
	}
	if len(t.baseURLs) == 0 {
		return nil, errors.New("no target: give --url (repeatable) or --embedded")
	}
	t.http = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			// Setup runs many requests at once; without idle connections to reuse,
			// each would spend an ephemeral port in TIME_WAIT.
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	return t, nil
}

// loopbackURL checks that raw is an http URL of this machine (127.0.0.0/8 or
// localhost) and returns it as http://127.x.y.z:port. The bench generates load heavy
// enough to hurt a shared server, so it refuses anything else.
func loopbackURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "ws" {
		return "", fmt.Errorf("url %q: scheme must be http (the bench speaks plain WebSocket over loopback)", raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("url %q: laneim bench only runs against this machine (127.0.0.0/8 or localhost); it generates enough load to hurt a shared server", raw)
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// startEmbedded starts a devstack with gateways gateways in a temporary data dir:
// rate limits off unless rateLimited (abusive clients), no NATS listener, warnings
// only. Other settings come from the
// LANEIM_* environment as for laneim dev.
func startEmbedded(ctx context.Context, gateways int, rateLimited bool) (*target, error) {
	dir, err := os.MkdirTemp("", "laneim-bench-")
	if err != nil {
		return nil, err
	}
	// Defaults, then LANEIM_CONFIG and LANEIM_* (LANEIM_PARTITIONS, LANEIM_SYNC,
	// LANEIM_MAX_QUEUE_BYTES... for experiments), then what the bench needs.
	cfg, err := configs.Load(flag.NewFlagSet("embedded", flag.ContinueOnError), nil)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded stack configuration: %w", err)
	}
	cfg.Data = dir
	cfg.HTTP = "127.0.0.1:0"
	cfg.Gateways = gateways
	if !rateLimited {
		cfg.RateLimit = 0
	}
	cfg.NATSListen = "none"
	cfg.Log.Level = "warn"
	if err := cfg.Validate(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	log, _, err := logging.New(cfg.Log, true)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stack, err := devstack.Start(startCtx, cfg, log.With().Str("in", "bench-embedded").Logger().Level(zerolog.WarnLevel))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded stack: %w", err)
	}
	urls := make([]string, len(stack.Addrs))
	for i := range stack.Addrs {
		urls[i] = stack.URL(i)
	}
	t, err := newTarget(urls, stack.Secret)
	if err != nil {
		stack.Close(context.Background())
		_ = os.RemoveAll(dir)
		return nil, err
	}
	t.stack, t.dataDir = stack, dir
	return t, nil
}

// close stops the embedded stack, if any, and removes its data.
func (t *target) close() {
	t.http.CloseIdleConnections()
	if t.stack == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.stack.Close(ctx)
	_ = os.RemoveAll(t.dataDir)
}

// token returns a token for user: signed locally with the secret, or fetched from the
// dev-mode server once and remembered.
func (t *target) token(ctx context.Context, user string) (string, error) {
	if t.secret != nil {
		return auth.Sign(t.secret, user, tokenTTL)
	}
	t.tokenMu.Lock()
	tok, ok := t.tokens[user]
	t.tokenMu.Unlock()
	if ok {
		return tok, nil
	}
	// client.DevToken would use http.DefaultClient, which keeps 2 idle connections:
	// 10,000 tokens would leave thousands of ports in TIME_WAIT.
	var answer struct {
		Token string `json:"token"`
	}
	h := &client.HTTP{Base: t.baseURLs[0], Client: t.http}
	err := h.Do(ctx, http.MethodPost, "/v1/dev/token", map[string]string{"user": user}, &answer)
	tok = answer.Token
	if err == nil && tok == "" {
		err = errors.New("empty answer")
	}
	if err != nil {
		if errors.Is(err, schema.ErrNotFound) {
			return "", fmt.Errorf("dev token for %s: the server is not in dev mode; pass its secret with --secret (or LANEIM_SECRET): %w", user, err)
		}
		return "", fmt.Errorf("dev token for %s: %w", user, err)
	}
	t.tokenMu.Lock()
	t.tokens[user] = tok
	t.tokenMu.Unlock()
	return tok, nil
}

// do calls the HTTP API of gateway gw as user.
func (t *target) do(ctx context.Context, gw int, user, method, path string, body, out any) error {
	tok, err := t.token(ctx, user)
	if err != nil {
		return err
	}
	h := &client.HTTP{Base: t.baseURLs[gw%len(t.baseURLs)], Token: tok, Client: t.http}
	if err := h.Do(ctx, method, path, body, out); err != nil {
		return explainRateLimit(fmt.Errorf("%s %s as %s: %w", method, path, user, err))
	}
	return nil
}

// explainRateLimit adds what to do to a rate_limited error.
func explainRateLimit(err error) error {
	var e *schema.Error
	if errors.As(err, &e) && e.Code == schema.CodeRateLimited {
		return fmt.Errorf("%w\n%s", err, rateLimitHint)
	}
	return err
}

const rateLimitHint = "the server rate-limits clients: for load tests start it with --rate-limit 0 (laneim dev --rate-limit 0), or use --embedded"

// createRoom creates a public room owned by owner.
func (t *target) createRoom(ctx context.Context, owner, room string) error {
	return t.do(ctx, 0, owner, http.MethodPost, "/v1/rooms", map[string]any{"room": room, "name": room, "public": true}, nil)
}

// roomSeq is the room's latest seq.
func (t *target) roomSeq(ctx context.Context, user, room string) (int64, error) {
	var info schema.RoomInfo
	if err := t.do(ctx, 0, user, http.MethodGet, "/v1/rooms/"+room, nil, &info); err != nil {
		return 0, err
	}
	if info.Seq == nil {
		return 0, nil
	}
	return *info.Seq, nil
}

// joinAll adds every user to room, each joining itself (the room is public), with at
// most concurrency requests at once, spread over the gateways.
func (t *target) joinAll(ctx context.Context, room string, users []string, concurrency int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, user := range users {
		g.Go(func() error {
			return t.do(ctx, i, user, http.MethodPut, "/v1/rooms/"+room+"/members/"+user, nil, nil)
		})
	}
	return g.Wait()
}
