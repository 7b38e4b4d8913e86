package cache

import (
	"context"
	"time"

	"github.com/laneim/laneim/store"
)

var _ store.MembersChecker = (*Cache)(nil)

// AreMembers implements store.MembersChecker: IsMember for a whole ingest batch. The
// first level answers what it holds; the rest costs one Redis MGET, and what Redis
// lacks one store query (when the store is a store.MembersChecker; one IsMember per
// pair otherwise). A batch's misses are not collapsed with other callers': the sends
// of a room all reach one ingest consumer, so two batches rarely miss the same pair at
// once.
func (c *Cache) AreMembers(ctx context.Context, pairs [][2]string) ([]bool, error) {
	out := make([]bool, len(pairs))
	var missing []int
	for i, p := range pairs {
		if v, ok := c.local.member.GetIfPresent(pair{p[0], p[1]}); ok {
			out[i] = v
		} else {
			missing = append(missing, i)
		}
	}
	hitsLocal[kindMember].Add(float64(len(pairs) - len(missing)))
	if len(missing) == 0 {
		return out, nil
	}
	missesLocal[kindMember].Add(float64(len(missing)))
	stamps := make([]stamp, len(missing))
	ids := make([][2]string, len(missing))
	for j, i := range missing {
		stamps[j] = c.local.stamp(kindMember, pairs[i][0], pairs[i][1])
		ids[j] = pairs[i]
	}

	values, found, redisOK := c.remote.mgetPairs(ctx, kindMember, ids)
	var load []int // indexes into missing
	for j, i := range missing {
		if redisOK && found[j] && (values[j] == "0" || values[j] == "1") {
			out[i] = values[j] == "1"
			setIfCurrent(c.local, c.local.member, pair{ids[j][0], ids[j][1]}, stamps[j], out[i])
		} else {
			load = append(load, j)
		}
	}
	if len(load) == 0 {
		return out, nil
	}

	loadIDs := make([][2]string, len(load))
	for n, j := range load {
		loadIDs[n] = ids[j]
	}
	start := time.Now()
	loaded, err := c.loadMembers(ctx, loadIDs)
	if err != nil {
		return nil, err
	}
	raws := make([]string, len(load))
	for n, j := range load {
		out[missing[j]] = loaded[n]
		raws[n] = "0"
		if loaded[n] {
			raws[n] = "1"
		}
		setIfCurrent(c.local, c.local.member, pair{ids[j][0], ids[j][1]}, stamps[j], loaded[n])
	}
	// Only when Redis answered the MGET: an error means do not fill.
	if redisOK {
		c.remote.fill(ctx, start, kindMember, loadIDs, raws)
	}
	return out, nil
}

func (c *Cache) loadMembers(ctx context.Context, pairs [][2]string) ([]bool, error) {
	if mc, ok := c.store.(store.MembersChecker); ok {
		return mc.AreMembers(ctx, pairs)
	}
	out := make([]bool, len(pairs))
	for i, p := range pairs {
		v, err := c.store.IsMember(ctx, p[0], p[1])
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
