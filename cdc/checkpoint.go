package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/laneim/laneim/subjects"
)

// Position is a place in the server's binlog: the next event to read.
type Position struct {
	File string `json:"file"`
	Pos  uint32 `json:"pos"`
}

func (p Position) String() string { return fmt.Sprintf("%s:%d", p.File, p.Pos) }

// checkpoint is the value of im_cdc's position key.
type checkpoint struct {
	Position
	// Server is the address the position was read from: positions of another
	// server mean nothing here, and a reader refuses them rather than skip or replay
	// at random.
	Server string    `json:"server"`
	Saved  time.Time `json:"saved"`
}

func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another process created it meanwhile.
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// loadCheckpoint returns the checkpointed position; ok is false when there is none.
func loadCheckpoint(ctx context.Context, kv jetstream.KeyValue) (checkpoint, bool, error) {
	entry, err := kv.Get(ctx, subjects.CDCPositionKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(entry.Value(), &cp); err != nil || cp.File == "" {
		return checkpoint{}, false, fmt.Errorf("checkpoint %q in %s is not a binlog position", entry.Value(), subjects.BucketCDC)
	}
	return cp, true, nil
}

func saveCheckpoint(ctx context.Context, kv jetstream.KeyValue, cp checkpoint) error {
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, subjects.CDCPositionKey, data); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", cp.Position, err)
	}
	metricCheckpoints.Inc()
	return nil
}
