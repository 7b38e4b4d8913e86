package gateway

import (
	"net/http"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// Moderation routes (docs/protocol.md): PUT and DELETE /v1/rooms/{room}/mutes/{user}
// and /bans/{user}, and GET /v1/rooms/{room}/mutes and /bans. Logic checks who may.

// sanction imposes (lift false) or lifts a sanction of kind on the path's user.
func (g *Gateway) sanction(kind string, lift bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, user string) error {
		req := schema.SanctionReq{Room: r.PathValue("room"), Target: r.PathValue("user"), Kind: kind, Lift: lift}
		if !lift {
			var body struct {
				Until      int64  `json:"until"`
				DurationMs int64  `json:"duration_ms"`
				Reason     string `json:"reason"`
			}
			if err := readBody(r, &body); err != nil {
				return err
			}
			req.Until, req.DurationMs, req.Reason = body.Until, body.DurationMs, body.Reason
		}
		var reply schema.Reply
		if err := g.call(r.Context(), subjects.SvcSanctionSet, req, &reply); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// listSanctions answers a page of a room's active sanctions of kind.
func (g *Gateway) listSanctions(kind string) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, user string) error {
		after, limit, err := userPage(r, schema.MaxSanctionLimit)
		if err != nil {
			return err
		}
		req := schema.SanctionListReq{Room: r.PathValue("room"), Kind: kind, After: after, Limit: limit}
		var reply schema.SanctionListReply
		if err := g.call(r.Context(), subjects.SvcSanctionList, req, &reply); err != nil {
			return err
		}
		if reply.Users == nil {
			reply.Users = []schema.SanctionInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": reply.Users, "more": reply.More})
		return nil
	}
}
