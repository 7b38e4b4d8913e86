package logic

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/store"
	"github.com/laneim/laneim/subjects"
)

// Server requests: those whose token carries the server claim, which only a gateway
// mints, for a request of the server API (an API key, or the server role on NATS).
// They act as the user the token names, with what the owner of a room may do in
// every room: no membership needed to read, send or list, owner and moderator actions
// allowed. A room that does not exist is not_found to them: a server may see every
// room, so there is nothing to hide.

var metricKicks = promauto.NewCounter(prometheus.CounterOpts{
	Name: "laneim_logic_kicks_total", Help: "Users kicked through the server API (every session closed with 4003).",
})

// serverKey marks a request's context as a server request's.
type serverKey struct{}

func withServer(ctx context.Context) context.Context {
	return context.WithValue(ctx, serverKey{}, true)
}

// isServer reports whether ctx is a server request's.
func isServer(ctx context.Context) bool {
	server, _ := ctx.Value(serverKey{}).(bool)
	return server
}

// serverRoom returns room id for a server request: every room that exists.
func (l *Logic) serverRoom(ctx context.Context, id string) (store.Room, error) {
	room, err := l.meta.GetRoom(ctx, id)
	if errors.Is(err, schema.ErrNotFound) {
		return store.Room{}, schema.Errorf(schema.CodeNotFound, "room %s not found", id)
	}
	return room, err
}

// userKick closes every session of a user with 4003 (POST /v1/users/{user}/kick): a
// server request's only.
func (l *Logic) userKick(ctx context.Context, caller string, data []byte) (any, error) {
	if !isServer(ctx) {
		return nil, schema.Errorf(schema.CodeForbidden, "only the server API kicks users")
	}
	var req schema.KickReq
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := checkIDs(req.Target); err != nil {
		return nil, err
	}
	if len(req.Reason) > schema.MaxKickReason {
		return nil, schema.Errorf(schema.CodeBadRequest, "reason is longer than %d bytes", schema.MaxKickReason)
	}
	frame := schema.EncodeFrame(schema.OpKick, nil, schema.KickD{Reason: req.Reason})
	// Flushed before the reply, as member events are: every gateway has the kick in
	// hand when the caller sees 204.
	if err := l.nc.Publish(subjects.UserEventsT(req.Target), frame); err != nil {
		return nil, schema.Errorf(schema.CodeUnavailable, "publish the kick: %v", err)
	}
	if err := l.nc.FlushWithContext(ctx); err != nil {
		return nil, schema.Errorf(schema.CodeUnavailable, "publish the kick: %v", err)
	}
	metricKicks.Inc()
	return schema.Reply{}, nil
}
