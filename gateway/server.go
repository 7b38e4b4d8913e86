package gateway

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/laneim/laneim/auth"
	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// The server API (docs/protocol.md): a product's backend calls the HTTP API with an
// API key instead of a user's token, acting as the user its Laneim-User header names
// (default DefaultServerUser), or sends the same requests over NATS with the server
// role's credential (servernats.go). The gateway then forwards a server token of that
// user to logic (auth.SignServer), which grants it what a room's owner may do in every
// room. Server requests are not held to the per-user HTTP rate limit: the backend is
// the product's own, and what it sends is its operator's to size.

// HeaderServerUser names the user a server API request acts as.
const HeaderServerUser = "Laneim-User"

// DefaultServerUser is the user a server API request acts as when it names none.
const DefaultServerUser = "system"

var metricServerRequests = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "laneim_gateway_server_requests_total", Help: "Server API requests authenticated, by transport (http, nats).",
}, []string{"transport"})

// serverKey marks a request's context as the server API's.
type serverKey struct{}

// natsServerKey marks an HTTP request built from a server API request that came over
// NATS (servernats.go): the server role's credential stands for the API key. Only
// this process can put it in a context.
type natsServerKey struct{}

// isServer reports whether ctx is a server API request's.
func isServer(ctx context.Context) bool {
	server, _ := ctx.Value(serverKey{}).(bool)
	return server
}

// isAPIKey reports whether key is one of the configured API keys, in time independent
// of which one and of how much of it matches.
func (g *Gateway) isAPIKey(key string) bool {
	match := 0
	for _, k := range g.cfg.APIKeys {
		match |= subtle.ConstantTimeCompare([]byte(key), []byte(k))
	}
	return match == 1
}

// authenticate returns the user a request acts as and the token forwarded to logic
// for it: a client's own token, or, for a server API request (an API key, or NATS),
// a server token of the user Laneim-User names.
func (g *Gateway) authenticate(r *http.Request) (user, token string, server bool, e *schema.Error) {
	viaNATS, _ := r.Context().Value(natsServerKey{}).(bool)
	if !viaNATS {
		bearer, ok := cutBearer(r)
		if !ok {
			return "", "", false, schema.Errorf(schema.CodeUnauthorized, "Authorization: Bearer <token> is required")
		}
		if !g.isAPIKey(bearer) {
			user, err := auth.Verify(g.cfg.Secret, bearer)
			if err != nil {
				return "", "", false, schema.AsError(err)
			}
			return user, bearer, false, nil
		}
	}
	user = r.Header.Get(HeaderServerUser)
	if user == "" {
		user = DefaultServerUser
	}
	if !schema.ValidID(user) {
		return "", "", true, schema.Errorf(schema.CodeBadRequest, "invalid %s %q: 1 to 64 of A-Z a-z 0-9 _ -", HeaderServerUser, user)
	}
	token, err := g.serverTokens.token(user)
	if err != nil {
		return "", "", true, schema.AsError(err)
	}
	transport := "http"
	if viaNATS {
		transport = "nats"
	}
	metricServerRequests.WithLabelValues(transport).Inc()
	return user, token, true, nil
}

// cutBearer returns the credential of an Authorization: Bearer header.
func cutBearer(r *http.Request) (string, bool) {
	credential, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(credential), ok
}

// serverTokens mints the server tokens of acting users and reuses each for half its
// life, so that a backend's requests cost an HMAC now and then rather than each, and
// logic's Verifier, which remembers the tokens it has checked, sees a few tokens
// instead of one a request. Safe for concurrent use.
type serverTokens struct {
	secret []byte // set once at construction

	mu     sync.Mutex
	tokens map[string]serverToken // guarded by mu: by acting user
}

type serverToken struct {
	token  string
	minted time.Time
}

// maxServerTokens bounds the acting users remembered; past it the memory starts over.
const maxServerTokens = 4096

func newServerTokens(secret []byte) *serverTokens {
	return &serverTokens{secret: secret, tokens: make(map[string]serverToken)}
}

// token returns a server token of user valid for at least half of
// auth.ServerTokenTTL: long enough for the request (a send waits at most
// SendTimeout) and the way to logic.
func (s *serverTokens) token(user string) (string, error) {
	now := time.Now()
	s.mu.Lock()
	t, ok := s.tokens[user]
	s.mu.Unlock()
	if ok && now.Sub(t.minted) < auth.ServerTokenTTL/2 {
		return t.token, nil
	}
	token, err := auth.SignServer(s.secret, user)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if len(s.tokens) >= maxServerTokens {
		clear(s.tokens)
	}
	s.tokens[user] = serverToken{token: token, minted: now}
	s.mu.Unlock()
	return token, nil
}

// kickUser answers POST /v1/users/{user}/kick {"reason"?}: every session of the user,
// on every gateway, is closed with 4003. The server API's only.
func (g *Gateway) kickUser(w http.ResponseWriter, r *http.Request, user string) error {
	if !isServer(r.Context()) {
		return schema.Errorf(schema.CodeForbidden, "only the server API kicks users")
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if len(body.Reason) > schema.MaxKickReason {
		return schema.Errorf(schema.CodeBadRequest, "reason is longer than %d bytes", schema.MaxKickReason)
	}
	var reply schema.Reply
	if err := g.call(r.Context(), subjects.SvcUserKick, schema.KickReq{Target: r.PathValue("user"), Reason: body.Reason}, &reply); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
