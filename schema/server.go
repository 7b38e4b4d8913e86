package schema

import "encoding/json"

// Wire types of the server API (docs/protocol.md, Server API): a product's backend
// acting as any user, with owner rights in every room.

// OpKick on a user's events subject closes every session of the user with 4003
// (CloseKicked) and the event's reason.
const OpKick = "kick"

// MaxKickReason is the longest reason of a kick, in bytes: it goes in the close
// frame, whose payload holds 123 bytes besides the code.
const MaxKickReason = 120

// KickReq closes every session of Target; logic grants it to server requests only.
type KickReq struct {
	Target string `json:"target"`
	Reason string `json:"reason,omitempty"`
}

// KickD is the data of a kick event.
type KickD struct {
	Reason string `json:"reason,omitempty"`
}

// ServerRequest is a request of the server API over NATS: the HTTP request Method
// Path (a path under /v1/, with its query) made by User (default "system") with the
// JSON Body, as if it came with an API key.
type ServerRequest struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	User   string          `json:"user,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// ServerResponse answers a ServerRequest with the HTTP status and JSON body the HTTP
// API answers (null for none, such as a 204's).
type ServerResponse struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}
