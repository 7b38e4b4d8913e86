package gateway

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// FuzzParseServerRequest: whatever arrives on im.server.api, an accepted request
// targets a route under /v1/ other than the WebSocket upgrade, with a method of the
// API.
func FuzzParseServerRequest(f *testing.F) {
	for _, seed := range []string{
		`{"method":"POST","path":"/v1/rooms/general/messages","user":"bot","body":{"nonce":"n1","body":"hi"}}`,
		`{"method":"GET","path":"/v1/rooms/general/messages?limit=1"}`,
		`{"method":"GET","path":"/v1/ws"}`,
		`{"method":"GET","path":"/v1/../v1/ws"}`,
		`{"method":"GET","path":"//evil/v1/rooms"}`,
		`{"method":"GET","path":"http://x/v1/rooms"}`,
		`{"method":"GET","path":"/metrics"}`,
		`{"method":"CONNECT","path":"/v1/rooms"}`,
		`not json`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, target, e := parseServerRequest(data)
		if e != nil {
			return
		}
		switch req.Method {
		case "GET", "POST", "PUT", "PATCH", "DELETE":
		default:
			t.Fatalf("method %q accepted", req.Method)
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("target %q: %v", target, err)
		}
		if !strings.HasPrefix(u.Path, "/v1/") || path.Clean(u.Path) == "/v1/ws" || u.Host != "" {
			t.Fatalf("path %q accepted as %q", req.Path, target)
		}
	})
}
