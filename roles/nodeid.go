package roles

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/laneim/laneim/configs"
)

// unsafeID matches what a node id cannot hold: it is a NATS subject token and a file
// name.
var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// NodeID returns the id of this process of role: cfg.NodeID when set, else the one
// kept in cfg.Data for role, else a new one (host-role-random) which it keeps there;
// without a data dir, a new one each start.
// A restarted process is the same node: its gateway keeps its ack subject and entry,
// its partitions come back to it. Derived ids are kept per data dir, so two processes
// of a role on one machine need their own (release unlocks it).
func NodeID(cfg configs.Config, role string) (id string, release func(), err error) {
	if cfg.NodeID != "" {
		return cfg.NodeID, func() {}, nil
	}
	if cfg.Data == "" {
		return newNodeID(role), func() {}, nil
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return "", nil, fmt.Errorf("data dir: %w", err)
	}
	release, err = Lock(filepath.Join(cfg.Data, "node-"+role+".lock"))
	if err != nil {
		return "", nil, fmt.Errorf("%w: give each %s on this machine its own %s, or set %s",
			err, role, configs.EnvName("data"), configs.EnvName("node_id"))
	}
	path := filepath.Join(cfg.Data, "node-"+role+".id")
	data, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(data)); id != "" && !unsafeID.MatchString(id) && len(id) <= 64 {
			return id, release, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		release()
		return "", nil, fmt.Errorf("node id: %w", err)
	}
	id = newNodeID(role)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		release()
		return "", nil, fmt.Errorf("node id: %w", err)
	}
	return id, release, nil
}

// newNodeID is host-role-random, at most 64 characters.
func newNodeID(role string) string {
	host, _ := os.Hostname()
	host = strings.Trim(unsafeID.ReplaceAllString(host, "-"), "-")
	if host == "" {
		host = "node"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%.40s-%s-%s", host, role, hex.EncodeToString(b[:]))
}
