package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/subjects"
)

// onlineSet is who is online in the whole cluster, as this gateway knows it: a user
// is online while it has an identified connection on some gateway.
//
// Each gateway owns its own users and tells the others: it publishes on
// im.presence.gw.<itself> a delta (the users that came online and went offline, with
// the next seq) at most every presenceFlush, and a heartbeat with its last seq when it
// has nothing to say for a heartbeat interval. Every gateway keeps every other's set
// in memory, built from a snapshot (asked on im.presence.sync.<peer>, answered on
// im.presence.snap.<asker>) and the deltas that follow it. A delta or heartbeat whose
// seq shows one missing, a new epoch (the peer restarted), a NATS reconnect or a
// dropped message ask for a fresh snapshot: the set is exact again one round trip
// later. A peer unheard of for the timeout is dead, and its users go offline: a
// gateway that stops cleanly says bye, and its users go at once.
//
// Costs, for a cluster of U online users on G gateways: each gateway holds U ids (about
// 100 bytes each: 100 MB for a million users), and every change is one id in one
// delta, received by every gateway; a heartbeat is G messages a second cluster-wide.
// Nothing is per room, so a user of 10,000 rooms coming online costs what a user of
// one does.
type onlineSet struct {
	nc        *nats.Conn     // set once at construction
	self      string         // set once: this gateway's id
	epoch     string         // set once: random, this process's
	heartbeat time.Duration  // set once
	timeout   time.Duration  // set once
	log       zerolog.Logger // set once
	ch        chan *nats.Msg // set once: the presence subjects' messages

	// mu is shared with the room presence (presence.go), whose state follows every
	// flip of a user under the same lock. It is a leaf: nothing else is locked under it
	// but a connection's writeMu (presence.go enqueues events).
	mu *sync.Mutex
	// onFlip is told, under mu, every user coming online (true) or going offline in
	// the cluster. Set once before start.
	onFlip func(user string, online bool)

	count      map[string]int32     // guarded by mu: user -> gateways it is online on, this one included
	localConns map[string]int       // guarded by mu: this gateway's identified connections, by user
	published  map[string]struct{}  // guarded by mu: this gateway's users as of seq
	pending    map[string]struct{}  // guarded by mu: users whose local state may differ from published
	seq        uint64               // guarded by mu: the last delta published
	lastSent   time.Time            // guarded by mu: when this gateway last published on its subject
	peers      map[string]*peer     // guarded by mu: the other gateways
	subs       []*nats.Subscription // guarded by mu: set by start
}

// peer is another gateway's online users. Guarded by onlineSet.mu.
type peer struct {
	epoch  string
	seq    uint64
	users  map[string]struct{}
	synced bool      // users is its set as of seq; otherwise a snapshot is awaited
	asked  time.Time // when the last snapshot was asked for
	heard  time.Time // when it last published on its subject
	// snap collects a snapshot's parts; snapSeq is its seq, snapNext the part
	// expected next.
	snap     []string
	snapSeq  uint64
	snapNext int
	// buffered holds the deltas that came while a snapshot was awaited, in order.
	buffered []presenceMsg
}

// presenceFlush is how often a gateway publishes its changes: a user's connection
// becomes an online flip on other gateways within about this much (plus NATS).
const presenceFlush = 200 * time.Millisecond

// maxBuffered bounds the deltas held for a peer while its snapshot is awaited; past it
// they are dropped and the snapshot asked again.
const maxBuffered = 256

func newOnlineSet(nc *nats.Conn, self string, heartbeat, timeout time.Duration, mu *sync.Mutex, log zerolog.Logger) *onlineSet {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &onlineSet{
		nc: nc, self: self, epoch: hex.EncodeToString(b[:]), heartbeat: heartbeat, timeout: timeout,
		log: log, mu: mu, ch: make(chan *nats.Msg, controlQueue),
		onFlip:     func(string, bool) {},
		count:      make(map[string]int32),
		localConns: make(map[string]int),
		published:  make(map[string]struct{}),
		pending:    make(map[string]struct{}),
		peers:      make(map[string]*peer),
	}
}

