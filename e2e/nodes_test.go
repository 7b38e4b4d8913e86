package e2e

import (
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/subjects"
)

// TestNodesRegistered: every role of the stack is discoverable in im_nodes, and a
// gateway's entry carries its address.
func TestNodesRegistered(t *testing.T) {
	s := startStack(t, t.TempDir(), func(c *configs.Config) { c.Gateways = 2 })
	nc, err := s.Connect(subjects.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	list, err := nodes.List(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, n := range list {
		roles = append(roles, n.Role)
		if n.Role == "gateway" && n.Address != s.Addrs[0] && n.Address != s.Addrs[1] {
			t.Errorf("gateway %s has address %q", n.ID, n.Address)
		}
	}
	sort.Strings(roles)
	if got := strings.Join(roles, ","); got != "gateway,gateway,logic,pusher" {
		t.Fatalf("roles %s", got)
	}
}
