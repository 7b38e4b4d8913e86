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
// its frame rate, in bursts of one second's frames. A client that slows down when
// refused never meets it; one that goes on sending at twice its limit is closed
// (4029) within about a second, rather than costing a parse and an answer for every
// frame it floods (measured: ten such clients drew 460,000 answers in 30s).
func newRefusalLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond/10), int(max(perSecond, 1)))
}

// userLimits rate-limits HTTP requests per user. Entries idle for a minute are swept,
// so the map holds only recently active users.
type userLimits struct {
	perSecond float64
	mu        sync.Mutex
	users     map[string]*userLimit // guarded by mu
	swept     time.Time             // guarded by mu
}

type userLimit struct {
	limiter *rate.Limiter
	used    time.Time
}

func newUserLimits(perSecond float64) *userLimits {
	return &userLimits{perSecond: perSecond, users: make(map[string]*userLimit), swept: time.Now()}
}

func (u *userLimits) allow(user string) bool {
	if u.perSecond <= 0 {
		return true
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
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
		l = &userLimit{limiter: newLimiter(u.perSecond)}
		u.users[user] = l
	}
	l.used = now
	return l.limiter.AllowN(now, 1)
}
