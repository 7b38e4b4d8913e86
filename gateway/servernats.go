package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// The server API over NATS: every gateway serves subjects.ServerAPI in one queue
// group, so a request goes to one of them. A request {"method","path","user","body"}
// runs through the gateway's own HTTP handler as if it came with an API key, and the
// reply is {"status","body"}: the NATS API is the HTTP API, route for route. The
// server role's NATS credential stands for the API key.

// maxServerRequests bounds the server API requests over NATS one gateway runs at
// once; one more is answered 503 at once instead of queueing behind them (each may
// wait up to SendTimeout for a send's ack).
const maxServerRequests = 256

// maxServerReply bounds a reply's body, inside NATS's 1 MiB payload: history pages are
// at most 512 KiB.
const maxServerReply = 900 << 10

// serverAPIVersion is the version `nats micro ls` shows.
const serverAPIVersion = "0.1.0"

// startServerAPI registers the NATS endpoint of the server API.
func (g *Gateway) startServerAPI(runCtx context.Context) error {
	handler := g.Handler()
	sem := make(chan struct{}, maxServerRequests)
	svc, err := micro.AddService(g.nc, micro.Config{
		Name:        subjects.ServerService,
		Version:     serverAPIVersion,
		Description: "laneIM server API: the HTTP API for a product's backend",
		QueueGroup:  subjects.ServerQueue,
	})
	if err != nil {
		return err
	}
	err = svc.AddEndpoint("api", micro.HandlerFunc(func(req micro.Request) {
		select {
		case sem <- struct{}{}:
		default:
			g.respondServer(req, errorResponse(schema.Errorf(schema.CodeUnavailable,
				"this gateway runs %d server API requests already, try again", maxServerRequests)))
			return
		}
		g.wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(runCtx, max(g.cfg.SendTimeout, g.cfg.RequestTimeout)+time.Second)
			defer cancel()
			g.respondServer(req, g.serveServerRequest(ctx, handler, req.Data()))
		})
	}), micro.WithEndpointSubject(subjects.ServerAPI))
	if err != nil {
		_ = svc.Stop()
		return err
	}
	g.serverAPI = svc
	return nil
}

// serveServerRequest runs one server API request through handler.
func (g *Gateway) serveServerRequest(ctx context.Context, handler http.Handler, data []byte) schema.ServerResponse {
	req, target, e := parseServerRequest(data)
	if e != nil {
		return errorResponse(e)
	}
	r, err := http.NewRequestWithContext(context.WithValue(ctx, natsServerKey{}, true), req.Method, target, bytes.NewReader(req.Body))
	if err != nil {
		return errorResponse(schema.Errorf(schema.CodeBadRequest, "request: %v", err))
	}
	r.RemoteAddr = "nats"
	if req.User != "" {
		r.Header.Set(HeaderServerUser, req.User)
	}
	if len(req.Body) > 0 {
		r.Header.Set("Content-Type", "application/json")
	}
	w := &responseBuffer{header: make(http.Header)}
	handler.ServeHTTP(w, r)
	if w.overflow {
		return errorResponse(schema.Errorf(schema.CodeInternal, "the reply is over %d bytes", maxServerReply))
	}
	out := schema.ServerResponse{Status: w.status, Body: json.RawMessage("null")}
	if out.Status == 0 {
		out.Status = http.StatusOK
	}
	if body := bytes.TrimSpace(w.body.Bytes()); len(body) > 0 {
		if json.Valid(body) {
			out.Body = body
		} else {
			// Not JSON (no route of /v1/ answers so): as a JSON string.
			out.Body, _ = json.Marshal(string(body))
		}
	}
	return out
}

// parseServerRequest reads a server API request off NATS: its method, and its path
// and query as the request URI of a route under /v1/ other than /v1/ws.
func parseServerRequest(data []byte) (schema.ServerRequest, string, *schema.Error) {
	var req schema.ServerRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return req, "", schema.Errorf(schema.CodeBadRequest, `want {"method","path","user"?,"body"?}: %v`, err)
	}
	switch req.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return req, "", schema.Errorf(schema.CodeBadRequest, "method must be GET, POST, PUT, PATCH or DELETE, got %q", req.Method)
	}
	target, err := url.Parse(req.Path)
	if err != nil || target.Scheme != "" || target.Host != "" || target.Opaque != "" ||
		!strings.HasPrefix(target.Path, "/v1/") || path.Clean(target.Path) == "/v1/ws" {
		return req, "", schema.Errorf(schema.CodeBadRequest, "path must be a route under /v1/ (not /v1/ws), got %q", req.Path)
	}
	return req, target.RequestURI(), nil
}

func errorResponse(e *schema.Error) schema.ServerResponse {
	metricErrors.WithLabelValues(e.Code).Inc()
	body, _ := json.Marshal(map[string]schema.ErrorD{"error": {Code: e.Code, Message: e.Message}})
	return schema.ServerResponse{Status: e.HTTPStatus(), Body: body}
}

func (g *Gateway) respondServer(req micro.Request, resp schema.ServerResponse) {
	data, err := json.Marshal(resp)
	if err != nil {
		data, _ = json.Marshal(errorResponse(schema.Errorf(schema.CodeInternal, "the reply could not be encoded")))
	}
	if err := req.Respond(data); err != nil {
		g.hotWarn().Err(err).Msg("server API reply")
	}
}

// responseBuffer is the http.ResponseWriter of a server API request over NATS: it
// keeps the status and up to maxServerReply bytes of body.
type responseBuffer struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

func (b *responseBuffer) Header() http.Header { return b.header }

func (b *responseBuffer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *responseBuffer) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	if b.body.Len()+len(p) > maxServerReply {
		b.overflow = true
		return len(p), nil
	}
	return b.body.Write(p)
}
