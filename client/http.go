package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/laneim/laneim/schema"
)

// HTTP calls laneIM's HTTP API (docs/protocol.md) with a bearer token.
type HTTP struct {
	Base   string       // http://host:port, without /v1
	Token  string       // sent as Authorization: Bearer; empty sends none
	Client *http.Client // nil means http.DefaultClient
}

// maxAnswerBytes bounds what Do reads of an answer: a history page of 200 messages of
// 4 KiB is under 1 MiB.
const maxAnswerBytes = 16 << 20

// Do sends method path with body encoded as JSON (none when nil; a json.RawMessage
// verbatim) and decodes a 2xx answer into out (ignored when nil or the answer is
// empty, as 204 is). Any other status is a *schema.Error with Status set to it, built
// from the {"error":{"code","message"}} answer, or from the status alone when the
// answer is not of that shape.
func (h *HTTP) Do(ctx context.Context, method, path string, body, out any) error {
	return h.do(ctx, method, path, body, out, nil)
}

// do is Do with prepare, when not nil, adjusting the request before it goes.
func (h *HTTP) do(ctx context.Context, method, path string, body, out any, prepare func(*http.Request)) error {
	var reader io.Reader
	if body != nil {
		payload, err := encodeJSON(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(h.Base, "/")+path, reader)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	if prepare != nil {
		prepare(req)
	}
	hc := h.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return httpError(resp.StatusCode, answer)
	}
	if out == nil || len(bytes.TrimSpace(answer)) == 0 {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// httpError builds the *schema.Error of a non-2xx answer.
func httpError(status int, answer []byte) *schema.Error {
	var wrapped struct {
		Error *schema.ErrorD `json:"error"`
	}
	if json.Unmarshal(answer, &wrapped) == nil && wrapped.Error != nil && wrapped.Error.Code != "" {
		return &schema.Error{Code: wrapped.Error.Code, Message: wrapped.Error.Message, Status: status}
	}
	message := strings.TrimSpace(string(answer))
	if len(message) > 200 {
		message = message[:200]
	}
	if message == "" {
		message = http.StatusText(status)
	}
	return &schema.Error{Code: codeOfStatus(status), Message: message, Status: status}
}

// codeOfStatus is the inverse of schema.HTTPStatus, for answers without an error body
// (a proxy's 502, a router's 404).
func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return schema.CodeBadRequest
	case http.StatusConflict:
		return schema.CodeConflict
	case http.StatusUnauthorized:
		return schema.CodeUnauthorized
	case http.StatusForbidden:
		return schema.CodeForbidden
	case http.StatusNotFound:
		return schema.CodeNotFound
	case http.StatusRequestEntityTooLarge:
		return schema.CodeTooLarge
	case http.StatusTooManyRequests:
		return schema.CodeRateLimited
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return schema.CodeUnavailable
	default:
		return schema.CodeInternal
	}
}

// DevToken asks a dev-mode server for a token of user: POST baseURL/v1/dev/token. A
// server outside dev mode answers not_found.
func DevToken(ctx context.Context, baseURL, user string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	h := &HTTP{Base: baseURL}
	if err := h.Do(ctx, http.MethodPost, "/v1/dev/token", map[string]string{"user": user}, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", fmt.Errorf("client: dev token for %s: empty answer", user)
	}
	return out.Token, nil
}

// WSURL derives the WebSocket endpoint from an HTTP base URL:
// http://host:port -> ws://host:port/v1/ws, https -> wss. A ws or wss URL is
// completed the same way.
func WSURL(base string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", fmt.Errorf("client: url %q: %w", base, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("client: url %q: scheme must be http or https", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("client: url %q has no host", base)
	}
	if !strings.HasSuffix(u.Path, "/v1/ws") {
		u.Path += "/v1/ws"
	}
	return u.String(), nil
}

// Gateway is one live gateway of GET /v1/gateways.
type Gateway struct {
	URL         string `json:"url"` // its base URL, http(s)://host:port
	Connections int    `json:"connections"`
}

// Gateways asks GET /v1/gateways (no token needed): the cluster's live gateways,
// least connections first.
func (h *HTTP) Gateways(ctx context.Context) ([]Gateway, error) {
	var out struct {
		Gateways []Gateway `json:"gateways"`
	}
	if err := h.Do(ctx, http.MethodGet, "/v1/gateways", nil, &out); err != nil {
		return nil, err
	}
	return out.Gateways, nil
}

// GatewayURLs returns the WebSocket endpoints of the live gateways, least loaded
// first, for Config.URL and Config.URLs.
func (h *HTTP) GatewayURLs(ctx context.Context) ([]string, error) {
	gateways, err := h.Gateways(ctx)
	if err != nil {
		return nil, err
	}
	urls := make([]string, 0, len(gateways))
	for _, g := range gateways {
		ws, err := WSURL(g.URL)
		if err != nil {
			continue // not a URL this client can dial
		}
		urls = append(urls, ws)
	}
	return urls, nil
}

// RenameRoom renames room (its owner and moderators): PATCH /v1/rooms/{room}.
func (h *HTTP) RenameRoom(ctx context.Context, room, name string) (schema.RoomInfo, error) {
	var info schema.RoomInfo
	err := h.Do(ctx, http.MethodPatch, "/v1/rooms/"+url.PathEscape(room), map[string]string{"name": name}, &info)
	return info, err
}

// TransferRoom gives room to user, a member (its owner): PUT /v1/rooms/{room}/owner.
func (h *HTTP) TransferRoom(ctx context.Context, room, user string) (schema.RoomInfo, error) {
	var info schema.RoomInfo
	err := h.Do(ctx, http.MethodPut, "/v1/rooms/"+url.PathEscape(room)+"/owner", map[string]string{"user": user}, &info)
	return info, err
}

// DeleteRoom deletes room and its history (its owner): DELETE /v1/rooms/{room}.
func (h *HTTP) DeleteRoom(ctx context.Context, room string) error {
	return h.Do(ctx, http.MethodDelete, "/v1/rooms/"+url.PathEscape(room), nil, nil)
}

// SetModerator appoints (moderator true) or removes user as a moderator of room (its
// owner): PUT or DELETE /v1/rooms/{room}/moderators/{user}.
func (h *HTTP) SetModerator(ctx context.Context, room, user string, moderator bool) error {
	method := http.MethodDelete
	if moderator {
		method = http.MethodPut
	}
	return h.Do(ctx, method, "/v1/rooms/"+url.PathEscape(room)+"/moderators/"+url.PathEscape(user), nil, nil)
}