// start subscribes to the presence subjects (flushed within ctx), announces this
// gateway (peers ask its snapshot on hearing it) and runs until runCtx ends.
func (o *onlineSet) start(ctx, runCtx context.Context, wg *sync.WaitGroup) error {
	var subs []*nats.Subscription
	for _, subject := range []string{subjects.PresenceGateways, subjects.PresenceSyncT(o.self), subjects.PresenceSnapT(o.self)} {
		sub, err := o.nc.ChanSubscribe(subject, o.ch)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	o.mu.Lock()
	o.subs = subs
	o.mu.Unlock()
	if err := o.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	o.sendHeartbeat(time.Now())
	wg.Go(func() { o.run(runCtx) })
	return nil
}

func (o *onlineSet) run(ctx context.Context) {
	flush := time.NewTicker(presenceFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-o.ch:
			o.handle(m)
		case now := <-flush.C:
			o.publishChanges(now)
			o.sendHeartbeat(now)
			o.sweep(now)
		}
	}
}

// stop says bye, so that the peers drop this gateway's users at once rather than
// after the timeout. Called once every connection is closed.
func (o *onlineSet) stop() {
	o.mu.Lock()
	subs := o.subs
	o.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	o.publish(subjects.PresenceGatewayT(o.self), presenceMsg{Kind: presenceBye, GW: o.self, Epoch: o.epoch})
	_ = o.nc.Flush()
}

// localUp counts an identified connection of user on this gateway.
func (o *onlineSet) localUp(user string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.localConns[user]++
	if o.localConns[user] == 1 {
		o.pending[user] = struct{}{}
		o.addLocked(user)
	}
}

// localDown forgets one of user's connections counted by localUp.
func (o *onlineSet) localDown(user string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.localConns[user]
	if !ok {
		return
	}
	if n > 1 {
		o.localConns[user] = n - 1
		return
	}
	delete(o.localConns, user)
	o.pending[user] = struct{}{}
	o.removeLocked(user)
}

// isOnlineLocked reports whether user is online on some gateway. Callers hold mu.
func (o *onlineSet) isOnlineLocked(user string) bool { return o.count[user] > 0 }

func (o *onlineSet) addLocked(user string) {
	o.count[user]++
	if o.count[user] == 1 {
		metricPresenceChanges.WithLabelValues("online").Inc()
		o.onFlip(user, true)
	}
}

func (o *onlineSet) removeLocked(user string) {
	n := o.count[user] - 1
	if n > 0 {
		o.count[user] = n
		return
	}
	if _, was := o.count[user]; !was {
		return
	}
	delete(o.count, user)
	metricPresenceChanges.WithLabelValues("offline").Inc()
	o.onFlip(user, false)
}

// publishChanges publishes this gateway's changes since the last delta: one delta per
// presenceChunk users, each with the next seq.
func (o *onlineSet) publishChanges(now time.Time) {
	o.mu.Lock()
	if len(o.pending) == 0 {
		o.mu.Unlock()
		return
	}
	var on, off []string
	for user := range o.pending {
		_, local := o.localConns[user]
		_, published := o.published[user]
		switch {
		case local && !published:
			on = append(on, user)
			o.published[user] = struct{}{}
		case !local && published:
			off = append(off, user)
			delete(o.published, user)
		}
	}
	clear(o.pending)
	var msgs []presenceMsg
	for len(on)+len(off) > 0 {
		m := presenceMsg{Kind: presenceDelta, GW: o.self, Epoch: o.epoch}
		n := min(len(on), presenceChunk)
		m.On, on = on[:n], on[n:]
		n = min(len(off), presenceChunk-n)
		m.Off, off = off[:n], off[n:]
		o.seq++
		m.Seq = o.seq
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 {
		o.lastSent = now
	}
	o.mu.Unlock()
	// Only this goroutine publishes on the gateway's subject: in seq order.
	for _, m := range msgs {
		o.publish(subjects.PresenceGatewayT(o.self), m)
	}
}

// sendHeartbeat publishes the last seq when nothing was published for a heartbeat.
func (o *onlineSet) sendHeartbeat(now time.Time) {
	o.mu.Lock()
	if now.Sub(o.lastSent) < o.heartbeat {
		o.mu.Unlock()
		return
	}
	o.lastSent = now
	m := presenceMsg{Kind: presenceHeartbeat, GW: o.self, Epoch: o.epoch, Seq: o.seq}
	o.mu.Unlock()
	o.publish(subjects.PresenceGatewayT(o.self), m)
}

func (o *onlineSet) publish(subject string, m presenceMsg) {
	if err := o.nc.Publish(subject, encodePresence(m)); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		metricPresenceErrors.WithLabelValues("publish").Inc()
	}
}

