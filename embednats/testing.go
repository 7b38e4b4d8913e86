package embednats

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// StartTest starts an in-memory server without a listener for a test, shut down when
// tb ends.
func StartTest(tb testing.TB) *Server {
	tb.Helper()
	srv, err := Start(Options{Memory: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv
}

// ConnectTest starts a server as StartTest does and returns it with an in-process
// connection to it, closed when tb ends.
func ConnectTest(tb testing.TB) (*Server, *nats.Conn) {
	tb.Helper()
	srv := StartTest(tb)
	nc, err := srv.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return srv, nc
}
