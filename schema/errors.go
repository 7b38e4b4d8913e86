package schema

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes of docs/protocol.md.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeRateLimited  = "rate_limited"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// CodeMuted refuses a send or an edit of a user muted in the room (403).
const CodeMuted = "muted"

// Error is a failure with a docs/protocol.md code. It travels unchanged from logic's
// services through the gateway to the client.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status overrides the HTTP status the code maps to (a client reading an answer
	// without an error body keeps the status it got).
	Status int `json:"status,omitempty"`
}

// HTTPStatus is the status e answers with over HTTP.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return HTTPStatus(e.Code)
}

// ErrExists is the error of creating something that already exists (HTTP 409).
func ErrExists(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is makes errors.Is(err, ErrForbidden) match any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels to compare with errors.Is; they match any error of the same code.
var (
	ErrBadRequest   = &Error{Code: CodeBadRequest}
	ErrUnauthorized = &Error{Code: CodeUnauthorized}
	ErrForbidden    = &Error{Code: CodeForbidden}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrConflict     = &Error{Code: CodeConflict}
	ErrTooLarge     = &Error{Code: CodeTooLarge}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrInternal     = &Error{Code: CodeInternal}
)

// Errorf builds an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, mapping anything else to internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// HTTPStatus is the status an error code answers with over HTTP.
func HTTPStatus(code string) int {
	switch code {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden, CodeMuted:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// WebSocket close codes of docs/protocol.md.
const (
	CloseNotIdentified    = 4001
	CloseHeartbeatTimeout = 4002
	CloseKicked           = 4003
	CloseTooSlow          = 4008
	CloseTooManyConns     = 4030
	CloseRateLimited      = 4029
	CloseTooLarge         = 1009
	CloseGoingAway        = 1001
)
