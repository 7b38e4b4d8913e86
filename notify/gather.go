package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// members asks logic which of pairs are memberships, in requests of at most
// schema.MaxMembersCheck pairs: one for a batch of 100 mentions of 50 users.
func (n *Notifier) members(ctx context.Context, pairs [][2]string) (map[[2]string]bool, error) {
	out := make(map[[2]string]bool, len(pairs))
	for len(pairs) > 0 {
		chunk := pairs[:min(len(pairs), schema.MaxMembersCheck)]
		pairs = pairs[len(chunk):]
		data, _ := json.Marshal(schema.MembersCheckReq{Pairs: chunk})
		reqCtx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		msg, err := n.nc.RequestWithContext(reqCtx, subjects.MembersCheck, data)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("members check: %w", err)
		}
		var reply schema.MembersCheckReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil {
			return nil, fmt.Errorf("members check reply: %w", err)
		}
		if err := reply.Failed(); err != nil {
			return nil, fmt.Errorf("members check: %w", err)
		}
		if len(reply.Members) != len(chunk) {
			return nil, fmt.Errorf("members check: %d answers to %d pairs", len(reply.Members), len(chunk))
		}
		for i, p := range chunk {
			out[p] = reply.Members[i]
		}
	}
	return out, nil
}

// presence is what the gateways said of the users asked about.
type presence struct {
	subscribed map[[2]string]bool // (room, user) with a connection subscribed to the room
	online     map[string]bool    // users with a connection somewhere
}

// gather asks every gateway at once who of rooms' users is active, and waits for as
// many answers as there are live gateways, or GatherTimeout. A gateway that does not
// answer in time counts as having none of the users: a push too many beats one lost.
func (n *Notifier) gather(ctx context.Context, rooms map[string][]string) (presence, error) {
	p := presence{subscribed: make(map[[2]string]bool), online: make(map[string]bool)}
	if len(rooms) == 0 {
		return p, nil
	}
	start := time.Now()
	expected := n.gateways.count(ctx)
	data, err := json.Marshal(schema.ActiveReq{Rooms: rooms})
	if err != nil {
		return p, err
	}
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return p, fmt.Errorf("gather: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(subjects.PresenceActive, inbox, data); err != nil {
		return p, fmt.Errorf("gather: %w", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, n.cfg.GatherTimeout)
	defer cancel()
	heard := make(map[string]bool)
	for expected == 0 || len(heard) < expected {
		msg, err := sub.NextMsgWithContext(waitCtx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				if ctx.Err() != nil {
					return p, ctx.Err()
				}
				metricGatherTimeouts.Inc()
				break
			}
			return p, fmt.Errorf("gather: %w", err)
		}
		var reply schema.ActiveReply
		if json.Unmarshal(msg.Data, &reply) != nil || reply.Gateway == "" || heard[reply.Gateway] {
			continue
		}
		heard[reply.Gateway] = true
		for _, u := range reply.Online {
			p.online[u] = true
		}
		for room, users := range reply.Subscribed {
			for _, u := range users {
				p.subscribed[[2]string{room, u}] = true
			}
		}
	}
	metricGatherSeconds.Observe(time.Since(start).Seconds())
	return p, nil
}

// gatewayCount counts the live gateways in im_nodes, read at most every
// gatewaysRefresh: a gateway that just started may go unwaited for that long, one
// that just died is waited for until GatherTimeout.
type gatewayCount struct {
	list func(ctx context.Context) (int, error) // set once at construction

	// mu is held while the list is read: the gathers of several workers wait for one
	// read rather than each making its own.
	mu   sync.Mutex
	n    int       // guarded by mu
	read time.Time // guarded by mu: when n was read
}

const gatewaysRefresh = 2 * time.Second

func newGatewayCount(list func(ctx context.Context) (int, error)) *gatewayCount {
	return &gatewayCount{list: list}
}

// count returns the live gateways, 0 when unknown (then every gather waits its
// timeout).
func (g *gatewayCount) count(ctx context.Context) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.read.IsZero() && time.Since(g.read) < gatewaysRefresh {
		return g.n
	}
	listCtx, cancel := context.WithTimeout(ctx, time.Second)
	n, err := g.list(listCtx)
	cancel()
	if err != nil {
		n = 0 // unknown: every gather waits its timeout until the next read
	}
	g.n, g.read = n, time.Now()
	return n
}
