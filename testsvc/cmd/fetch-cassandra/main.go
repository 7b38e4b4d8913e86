// Command fetch-cassandra resolves the Apache Cassandra jars the CQL store's tests run
// (testsvc.FetchCassandra) into their cache, so that CI fetches them once before the
// tests rather than inside the first test that needs them. It prints the jar
// directory.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/laneim/laneim/testsvc"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	lib, err := testsvc.FetchCassandra(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fetch-cassandra:", err)
		os.Exit(1)
	}
	fmt.Printf("Cassandra %s jars in %s (%.1fs)\n", testsvc.CassandraVersion, lib, time.Since(start).Seconds())
}
