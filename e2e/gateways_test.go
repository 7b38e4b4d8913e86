package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/gateway"
)

// TestGatewaysList: every gateway answers GET /v1/gateways without a token with both
// gateways' base URLs, and the counts follow the connections (within the discovery
// refresh and the cache's second).
func TestGatewaysList(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	get := func(i int) gateway.GatewayList {
		t.Helper()
		resp, err := http.Get(s.URL(i) + "/v1/gateways")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("gateway %d: status %d", i, resp.StatusCode)
		}
		var list gateway.GatewayList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		return list
	}
	urls := func(list gateway.GatewayList) []string {
		var out []string
		for _, g := range list.Gateways {
			out = append(out, g.URL)
		}
		slices.Sort(out)
		return out
	}
	want := []string{s.URL(0), s.URL(1)}
	slices.Sort(want)
	for i := range 2 {
		if got := urls(get(i)); !slices.Equal(got, want) {
			t.Fatalf("gateway %d lists %v, want %v", i, got, want)
		}
	}

	// Three connections on gateway 1: it ends up listed with 3, after gateway 0.
	for range 3 {
		connectTo(t, s, 1, "alice")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := get(0)
		if len(list.Gateways) == 2 && list.Gateways[1].URL == s.URL(1) && list.Gateways[1].Connections == 3 &&
			list.Gateways[0].Connections == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections not reflected: %+v", list)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
