// Package auth signs and verifies the JWTs clients present (HS256, claim sub = user
// id, exp honoured), as docs/protocol.md specifies, and the server tokens a gateway
// mints for a server API request (claim lsrv), which only logic accepts.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/laneim/laneim/schema"
)

// Sign returns a token for user signed with secret, expiring after ttl (no expiry when
// ttl is 0).
func Sign(secret []byte, user string, ttl time.Duration) (string, error) {
	return sign(secret, user, ttl, false)
}

// sign signs a token for user, expiring after ttl (none when 0), with the server claim
// if server.
func sign(secret []byte, user string, ttl time.Duration, server bool) (string, error) {
	if !schema.ValidID(user) {
		return "", schema.Errorf(schema.CodeBadRequest, "invalid user id %q", user)
	}
	now := time.Now()
	claims := tokenClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: user, IssuedAt: jwt.NewNumericDate(now)}, Server: server}
	if ttl > 0 {
		claims.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// ServerTokenTTL is the lifetime of a server token: a gateway mints one for the acting
// user of a server API request and forwards it to logic with the request, or with the
// send to IM_IN, where logic judges it by the time the gateway published the send.
const ServerTokenTTL = time.Minute

// SignServer returns a server token for user: logic grants a request carrying it what
// the room's owner may do in every room (docs/protocol.md, Server API). Only a gateway
// signs one, for a request authenticated with an API key; no client-facing check
// (Parse, Verify) accepts it.
func SignServer(secret []byte, user string) (string, error) {
	return sign(secret, user, ServerTokenTTL, true)
}

// tokenClaims are the claims laneIM signs and reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	// Server marks a server token (SignServer).
	Server bool `json:"lsrv,omitempty"`
}

// Verify checks a client's token against secret and returns its user. Every failure
// is an unauthorized *schema.Error.
func Verify(secret []byte, token string) (string, error) {
	c, err := Parse(secret, token)
	return c.User, err
}

// Claims are what laneIM reads from a verified token.
type Claims struct {
	User string
	// Expires is the token's exp; zero for a token without one.
	Expires time.Time
	// Server is set for a server token (SignServer).
	Server bool
}

// Parse checks a token a client presents (identify, refresh, an HTTP bearer) against
// secret and returns its claims. A server token is refused: server tokens exist only
// between a gateway and logic, and a client holding one (copied from a log, say) must
// not gain a server's rights. Every failure is an unauthorized *schema.Error.
func Parse(secret []byte, token string) (Claims, error) {
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithLeeway(Leeway))
	c, err := claimsOf(claims, err)
	if err == nil && c.Server {
		return Claims{}, schema.Errorf(schema.CodeUnauthorized, "a server token is not accepted from a client")
	}
	return c, err
}

// claimsOf turns a parse's result into Claims, or an unauthorized *schema.Error.
func claimsOf(claims tokenClaims, err error) (Claims, error) {
	if err != nil {
		return Claims{}, schema.Errorf(schema.CodeUnauthorized, "invalid token: %v", err)
	}
	if !schema.ValidID(claims.Subject) {
		return Claims{}, schema.Errorf(schema.CodeUnauthorized, "token subject is not a valid user id")
	}
	out := Claims{User: claims.Subject, Server: claims.Server}
	if claims.ExpiresAt != nil {
		out.Expires = claims.ExpiresAt.Time
	}
	return out, nil
}

// ReadDevSecret returns the secret a `laneim dev` keeps in dir/secret, failing (rather
// than creating one the server would not know) when there is none.
func ReadDevSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "secret")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no dev secret at %s: run this where laneim dev keeps its data, "+
			"or pass --data DIR, or set LANEIM_SECRET to the server's secret", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return []byte(s), nil
}

// DevSecret returns the secret stored in dir/secret, creating a random one the first
// time, so that tokens stay valid across restarts of `laneim dev` on one data dir.
func DevSecret(dir string) ([]byte, error) {
	s, err := devKey(dir, "secret")
	return []byte(s), err
}

// DevAPIKey returns the server API key stored in dir/api_key, creating a random one
// the first time, so that a backend's key stays valid across restarts of `laneim dev`.
func DevAPIKey(dir string) (string, error) { return devKey(dir, "api_key") }

// devKey returns the key in the file name of dir, creating one of 32 random bytes (64
// hex characters) if there is none.
func devKey(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(data)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := hex.EncodeToString(b[:])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}
