package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
)

// replyType is any of logic's reply types (they embed schema.Reply).
type replyType interface{ Failed() error }

// call sends req to one of logic's services and decodes the reply into out. No logic
// node answering, or none in time, is unavailable.
func (g *Gateway) call(ctx context.Context, subject string, req any, out replyType) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.RequestTimeout)
		defer cancel()
	}
	msg, err := g.nc.RequestWithContext(ctx, subject, data)
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
