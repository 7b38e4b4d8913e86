package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// replyType is any of logic's reply types (they embed schema.Reply).
type replyType interface{ Failed() error }

// callerKey is the context key of the token a request to logic acts with.
type callerKey struct{}

// withToken returns ctx carrying the token of the client a request to logic is made
// for: call forwards it, and logic acts only as its subject.
func withToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, callerKey{}, token)
}

// call sends req to one of logic's services for the client whose token ctx carries
// (withToken) and decodes the reply into out. No logic node answering, or none in
// time, is unavailable.
func (g *Gateway) call(ctx context.Context, subject string, req any, out replyType) error {
	token, _ := ctx.Value(callerKey{}).(string)
	if token == "" {
		return schema.Errorf(schema.CodeInternal, "request to logic without a caller")
	}
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	m := nats.NewMsg(subject)
	m.Header.Set(subjects.HeaderToken, token)
	m.Data = data
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.RequestTimeout)
		defer cancel()
	}
	msg, err := g.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return schema.Errorf(schema.CodeUnavailable, "logic did not answer")
		}
		return schema.Errorf(schema.CodeUnavailable, "logic request: %v", err)
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return schema.Errorf(schema.CodeInternal, "bad reply from logic")
	}
	return out.Failed()
}
