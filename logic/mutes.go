package logic

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/laneim/laneim/schema"
	"github.com/laneim/laneim/subjects"
)

// The mute table: which users are muted in which rooms, as every send and edit is
// checked against it. Ingest handles some 20,000 sends a second, so the check is a
// map lookup here, not a store query (BenchmarkMutesCheck: about 7 µs and 4
// allocations for a batch of 256 sends in 16 rooms, under 30 ns a send): a room's mutes are loaded with one query (one
// for all the rooms of a batch missing here) and kept, "nobody" included, until a
// mute or unmute of the room is announced on im.cache.inval.room_sanctions, which
// every logic node hears, or muteTTL has passed. The node that writes a mute drops
// its own entry at once and announces it; `laneim cdc` announces what it reads in
// the MySQL binlog, so a row changed by hand is heard too. muteTTL bounds what a
// lost announcement leaves stale.

// muteTTL is how long a room's mutes are used before they are read again.
const muteTTL = 10 * time.Second

// muteKeep is how long an entry past muteTTL is kept: it answers when the store
// cannot (a send is not refused for the metadata store being away), and the sweep
// forgets it after.
const muteKeep = 6 * muteTTL

// mutes is logic's mute table.
type mutes struct {
	mu    sync.Mutex
	rooms map[string]roomMutes // guarded by mu
	// epoch advances with every drop (guarded by mu): a load that began before a
	// drop does not store what it read, which may predate the change dropped.
	epoch uint64
	swept time.Time // guarded by mu: the last sweep of entries past muteKeep
}

// roomMutes is one room's entry: user -> until (Unix ms, 0 for no end); nil when
// nobody is muted.
type roomMutes struct {
	users  map[string]int64
	loaded time.Time
}

func newMutes() *mutes {
	return &mutes{rooms: make(map[string]roomMutes)}
}

// get returns the entries of rooms that are fresh at now in held, the rooms to load
// in load (their stale entries, if any, in stale), and the epoch to store the load
// with.
func (m *mutes) get(rooms []string, now time.Time) (held, stale map[string]map[string]int64, load []string, epoch uint64) {
	held = make(map[string]map[string]int64, len(rooms))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, room := range rooms {
		e, ok := m.rooms[room]
		switch {
		case ok && now.Sub(e.loaded) < muteTTL:
			held[room] = e.users
		case ok && now.Sub(e.loaded) < muteKeep:
			if stale == nil {
				stale = make(map[string]map[string]int64)
			}
			stale[room] = e.users
			load = append(load, room)
		default:
			load = append(load, room)
		}
	}
	return held, stale, load, m.epoch
}

// put stores the mutes loaded for rooms at now, unless a drop came since epoch.
func (m *mutes) put(rooms []string, loaded map[string]map[string]int64, epoch uint64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.epoch != epoch {
		return
	}
	for _, room := range rooms {
		m.rooms[room] = roomMutes{users: loaded[room], loaded: now}
	}
	if now.Sub(m.swept) >= muteTTL {
		m.swept = now
		for room, e := range m.rooms {
			if now.Sub(e.loaded) >= muteKeep {
				delete(m.rooms, room)
			}
		}
	}
}

// drop forgets room's mutes, every room's for "".
func (m *mutes) drop(room string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	if room == "" {
		clear(m.rooms)
		return
	}
	delete(m.rooms, room)
}

// roomMutes returns the mutes of each of rooms active now (rooms without any may be
// absent), from the table, loading what it lacks with one store query.
func (l *Logic) roomMutes(ctx context.Context, rooms []string, now time.Time) (map[string]map[string]int64, error) {
	held, stale, load, epoch := l.mutes.get(rooms, now)
	if len(load) == 0 {
		return held, nil
	}
	loaded, err := l.meta.RoomMutes(ctx, load, now.UnixMilli())
	if err != nil {
		if len(stale) < len(load) {
			return nil, err
		}
		// Every room missing has an entry past muteTTL: it answers until the store
		// is back (or muteKeep has passed).
		metricMuteLoadErrors.Inc()
		l.hotWarn(err, "mutes could not be read: the ones read before apply")
		for room, users := range stale {
			held[room] = users
		}
		return held, nil
	}
	l.mutes.put(load, loaded, epoch, now)
	for _, room := range load {
		held[room] = loaded[room]
	}
	return held, nil
}

// hotWarn logs a warning of the ingest path, at most one a second after a burst.
func (l *Logic) hotWarn(err error, msg string) {
	if l.hotLog.Allow() {
		l.cfg.Logger.Warn().Err(err).Int64("suppressed", l.hotLog.Suppressed()).Msg(msg)
	}
}

// mutedUntil reports whether user is muted in room at now, given the room's mutes,
// and until when (0: no end).
func mutedUntil(users map[string]int64, user string, now int64) (bool, int64) {
	until, ok := users[user]
	if !ok || (until != 0 && until <= now) {
		return false, 0
	}
	return true, until
}

// mutedError is the refusal of a muted user's send or edit.
func mutedError(room string, until int64) *schema.Error {
	if until == 0 {
		return schema.Errorf(schema.CodeMuted, "muted in room %s until unmuted", room)
	}
	return schema.Errorf(schema.CodeMuted, "muted in room %s until %s", room,
		time.UnixMilli(until).UTC().Format(time.RFC3339))
}

// announceMutes drops room's mutes here and tells every logic node to drop theirs.
// A failed announcement is logged: the other nodes read the room again within
// muteTTL.
func (l *Logic) announceMutes(room, user, change string) {
	l.mutes.drop(room)
	data, err := json.Marshal(schema.Inval{Table: schema.TableSanctions,
		Keys: []schema.InvalKey{{Room: room, User: user, Change: change}}})
	if err == nil {
		err = l.nc.Publish(subjects.CacheInvalT(schema.TableSanctions), data)
	}
	if err != nil {
		l.cfg.Logger.Warn().Err(err).Str("room", room).Msg("announcing a mute failed: other logic nodes apply it within the mute table's TTL")
	}
}

// listenMutes subscribes to the announcements of changed sanctions: every node drops
// the rooms' mutes it holds.
func (l *Logic) listenMutes() (*nats.Subscription, error) {
	return l.nc.Subscribe(subjects.CacheInvalT(schema.TableSanctions), func(m *nats.Msg) {
		var inv schema.Inval
		if err := json.Unmarshal(m.Data, &inv); err != nil {
			// Unreadable: whatever it named is dropped with everything else.
			l.mutes.drop("")
			return
		}
		for _, key := range inv.Keys {
			l.mutes.drop(key.Room)
		}
	})
}
