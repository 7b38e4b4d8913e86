package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/laneim/laneim/schema"
)

func TestHTTPDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/dev/token":
			var in struct{ User string }
			_ = json.NewDecoder(r.Body).Decode(&in)
			if r.Method != http.MethodPost || in.User == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, `{"token":"tok-`+in.User+`"}`)
		case "/v1/rooms/echo":
			if r.Header.Get("Authorization") != "Bearer T" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"no token"}}`)
				return
			}
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		case "/v1/rooms/exists":
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"code":"conflict","message":"room exists"}}`)
		case "/v1/rooms/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "404 page not found", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	token, err := DevToken(ctx, srv.URL+"/", "alice")
	if err != nil || token != "tok-alice" {
		t.Fatalf("DevToken: %q %v", token, err)
	}

	h := &HTTP{Base: srv.URL, Token: "T"}
	var out map[string]any
	if err := h.Do(ctx, http.MethodPost, "/v1/rooms/echo", json.RawMessage(`{"room":"x"}`), &out); err != nil || out["room"] != "x" {
		t.Fatalf("echo: %v %v", out, err)
	}
	if err := h.Do(ctx, http.MethodPut, "/v1/rooms/empty", nil, &out); err != nil {
		t.Fatalf("204: %v", err)
	}

	tests := []struct {
		h      *HTTP
		path   string
		code   string
		status int
	}{
		{&HTTP{Base: srv.URL}, "/v1/rooms/echo", schema.CodeUnauthorized, 401},
		{h, "/v1/rooms/exists", schema.CodeConflict, 409},
		{h, "/nowhere", schema.CodeNotFound, 404}, // no error body: the code comes from the status
	}
	for _, tt := range tests {
		err := tt.h.Do(ctx, http.MethodGet, tt.path, nil, nil)
		var e *schema.Error
		if !errors.As(err, &e) || e.Code != tt.code || e.Status != tt.status || e.HTTPStatus() != tt.status {
			t.Errorf("%s: %#v", tt.path, err)
		}
	}
	if err := h.Do(ctx, http.MethodGet, "/nowhere", nil, nil); !errors.Is(err, schema.ErrNotFound) {
		t.Errorf("errors.Is not_found: %v", err)
	}
}

func TestWSURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws"},
		{"http://127.0.0.1:8080/", "ws://127.0.0.1:8080/v1/ws"},
		{"https://chat.example.com/prefix", "wss://chat.example.com/prefix/v1/ws"},
		{"ws://h:1/v1/ws", "ws://h:1/v1/ws"},
		{"ftp://h", ""},
		{"http://", ""},
		{"::", ""},
	}
	for _, tt := range tests {
		got, err := WSURL(tt.in)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("WSURL(%q) = %q, %v", tt.in, got, err)
		}
	}
}
