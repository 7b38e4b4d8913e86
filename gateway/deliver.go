package gateway

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/subjects"
)

// deliverLoop is one delivery worker: it handles the NATS messages of the rooms and
// users hashed to it, one at a time, which keeps each room's frames in order. What has
// piled up while it was busy is taken at once, and a room's consecutive frames among
// it are relayed as one run: one write per connection for all of them.
func (g *Gateway) deliverLoop(ctx context.Context, ch chan *nats.Msg) {
	pending := make([]*nats.Msg, 0, maxRun)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			pending = append(pending[:0], m)
		}
	more:
		for len(pending) < maxRun {
			select {
			case m := <-ch:
				pending = append(pending, m)
			default:
				break more
			}
		}
		for i := 0; i < len(pending); {
			n := 1
			if room, kind, ok := subjects.ParseRoomSubject(pending[i].Subject); ok && kind == subjects.KindMsgs {
				for i+n < len(pending) && pending[i+n].Subject == pending[i].Subject {
					n++
				}
				if r := g.hub.get(room); r != nil {
					r.onMsgs(pending[i : i+n])
				}
			} else {
				g.dispatch(pending[i])
			}
			i += n
		}
		clear(pending)
	}
}

// maxRun bounds the NATS messages a delivery worker takes at once.
const maxRun = 64

func (g *Gateway) dispatch(m *nats.Msg) {
	if room, kind, ok := subjects.ParseRoomSubject(m.Subject); ok {
		r := g.hub.get(room)
		if r == nil {
			return
		}
		switch kind {
		case subjects.KindMsgs:
			r.onMsgs([]*nats.Msg{m})
		case subjects.KindTick:
			r.onTick(m.Data)
		case subjects.KindEvents:
			r.onEvent(m.Data)
		}
		return
	}
	if user, ok := subjects.ParseUserSubject(m.Subject); ok {
		g.onUserEvent(user, m)
	}
}
