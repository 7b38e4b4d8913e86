package gateway

import (
	"encoding/json"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// active answers the offline hook's notifier (package notify), which asks every
// gateway at once on im.presence.active, no queue group: of these users of these
// rooms, who has a connection here subscribed to the room (active: they saw the
// message), and who has a connection here at all (passive, unless another gateway
// says subscribed). The answer comes from the connection tables alone, no NATS round
// trip: a room's mu is held for one pass over its local connections, the online
// set's for one lookup per user.
type active struct {
	gw  *Gateway
	sub *nats.Subscription // set by start
}

// start subscribes; nats.go runs the handler on the subscription's own goroutine, so
// a question never waits behind room traffic.
func (a *active) start() error {
	sub, err := a.gw.nc.Subscribe(subjects.PresenceActive, a.answer)
	if err != nil {
		return err
	}
	a.sub = sub
	return nil
}

func (a *active) stop() {
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
	}
}

func (a *active) answer(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	var req schema.ActiveReq
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		metricPresenceErrors.WithLabelValues("active_malformed").Inc()
		return
	}
	data, err := json.Marshal(a.gw.activeReply(req))
	if err != nil {
		return
	}
	if err := msg.Respond(data); err != nil {
		metricPresenceErrors.WithLabelValues("publish").Inc()
	}
}

// activeReply is this gateway's answer to req.
func (g *Gateway) activeReply(req schema.ActiveReq) schema.ActiveReply {
	reply := schema.ActiveReply{Gateway: g.cfg.ID}
	asked := make(map[string]struct{})
	for id, users := range req.Rooms {
		want := make(map[string]struct{}, len(users))
		for _, u := range users {
			want[u] = struct{}{}
			asked[u] = struct{}{}
		}
		r := g.hub.get(id)
		if r == nil {
			continue
		}
		var subscribed []string
		r.mu.Lock()
		for c, rc := range r.conns {
			if _, ok := want[c.user]; ok && rc.subscribed && !slices.Contains(subscribed, c.user) {
				subscribed = append(subscribed, c.user)
			}
		}
		r.mu.Unlock()
		if len(subscribed) > 0 {
			if reply.Subscribed == nil {
				reply.Subscribed = make(map[string][]string)
			}
			reply.Subscribed[id] = subscribed
		}
	}
	o := g.presence.online
	o.mu.Lock()
	for u := range asked {
		if o.localConns[u] > 0 {
			reply.Online = append(reply.Online, u)
		}
	}
	o.mu.Unlock()
	return reply
}
