package gateway

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/schema"
)

// gatewaysTTL is how long GET /v1/gateways answers from its last read of im_nodes:
// clients ask it at every (re)connect, and a thundering herd after a gateway dies
// must not become one KV listing per client.
const gatewaysTTL = time.Second

// GatewayEntry is one live gateway in GET /v1/gateways.
type GatewayEntry struct {
	// URL is the gateway's public base URL: its WebSocket endpoint is URL + /v1/ws
	// (with ws for http, wss for https).
	URL         string `json:"url"`
	Connections int    `json:"connections"`
}

// GatewayList is what GET /v1/gateways answers.
type GatewayList struct {
	Gateways []GatewayEntry `json:"gateways"`
}

// gatewaysCache holds the last answer of GET /v1/gateways.
type gatewaysCache struct {
	// fetch serializes the reads of im_nodes, so that one read serves every request
	// that finds the cache stale at once. Held during a read; never with mu.
	fetch sync.Mutex
	mu    sync.Mutex
	at    time.Time   // guarded by mu: when list was read
	list  GatewayList // guarded by mu
}

func (c *gatewaysCache) fresh() (GatewayList, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.list, !c.at.IsZero() && time.Since(c.at) < gatewaysTTL
}

// gateways answers GET /v1/gateways: the live gateways' public URLs with their
// connection counts, from im_nodes, for clients to pick one (the least loaded) and
// to move to another when theirs goes. Public: no token.
func (g *Gateway) gateways(w http.ResponseWriter, r *http.Request) {
	list, err := g.liveGateways(r.Context())
	if err != nil {
		writeError(w, schema.Errorf(schema.CodeUnavailable, "live gateways: %v", err))
		return
	}
	w.Header().Set("Cache-Control", "max-age=1")
	writeJSON(w, http.StatusOK, list)
}

func (g *Gateway) liveGateways(ctx context.Context) (GatewayList, error) {
	c := &g.gatewayList
	if list, ok := c.fresh(); ok {
		return list, nil
	}
	c.fetch.Lock()
	defer c.fetch.Unlock()
	if list, ok := c.fresh(); ok {
		return list, nil // read by the request that held fetch before
	}
	list := GatewayList{Gateways: []GatewayEntry{}}
	if g.cfg.Nodes != nil {
		ctx, cancel := context.WithTimeout(ctx, g.cfg.RequestTimeout)
		defer cancel()
		all, err := g.cfg.Nodes(ctx)
		if err != nil {
			return GatewayList{}, err
		}
		list.Gateways = gatewayEntries(all)
	}
	c.mu.Lock()
	c.at, c.list = time.Now(), list
	c.mu.Unlock()
	return list, nil
}

// gatewayEntries picks the gateways of nodes, least connections first. A gateway
// registers its public base URL as its address; a bare host:port is read as
// http://host:port. One without an address cannot be reached and is left out.
func gatewayEntries(all []nodes.Info) []GatewayEntry {
	out := []GatewayEntry{}
	for _, n := range all {
		if n.Role != "gateway" || n.Address == "" {
			continue
		}
		url := n.Address
		if !strings.Contains(url, "://") {
			url = "http://" + url
		}
		out = append(out, GatewayEntry{URL: strings.TrimRight(url, "/"), Connections: n.Connections})
	}
	slices.SortFunc(out, func(a, b GatewayEntry) int {
		return cmp.Or(cmp.Compare(a.Connections, b.Connections), strings.Compare(a.URL, b.URL))
	})
	return out
}
