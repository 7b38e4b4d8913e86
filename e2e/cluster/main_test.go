// Package cluster holds the acceptance tests of cluster mode: a real 3-node NATS
// cluster (nats-server processes routed on loopback, JetStream R3), MariaDB, Redis and
// Cassandra, and gateways, logic nodes and pushers as separate processes of the built
// laneim binary (package testsvc/cluster), driven by the Go client over real
// WebSockets. They need the servers testsvc starts and skip without them, unless
// LANEIM_REQUIRE_SERVICES=1.
package cluster

import (
	"testing"

	"github.com/laneim/laneim/testsvc"
)

// TestMain stops the servers testsvc shares among the package's tests.
func TestMain(m *testing.M) { testsvc.Main(m) }
