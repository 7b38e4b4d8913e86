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