// handle applies a message of another gateway.
func (o *onlineSet) handle(msg *nats.Msg) {
	m, err := decodePresence(msg.Data)
	if err != nil {
		metricPresenceErrors.WithLabelValues("malformed").Inc()
		return
	}
	if m.GW == o.self {
		return // this gateway's own deltas, which it applied as they happened
	}
	now := time.Now()
	var out []func()
	o.mu.Lock()
	switch m.Kind {
	case presenceSync:
		out = append(out, o.snapshotLocked(m.GW))
	case presenceSnap:
		if p := o.peers[m.GW]; p != nil && p.epoch == m.Epoch && !p.synced {
			out = append(out, o.snapPartLocked(m.GW, p, m, now)...)
		}
	case presenceBye:
		if p := o.peers[m.GW]; p != nil && p.epoch == m.Epoch {
			o.dropPeerLocked(m.GW, p)
		}
	case presenceDelta, presenceHeartbeat:
		p := o.peers[m.GW]
		if p == nil || p.epoch != m.Epoch {
			if p != nil {
				o.dropPeerLocked(m.GW, p)
			}
			p = &peer{epoch: m.Epoch, users: make(map[string]struct{})}
			o.peers[m.GW] = p
			out = append(out, o.askLocked(m.GW, p, now))
		}
		p.heard = now
		out = append(out, o.applyLocked(m.GW, p, m, now)...)
	}
	o.mu.Unlock()
	for _, f := range out {
		if f != nil {
			f()
		}
	}
}

// applyLocked applies a delta or heartbeat of peer gw, or holds it while a snapshot is
// awaited. It returns the publications to make after unlocking.
func (o *onlineSet) applyLocked(gw string, p *peer, m presenceMsg, now time.Time) []func() {
	if !p.synced {
		if m.Kind == presenceDelta {
			if len(p.buffered) >= maxBuffered {
				p.buffered = nil
				return []func(){o.askLocked(gw, p, now)}
			}
			p.buffered = append(p.buffered, m)
		}
		return nil
	}
	switch {
	case m.Seq <= p.seq && m.Kind == presenceDelta:
		return nil // already applied
	case m.Kind == presenceHeartbeat && m.Seq == p.seq:
		return nil
	case m.Kind == presenceDelta && m.Seq == p.seq+1:
		for _, user := range m.On {
			if _, ok := p.users[user]; !ok {
				p.users[user] = struct{}{}
				o.addLocked(user)
			}
		}
		for _, user := range m.Off {
			if _, ok := p.users[user]; ok {
				delete(p.users, user)
				o.removeLocked(user)
			}
		}
		p.seq = m.Seq
		return nil
	}
	// A seq went missing (or the peer's heartbeat is behind what it said, which a
	// restart under the same epoch cannot do): the set is read again. Its users stay
	// as they are meanwhile, so only real changes flip.
	metricPresenceResyncs.WithLabelValues("gap").Inc()
	p.synced = false
	if m.Kind == presenceDelta {
		p.buffered = append(p.buffered, m)
	}
	return []func(){o.askLocked(gw, p, now)}
}

// askLocked asks peer gw for its whole set.
func (o *onlineSet) askLocked(gw string, p *peer, now time.Time) func() {
	p.synced, p.asked, p.snap, p.snapNext = false, now, nil, 0
	m := presenceMsg{Kind: presenceSync, GW: o.self}
	return func() { o.publish(subjects.PresenceSyncT(gw), m) }
}

