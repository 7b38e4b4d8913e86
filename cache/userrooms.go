package cache

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/laneim/laneim/store"
)

// userRoomsLoad is a page of a user's rooms as loaded: the page without names, and
// the rooms with their names when they came from the store.
type userRoomsLoad struct {
	page  userPage
	rooms []store.UserRoom // nil when the page came from Redis
}

// UserRooms implements store.MetaStore. The page (room ids and read states) is cached
// under the user, the names under each room, and joined here: the names missing from
// the first level are read from Redis in one MGET, and if some are missing there too the
// page is read from the store again, which has them all.
func (c *Cache) UserRooms(ctx context.Context, user, after string, limit int) ([]store.UserRoom, bool, error) {
	pk := pageKey{after, limit}
	page, ok := getPage(c.local.userPages, user, pk)
	if ok {
		hitsLocal[kindUserPages].Inc()
	} else {
		missesLocal[kindUserPages].Inc()
		s := c.local.stamp(kindUserPages, user, "")
		load, err := flight(ctx, c, kindUserPages, user, after, strconv.Itoa(limit), s, func(ctx context.Context) (userRoomsLoad, error) {
			var p userPage
			raw, state := c.remote.getPage(ctx, kindUserPages, user, pk)
			if state == redisHit && json.Unmarshal([]byte(raw), &p) == nil && len(p.Rooms) == len(p.ReadSeqs) {
				addPage(c.local, c.local.userPages, user, pk, s, p)
				return userRoomsLoad{page: p}, nil
			}
			return c.userRoomsFromStore(ctx, user, pk, s, state)
		})
		if err != nil {
			return nil, false, err
		}
		if load.rooms != nil {
			// Callers that shared the load each get their own copy.
			return slices.Clone(load.rooms), load.page.More, nil
		}
		page = load.page
	}
	rooms, complete := c.joinNames(ctx, page)
	if complete {
		return rooms, page.More, nil
	}
	s := c.local.stamp(kindUserPages, user, "")
	load, err := flight(ctx, c, kindUserPages, user, after, strconv.Itoa(limit)+"+names", s, func(ctx context.Context) (userRoomsLoad, error) {
		return c.userRoomsFromStore(ctx, user, pk, s, redisMiss)
	})
	if err != nil {
		return nil, false, err
	}
	return slices.Clone(load.rooms), load.page.More, nil
}

// userRoomsFromStore reads a page of user's rooms from the store and fills both levels
// with the page and the names (Redis only when state says it was a miss there).
func (c *Cache) userRoomsFromStore(ctx context.Context, user string, pk pageKey, s stamp, state redisState) (userRoomsLoad, error) {
	names := c.local.stamp(kindName, "", "")
	start := time.Now()
	rooms, more, err := c.store.UserRooms(ctx, user, pk.after, pk.limit)
	if err != nil {
		return userRoomsLoad{}, err
	}
	if rooms == nil {
		rooms = []store.UserRoom{}
	}
	p := userPage{Rooms: make([]string, len(rooms)), ReadSeqs: make([]int64, len(rooms)), More: more}
	byRoom := make(map[string]string, len(rooms))
	for i, r := range rooms {
		p.Rooms[i], p.ReadSeqs[i] = r.Room, r.ReadSeq
		byRoom[r.Room] = r.Name
		setIfCurrent(c.local, c.local.name, r.Room, names, r.Name)
	}
	if state == redisMiss {
		data, _ := json.Marshal(p)
		c.remote.fillPage(ctx, start, kindUserPages, user, pk, string(data), byRoom)
	}
	addPage(c.local, c.local.userPages, user, pk, s, p)
	return userRoomsLoad{page: p, rooms: rooms}, nil
}

// joinNames returns page's rooms with their names, and whether it found them all.
func (c *Cache) joinNames(ctx context.Context, page userPage) ([]store.UserRoom, bool) {
	rooms := make([]store.UserRoom, len(page.Rooms))
	var missing []int
	for i, id := range page.Rooms {
		rooms[i] = store.UserRoom{Room: id, ReadSeq: page.ReadSeqs[i]}
		if name, ok := c.local.name.GetIfPresent(id); ok {
			rooms[i].Name = name
		} else {
			missing = append(missing, i)
		}
	}
	hitsLocal[kindName].Add(float64(len(rooms) - len(missing)))
	if len(missing) == 0 {
		return rooms, true
	}
	missesLocal[kindName].Add(float64(len(missing)))
	s := c.local.stamp(kindName, "", "")
	ids := make([]string, len(missing))
	for j, i := range missing {
		ids[j] = rooms[i].Room
	}
	values, found, ok := c.remote.mget(ctx, kindName, ids)
	if !ok {
		return nil, false
	}
	complete := true
	for j, i := range missing {
		if !found[j] {
			complete = false
			continue
		}
		rooms[i].Name = values[j]
		setIfCurrent(c.local, c.local.name, ids[j], s, values[j])
	}
	return rooms, complete
}
