package gateway

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// newLimiter returns a frames-per-second limiter with bursts of twice the rate, or nil
// when limiting is off.
func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), int(2*perSecond))
}

// newRefusalLimiter bounds the rate_limited answers a connection may draw: a tenth of
// its frame rate, in bursts of a tenth of a second's frames (at least 10). A client
// that slows down when refused never meets it; one that goes on sending at twice its
// limit is closed (4029) within a fraction of a second, rather than costing a parse
// and an answer for every frame it floods (measured: ten such clients drew 460,000
// answers in 30s; with bursts of a whole second's frames, still 350,000, each one
// write, a fifth of a core).
func newRefusalLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond/10), int(max(perSecond/10, 10)))
}

// userLimits rate-limits something per user: HTTP requests, identifies. Entries idle
// for a minute are swept, so the map holds only recently active users.
type userLimits struct {
	perSecond float64 // 0: no limit
	burst     int
	mu        sync.Mutex
	users     map[string]*userLimit // guarded by mu
	swept     time.Time             // guarded by mu
}

type userLimit struct {
	limiter *rate.Limiter
	used    time.Time
}

// newUserLimits limits each user to perSecond, in bursts of burst (0 turns it off).
func newUserLimits(perSecond float64, burst int) *userLimits {
	return &userLimits{perSecond: perSecond, burst: max(burst, 1), users: make(map[string]*userLimit), swept: time.Now()}
}

func (u *userLimits) allow(user string) bool {
	if u.perSecond <= 0 {
		return true
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.limitLocked(user, now).AllowN(now, 1)
}

// drain takes whatever the user has left, so its next one waits a full interval.
func (u *userLimits) drain(user string) {
	if u.perSecond <= 0 {
		return
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.limitLocked(user, now)
	if n := int(l.TokensAt(now)); n > 0 {
		l.AllowN(now, n)
	}
}

func (u *userLimits) limitLocked(user string, now time.Time) *rate.Limiter {
	if now.Sub(u.swept) > time.Minute {
		for name, l := range u.users {
			if now.Sub(l.used) > time.Minute {
				delete(u.users, name)
			}
		}
		u.swept = now
	}
	l := u.users[user]
	if l == nil {
		l = &userLimit{limiter: rate.NewLimiter(rate.Limit(u.perSecond), u.burst)}
		u.users[user] = l
	}
	l.used = now
	return l.limiter
}

// Identifies per user on one gateway, while the rate limit is on: a burst of
// identifyBurst (a user's every tab reconnecting after a restart, up to
// max_conns_per_user's default), then identifyRate a second. A connection closed for
// abuse (4029, 1009) empties its user's budget, so a client that reconnects to go on
// abusing waits a second each time, and what it costs before its frames are refused
// again is an upgrade and a token check, not the subscriptions and room list of a
// session.
const (
	identifyRate  = 1
	identifyBurst = 64
)