// snapshotLocked answers asker with this gateway's set as of seq, in parts.
func (o *onlineSet) snapshotLocked(asker string) func() {
	users := make([]string, 0, len(o.published))
	for user := range o.published {
		users = append(users, user)
	}
	parts := max(1, (len(users)+presenceChunk-1)/presenceChunk)
	if parts > maxSnapParts {
		// Over a million users on one gateway: past what a snapshot carries. The
		// asker gets nothing, and asks again; a gateway that large needs a paged
		// sync.
		metricPresenceErrors.WithLabelValues("snapshot_too_large").Inc()
		return nil
	}
	msgs := make([]presenceMsg, parts)
	for i := range msgs {
		msgs[i] = presenceMsg{Kind: presenceSnap, GW: o.self, Epoch: o.epoch, Seq: o.seq, Part: i, Parts: parts,
			Users: users[i*presenceChunk : min(len(users), (i+1)*presenceChunk)]}
	}
	return func() {
		for _, m := range msgs {
			o.publish(subjects.PresenceSnapT(asker), m)
		}
	}
}

// snapPartLocked takes a part of peer gw's snapshot; with the last one the snapshot
// replaces the peer's set, flipping only the users that changed, and the deltas held
// meanwhile follow.
func (o *onlineSet) snapPartLocked(gw string, p *peer, m presenceMsg, now time.Time) []func() {
	if m.Part == 0 {
		p.snap, p.snapSeq = p.snap[:0], m.Seq
	} else if m.Seq != p.snapSeq || m.Part != p.snapNext {
		return nil // a part of another snapshot than the one begun: wait for a whole one
	}
	p.snap, p.snapNext = append(p.snap, m.Users...), m.Part+1
	if m.Part != m.Parts-1 {
		return nil
	}
	fresh := make(map[string]struct{}, len(p.snap))
	for _, user := range p.snap {
		fresh[user] = struct{}{}
	}
	for user := range p.users {
		if _, ok := fresh[user]; !ok {
			delete(p.users, user)
			o.removeLocked(user)
		}
	}
	for user := range fresh {
		if _, ok := p.users[user]; !ok {
			p.users[user] = struct{}{}
			o.addLocked(user)
		}
	}
	p.snap, p.seq, p.synced = nil, m.Seq, true
	buffered := p.buffered
	p.buffered = nil
	var out []func()
	for _, d := range buffered {
		out = append(out, o.applyLocked(gw, p, d, now)...)
		if !p.synced {
			break // a gap again: asked anew
		}
	}
	return out
}

// dropPeerLocked forgets peer gw and its users.
func (o *onlineSet) dropPeerLocked(gw string, p *peer) {
	for user := range p.users {
		o.removeLocked(user)
	}
	delete(o.peers, gw)
}

// sweep drops the peers unheard of for the timeout and asks again for the snapshots
// that did not come.
func (o *onlineSet) sweep(now time.Time) {
	var out []func()
	o.mu.Lock()
	for gw, p := range o.peers {
		switch {
		case now.Sub(p.heard) > o.timeout:
			metricPresencePeersExpired.Inc()
			o.log.Info().Str("peer", gw).Int("users", len(p.users)).Msg("presence: gateway silent, its users are offline")
			o.dropPeerLocked(gw, p)
		case !p.synced && now.Sub(p.asked) > 2*o.heartbeat:
			out = append(out, o.askLocked(gw, p, now))
		}
	}
	o.mu.Unlock()
	for _, f := range out {
		f()
	}
}

// resyncAll asks every peer for its set again: deltas may have been lost (a NATS
// reconnect, a dropped message).
func (o *onlineSet) resyncAll(reason string) {
	metricPresenceResyncs.WithLabelValues(reason).Inc()
	now := time.Now()
	var out []func()
	o.mu.Lock()
	for gw, p := range o.peers {
		out = append(out, o.askLocked(gw, p, now))
	}
	o.mu.Unlock()
	for _, f := range out {
		f()
	}
}

// owns reports whether sub is one of the set's subscriptions.
func (o *onlineSet) owns(sub *nats.Subscription) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Contains(o.subs, sub)
}

// onlineUsers returns the users online in the cluster, sorted (tests and debugging).
func (o *onlineSet) onlineUsers() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.count))
	for user := range o.count {
		out = append(out, user)
	}
	slices.Sort(out)
	return out
}
