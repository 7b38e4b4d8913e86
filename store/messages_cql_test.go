package store

import (
	"context"
	"testing"
	"time"

	"github.com/laneim/laneim/testsvc"
)

// openTestCQL opens a CQL store on a new keyspace of the shared Cassandra node.
func openTestCQL(t *testing.T) MessageStore {
	t.Helper()
	return openTestCQLOn(t, testsvc.CQL(t), testsvc.CQLKeyspace(t))
}

func openTestCQLOn(t testing.TB, hosts []string, keyspace string) *CQL {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := OpenCQL(ctx, CQLOptions{Hosts: hosts, Keyspace: keyspace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCQLMessageStore(t *testing.T) {
	testMessageStore(t, openTestCQL)
}
