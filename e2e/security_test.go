package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/devstack"
)

// TestDevRefusesPublicBind: dev gives a token to anyone who asks, so it does not
// start on an address other than loopback unless told to.
func TestDevRefusesPublicBind(t *testing.T) {
	cfg := configs.Default()
	cfg.Data = t.TempDir()
	cfg.HTTP = "0.0.0.0:0"
	cfg.NATSListen = "none"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stack, err := devstack.Start(ctx, cfg, zerolog.Nop())
	if err == nil {
		stack.Close(ctx)
		t.Fatal("dev started on 0.0.0.0 without dev_public")
	}
	if !strings.Contains(err.Error(), "--dev-public") {
		t.Fatalf("error does not say how to allow it: %v", err)
	}
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.HTTP, c.DevPublic = "0.0.0.0:0", true })
	if !strings.HasPrefix(s.Addrs[0], "[::]:") && !strings.HasPrefix(s.Addrs[0], "0.0.0.0:") {
		t.Fatalf("with dev_public dev listens on %s", s.Addrs[0])
	}
}

// TestDevTokenExpires: POST /v1/dev/token signs a token with an expiry (token_ttl)
// and says when it expires.
func TestDevTokenExpires(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.TokenTTL = time.Hour })
	data := mustHTTP(t, s, "", "POST", "/v1/dev/token", map[string]string{"user": "alice"}, http.StatusOK)
	var got struct {
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(got.Token, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.ExpiresAt == nil {
		t.Fatal("dev token has no exp")
	}
	if d := time.Until(claims.ExpiresAt.Time); d < 59*time.Minute || d > time.Hour+time.Minute {
		t.Fatalf("dev token expires in %v, want 1h", d)
	}
	if d := got.ExpiresAt - claims.ExpiresAt.UnixMilli(); d < -2000 || d > 2000 {
		t.Fatalf("expires_at %d disagrees with exp %d", got.ExpiresAt, claims.ExpiresAt.UnixMilli())
	}
}
