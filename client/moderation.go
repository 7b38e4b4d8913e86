package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/laneim/laneim/schema"
)

// Moderation over HTTP (docs/protocol.md): a room's owner and moderators mute and ban
// users. A muted user's Send and Edit fail with schema.CodeMuted; a ban takes the user
// out of the room (a member leave, then a room event schema.RoomBanned) and refuses
// its joins and adds until Unban.

// SanctionOptions say how long a mute or a ban lasts and why. With neither Until nor
// Duration it lasts until lifted.
type SanctionOptions struct {
	Until    int64 // Unix ms when it ends
	Duration int64 // or: ms from now
	Reason   string
}

// SanctionPage is a page of GET /v1/rooms/{room}/mutes or /bans: each muted or banned
// user with its end (0: none), who imposed it and why; More says a next page starts
// after the last user.
type SanctionPage struct {
	Users []schema.SanctionInfo `json:"users"`
	More  bool                  `json:"more"`
}

// Mute mutes user in room: PUT /v1/rooms/{room}/mutes/{user}.
func (h *HTTP) Mute(ctx context.Context, room, user string, opts SanctionOptions) error {
	return h.sanction(ctx, room, "mutes", user, opts)
}

// Unmute lifts user's mute in room: DELETE /v1/rooms/{room}/mutes/{user}.
func (h *HTTP) Unmute(ctx context.Context, room, user string) error {
	return h.Do(ctx, http.MethodDelete, sanctionPath(room, "mutes", user), nil, nil)
}

// Mutes lists room's muted users in id order, after the user id after ("" from the
// first), limit of them (0: the server's default): GET /v1/rooms/{room}/mutes.
func (h *HTTP) Mutes(ctx context.Context, room, after string, limit int) (SanctionPage, error) {
	return h.sanctions(ctx, room, "mutes", after, limit)
}

// Ban bans user from room, taking it out of the room: PUT /v1/rooms/{room}/bans/{user}.
func (h *HTTP) Ban(ctx context.Context, room, user string, opts SanctionOptions) error {
	return h.sanction(ctx, room, "bans", user, opts)
}

// Unban lifts user's ban from room (it is not added back): DELETE
// /v1/rooms/{room}/bans/{user}.
func (h *HTTP) Unban(ctx context.Context, room, user string) error {
	return h.Do(ctx, http.MethodDelete, sanctionPath(room, "bans", user), nil, nil)
}

// Bans lists room's banned users as Mutes lists the muted: GET /v1/rooms/{room}/bans.
func (h *HTTP) Bans(ctx context.Context, room, after string, limit int) (SanctionPage, error) {
	return h.sanctions(ctx, room, "bans", after, limit)
}

func sanctionPath(room, kind, user string) string {
	return "/v1/rooms/" + url.PathEscape(room) + "/" + kind + "/" + url.PathEscape(user)
}

func (h *HTTP) sanction(ctx context.Context, room, kind, user string, opts SanctionOptions) error {
	body := struct {
		Until    int64  `json:"until,omitempty"`
		Duration int64  `json:"duration_ms,omitempty"`
		Reason   string `json:"reason,omitempty"`
	}{opts.Until, opts.Duration, opts.Reason}
	return h.Do(ctx, http.MethodPut, sanctionPath(room, kind, user), body, nil)
}

func (h *HTTP) sanctions(ctx context.Context, room, kind, after string, limit int) (SanctionPage, error) {
	query := url.Values{}
	if after != "" {
		query.Set("after", after)
	}
	if limit > 0 {
		query.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/rooms/" + url.PathEscape(room) + "/" + kind
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var page SanctionPage
	err := h.Do(ctx, http.MethodGet, path, nil, &page)
	return page, err
}
