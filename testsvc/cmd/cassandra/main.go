// Command cassandra runs the single-node Apache Cassandra the CQL store's tests use
// (testsvc), on a private loopback port and a temporary data dir, until interrupted:
// a CQL server to try `LANEIM_CQL_HOSTS` with, or to benchmark the CQL store against,
// on a machine with only Java 17 and Maven. It prints the host:port to give laneIM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/laneim/laneim/testsvc"
)

func main() {
	c, err := testsvc.RunCassandra()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cassandra:", err)
		os.Exit(1)
	}
	fmt.Printf("Cassandra %s on %s (LANEIM_CQL_HOSTS=%s); Ctrl-C stops it and removes its data\n",
		testsvc.CassandraVersion, c.Addr(), c.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	c.Close()
}
