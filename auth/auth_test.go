package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/laneim/laneim/schema"
)

func TestSignVerify(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	tok, err := Sign(secret, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if user, err := Verify(secret, tok); err != nil || user != "alice" {
		t.Fatalf("Verify = %q, %v", user, err)
	}
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Minute)),
	}).SignedString(secret)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "alice"})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	badSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "a.b"}).SignedString(secret)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.RegisteredClaims{Subject: "alice"}).SignedString(secret)
	for name, tok := range map[string]string{
		"other secret": mustSign(t, []byte(strings.Repeat("x", 32)), "alice"),
		"expired":      expired,
		"alg none":     noneTok,
		"bad subject":  badSub,
		"hs512":        hs512,
		"garbage":      "abc",
		"empty":        "",
	} {
		if _, err := Verify(secret, tok); !errors.Is(err, schema.ErrUnauthorized) {
			t.Errorf("%s: err %v, want unauthorized", name, err)
		}
	}
	if _, err := Sign(secret, "bad user", 0); !errors.Is(err, schema.ErrBadRequest) {
		t.Errorf("Sign bad user: %v", err)
	}
}

func mustSign(t *testing.T, secret []byte, user string) string {
	tok, err := Sign(secret, user, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDevSecretPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := DevSecret(dir)
	if err != nil || len(a) < 32 {
		t.Fatalf("DevSecret = %q, %v", a, err)
	}
	b, _ := DevSecret(dir)
	if string(a) != string(b) {
		t.Fatal("secret changed between calls")
	}
	if c, _ := DevSecret(t.TempDir()); string(c) == string(a) {
		t.Fatal("two data dirs share a secret")
	}
}

func TestVerifier(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	v := NewVerifier(secret)
	good := mustSign(t, secret, "alice")
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "bob", ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Minute)),
	}).SignedString(secret)
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "alice"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	badSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "a.b"}).SignedString(secret)
	// Twice each: the second answer comes from the verifier's memory and must agree.
	for range 2 {
		if c, err := v.Verify(good); err != nil || c.User != "alice" {
			t.Fatalf("good token: %+v, %v", c, err)
		}
		for name, tok := range map[string]string{
			"expired":      expired,
			"other secret": mustSign(t, []byte(strings.Repeat("x", 32)), "alice"),
			"alg none":     noneTok,
			"bad subject":  badSub,
			"garbage":      "a.b.c",
			"empty":        "",
		} {
			if _, err := v.Verify(tok); !errors.Is(err, schema.ErrUnauthorized) {
				t.Errorf("%s: err %v, want unauthorized", name, err)
			}
		}
		// A token is judged at the time given: before its exp it was good.
		if c, err := v.VerifyAt(expired, time.Now().Add(-2*time.Minute)); err != nil || c.User != "bob" {
			t.Fatalf("expired token at a time before exp: %+v, %v", c, err)
		}
	}
}

// FuzzVerify: any string offered as a token is refused or names a valid user, by Parse
// and by the Verifier alike; neither panics.
func FuzzVerify(f *testing.F) {
	secret := []byte(strings.Repeat("k", 32))
	good, _ := Sign(secret, "alice", time.Hour)
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
	f.Add(good[:len(good)-2])
	v := NewVerifier(secret)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := Parse(secret, token)
		if err == nil && !schema.ValidID(c.User) {
			t.Fatalf("Parse accepted %q with user %q", token, c.User)
		}
		vc, verr := v.Verify(token)
		if (err == nil) != (verr == nil) || vc.User != c.User {
			t.Fatalf("Parse and Verifier disagree on %q: %v / %v", token, err, verr)
		}
	})
}

// A server token is accepted by logic's Verifier, with its claim, and refused by every
// client-facing check.
func TestServerToken(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	tok, err := SignServer(secret, "bot")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewVerifier(secret).Verify(tok)
	if err != nil || c.User != "bot" || !c.Server {
		t.Fatalf("Verifier = %+v, %v", c, err)
	}
	if left := time.Until(c.Expires); left <= 0 || left > ServerTokenTTL {
		t.Errorf("expires in %s", left)
	}
	if _, err := Parse(secret, tok); !errors.Is(err, schema.ErrUnauthorized) {
		t.Errorf("Parse of a server token: %v, want unauthorized", err)
	}
	if _, err := Verify(secret, tok); !errors.Is(err, schema.ErrUnauthorized) {
		t.Errorf("Verify of a server token: %v, want unauthorized", err)
	}
	user, err := NewVerifier(secret).Verify(mustSign(t, secret, "alice"))
	if err != nil || user.Server {
		t.Errorf("a user token verified as %+v, %v", user, err)
	}
	if _, err := SignServer(secret, "a b"); !errors.Is(err, schema.ErrBadRequest) {
		t.Errorf("SignServer bad user: %v", err)
	}
}

func TestDevAPIKeyPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := DevAPIKey(dir)
	if err != nil || len(a) < 32 {
		t.Fatalf("DevAPIKey = %q, %v", a, err)
	}
	if b, _ := DevAPIKey(dir); a != b {
		t.Fatal("key changed between calls")
	}
	if s, _ := DevSecret(dir); string(s) == a {
		t.Fatal("the API key is the secret")
	}
}
