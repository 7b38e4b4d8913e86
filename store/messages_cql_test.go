package store

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/laneim/laneim/schema"
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

// forgetRooms drops the bucket hints, so that the next reads are those of a store that
// has seen nothing of the rooms (the conformance suite reads both ways).
func (s *CQL) forgetRooms() {
	s.hintsMu.Lock()
	clear(s.hints)
	s.hintsMu.Unlock()
}

func TestCQLMessageStore(t *testing.T) {
	testMessageStore(t, openTestCQL)
}

// A write that failed part way left rows beyond the room's last seq, with a nonce
// pointing at one, written by a process whose clock runs an hour ahead. No read sees
// them, and the next Append assigns those seqs again and wins over them.
func TestCQLFailedWriteIsReplaced(t *testing.T) {
	ctx := context.Background()
	s := openTestCQL(t).(*CQL)
	appendRoom(t, s, "r", "n", 3)
	ahead := time.Now().Add(time.Hour).UnixMicro()
	for _, stale := range []struct {
		seq   int64
		nonce string
	}{{4, "x"}, {5, "y"}} {
		err := s.session.ContextQuery(ctx, cqlInsertMessage, nil).
			Bind("r", bucketOf(stale.seq), stale.seq, int64(1), "mallory", stale.nonce, []byte(`"stale"`)).
			WithTimestamp(ahead).ExecRelease()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.session.ContextQuery(ctx, cqlInsertNonce, nil).Bind("r", "mallory", "x", int64(4)).
		WithTimestamp(ahead).ExecRelease(); err != nil {
		t.Fatal(err)
	}

	if got, more, err := s.Range(ctx, "r", Query{Limit: 10}); err != nil || len(got) != 3 || more {
		t.Fatalf("before the next Append: %d messages more %v, %v; want the 3 stored", len(got), more, err)
	}
	if _, found, err := s.LookupNonce(ctx, "r", "mallory", "x"); err != nil || found {
		t.Fatalf("nonce of a failed write found %v, %v", found, err)
	}
	out, err := s.Append(ctx, []NewMessage{newMsg("r", "alice", "z", 50), newMsg("r", "mallory", "x", 51)})
	if err != nil {
		t.Fatal(err)
	}
	checkAppended(t, out, []appendWant{{4, 50, `{"text":"z"}`, true}, {5, 51, `{"text":"x"}`, true}})
	got, more, err := s.Range(ctx, "r", Query{After: 3, Ascending: true})
	if err != nil || more || len(got) != 2 {
		t.Fatalf("after the Append: %d messages more %v, %v", len(got), more, err)
	}
	if got[0].User != "alice" || string(got[0].Body) != `{"text":"z"}` || got[1].User != "mallory" || string(got[1].Body) != `{"text":"x"}` {
		t.Fatalf("the stale rows won: %+v %s, %+v %s", got[0], got[0].Body, got[1], got[1].Body)
	}
	if m, found, err := s.LookupNonce(ctx, "r", "mallory", "x"); err != nil || !found || m.Seq != 5 {
		t.Fatalf("LookupNonce x = seq %d found %v, %v; want 5", m.Seq, found, err)
	}
	// And the write after that one stays above them too.
	if out := appendRoom(t, s, "r", "later", 1); out[0].Seq != 6 {
		t.Fatalf("next seq %d, want 6", out[0].Seq)
	}
}

// A node that stops answers every call with the protocol's unavailable code within
// the caller's deadline, and the store carries on once the node is back.
func TestCQLNodeDown(t *testing.T) {
	node := testsvc.StartCassandra(t)
	t.Log(node)
	s := openTestCQLOn(t, []string{node.Addr()}, "laneim")
	appendRoom(t, s, "r", "n", 2)
	node.Stop()

	for name, call := range map[string]func(context.Context) error{
		"Append": func(ctx context.Context) error {
			_, err := s.Append(ctx, []NewMessage{newMsg("r", "alice", "down", 1)})
			return err
		},
		"Range": func(ctx context.Context) error {
			_, _, err := s.Range(ctx, "r", Query{})
			return err
		},
		"LastSeqs": func(ctx context.Context) error {
			_, err := s.LastSeqs(ctx, []string{"r", "s"})
			return err
		},
		"LookupNonce": func(ctx context.Context) error {
			_, _, err := s.LookupNonce(ctx, "r", "alice", "n1")
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := call(ctx)
		cancel()
		if !errors.Is(err, schema.ErrUnavailable) {
			t.Errorf("%s with the node down: %v, want the unavailable code", name, err)
		}
		if elapsed := time.Since(start); elapsed > 11*time.Second {
			t.Errorf("%s took %v", name, elapsed)
		}
	}

	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Log(node)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := s.Append(ctx, []NewMessage{newMsg("r", "alice", "back", 3)})
		cancel()
		if err == nil {
			if out[0].Seq != 3 || !out[0].New {
				t.Fatalf("first send after the restart: seq %d new %v, want 3 true", out[0].Seq, out[0].New)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover within a minute of the node's restart: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestOpenCQLOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts CQLOptions
		want string
	}{
		{"no hosts", CQLOptions{}, "no hosts"},
		{"keyspace", CQLOptions{Hosts: []string{"h"}, Keyspace: "Bad-Name"}, "keyspace"},
		{"consistency", CQLOptions{Hosts: []string{"h"}, Consistency: "MOST"}, "unknown consistency"},
		{"consistency any", CQLOptions{Hosts: []string{"h"}, Consistency: "any"}, "ANY"},
		{"replication", CQLOptions{Hosts: []string{"h"}, Replication: "3"}, "replication"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenCQL(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("OpenCQL(%+v) = %v, want an error mentioning %q", tt.opts, err, tt.want)
			}
		})
	}
}

// Large bodies of one room go as several single-partition batches: 30 of 200 KiB are
// 6 MB, past the 4 MB a mutation may hold with the test node's 8 MiB commit log
// segments (16 MB with Cassandra's default 32 MiB).
func TestCQLLargeBodies(t *testing.T) {
	ctx := context.Background()
	s := openTestCQL(t)
	body := json.RawMessage(`"` + strings.Repeat("x", 200<<10) + `"`)
	msgs := make([]NewMessage, 30)
	for i := range msgs {
		msgs[i] = NewMessage{Room: "r", User: "u", Nonce: strconv.Itoa(i), Ts: int64(i), Body: body}
	}
	out, err := s.Append(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if out[29].Seq != 30 {
		t.Fatalf("last seq %d, want 30", out[29].Seq)
	}
	got, _, err := s.Range(ctx, "r", Query{Limit: 30, Ascending: true})
	if err != nil || len(got) != 30 {
		t.Fatalf("read back %d messages, %v", len(got), err)
	}
	for _, m := range got {
		if len(m.Body) != len(body) {
			t.Fatalf("seq %d: body of %d bytes, want %d", m.Seq, len(m.Body), len(body))
		}
	}
}

// TestCQLEditsMigration: a keyspace whose messages table predates edits gets its
// columns at open, and its messages can be edited.
func TestCQLEditsMigration(t *testing.T) {
	hosts, keyspace := testsvc.CQL(t), testsvc.CQLKeyspace(t)
	cluster := gocql.NewCluster(hosts...)
	cluster.Timeout = 30 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE KEYSPACE ` + keyspace + ` WITH replication = ` + DefaultCQLReplication,
		`CREATE TABLE ` + keyspace + `.messages (room text, bucket bigint, seq bigint, ts bigint, sender text,
			nonce text, body blob, PRIMARY KEY ((room, bucket), seq)) WITH CLUSTERING ORDER BY (seq DESC)`,
	} {
		if err := session.Query(stmt).Exec(); err != nil {
			session.Close()
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	session.Close()

	s := openTestCQLOn(t, hosts, keyspace)
	ctx := context.Background()
	appendRoom(t, s, "r", "m", 2)
	got, err := s.Append(ctx, []NewMessage{editMsg("r", "alice", "e1", 2000, 1, `"new"`)})
	if err != nil || got[0].Seq != 3 || got[0].Err != nil {
		t.Fatalf("edit after the migration: %+v, %v", got, err)
	}
	checkLog(t, s, "r", []entryState{
		{`"new"`, schema.KindEdited, 2000},
		{`{"text":"m1"}`, schema.KindPlain, 0},
		{`"new"`, schema.KindEdit, 1},
	})
	// Opened again, there is nothing left to add.
	openTestCQLOn(t, hosts, keyspace)
}
