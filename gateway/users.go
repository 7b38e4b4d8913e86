package gateway

import (
	"errors"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/subjects"
)

// users tracks the connected users of this gateway and their im.user.<user>.events
// subscriptions (read sync, the user's own joins and leaves).
type users struct {
	gw *Gateway
	mu sync.Mutex
	m  map[string]*userEntry // guarded by mu
}

type userEntry struct {
	conns map[*conn]struct{}
	sub   *nats.Subscription
}

func newUsers(g *Gateway) *users { return &users{gw: g, m: make(map[string]*userEntry)} }

// errTooManyConns refuses a connection past Config.MaxConnsPerUser.
var errTooManyConns = errors.New("too many connections")

// add registers c under its user, subscribing to the user's events with the first
// connection and flushing so that the subscription is live before add returns. It
// fails with errTooManyConns when the user has MaxConnsPerUser connections here.
func (u *users) add(c *conn) error {
	u.mu.Lock()
	e := u.m[c.user]
	if e != nil && len(e.conns) >= u.gw.cfg.MaxConnsPerUser {
		u.mu.Unlock()
		return errTooManyConns
	}
	if e == nil {
		sub, err := u.gw.nc.ChanSubscribe(subjects.UserEventsT(c.user), u.gw.control)
		if err != nil {
			u.mu.Unlock()
			return err
		}
		e = &userEntry{conns: make(map[*conn]struct{}), sub: sub}
		u.m[c.user] = e
	}
	e.conns[c] = struct{}{}
	u.mu.Unlock()
	return u.gw.nc.Flush()
}

func (u *users) remove(c *conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.m[c.user]
	if e == nil {
		return
	}
	delete(e.conns, c)
	if len(e.conns) == 0 {
		if err := e.sub.Unsubscribe(); err != nil {
			// The connection is closed: the subscription is gone with it.
			metricSubscriptionErrors.WithLabelValues("unsubscribe").Inc()
		}
		delete(u.m, c.user)
	}
}

// conns returns a snapshot of user's connections.
func (u *users) conns(user string) []*conn {
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.m[user]
	if e == nil {
		return nil
	}
	out := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		out = append(out, c)
	}
	return out
}

// names returns the connected users.
func (u *users) names() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.m))
	for user := range u.m {
		out = append(out, user)
	}
	return out
}
