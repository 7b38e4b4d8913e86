// Package nodes is laneIM's discovery: every node keeps an entry in the NATS KV bucket
// im_nodes (id, role, address, connection count, start time), refreshed well inside
// the bucket's TTL. A node that dies stops refreshing and its entry expires; the
// bucket's limit markers make watchers (`nats kv watch im_nodes`) see the expiry as a
// delete, so a dead node disappears from every view without anyone cleaning up.
package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/subjects"
)

// Info is one node's entry.
type Info struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Address     string    `json:"address,omitempty"`
	Connections int       `json:"connections"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
}

// Key is the entry's key: <role>.<id>.
func (i Info) Key() string { return i.Role + "." + i.ID }

// Config configures a registration. The zero value means the defaults.
type Config struct {
	// TTL is how long an entry outlives its node. Default 15s.
	TTL time.Duration
	// Connections reports the node's current connection count; nil reports 0.
	Connections func() int
	// Replicas of the im_nodes bucket if this node creates it. Default 1.
	Replicas int
	Logger   zerolog.Logger
}

// Bucket opens (creating if needed, with replicas) the im_nodes bucket with entries
// living ttl. Nodes starting together may race to create it: the loser opens the
// winner's.
func Bucket(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, subjects.BucketNodes)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         subjects.BucketNodes,
			Description:    "laneIM live nodes",
			History:        1,
			TTL:            ttl,
			LimitMarkerTTL: ttl,
			Replicas:       max(replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, subjects.BucketNodes)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", subjects.BucketNodes, err)
	}
	return kv, nil
}

// Registration keeps one node's entry fresh until Stop.
type Registration struct {
	stop context.CancelFunc
	done sync.WaitGroup
}

// Register puts info in im_nodes and refreshes it every TTL/3 until Stop, which
// deletes it.
func Register(ctx context.Context, js jetstream.JetStream, info Info, cfg Config) (*Registration, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	kv, err := Bucket(ctx, js, cfg.TTL, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	put := func(ctx context.Context) error {
		if cfg.Connections != nil {
			info.Connections = cfg.Connections()
		}
		info.Updated = time.Now().UTC()
		data, _ := json.Marshal(info)
		_, err := kv.Put(ctx, info.Key(), data)
		return err
	}
	if err := put(ctx); err != nil {
		return nil, fmt.Errorf("register %s: %w", info.Key(), err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Registration{stop: cancel}
	r.done.Go(func() {
		t := time.NewTicker(cfg.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = kv.Delete(ctx, info.Key())
				cancel()
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(runCtx, cfg.TTL/3)
				if err := put(ctx); err != nil && runCtx.Err() == nil {
					cfg.Logger.Warn().Err(err).Str("node", info.Key()).Msg("refresh node entry")
				}
				cancel()
			}
		}
	})
	return r, nil
}

// Stop stops refreshing and deletes the entry.
func (r *Registration) Stop() {
	r.stop()
	r.done.Wait()
}

// List returns the live nodes.
func List(ctx context.Context, js jetstream.JetStream) ([]Info, error) {
	kv, err := js.KeyValue(ctx, subjects.BucketNodes)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Info
	for key := range lister.Keys() {
		entry, err := kv.Get(ctx, key)
		if err != nil {
			continue // expired meanwhile
		}
		var info Info
		if json.Unmarshal(entry.Value(), &info) == nil {
			out = append(out, info)
		}
	}
	return out, nil
}
