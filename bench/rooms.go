package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/laneim/laneim/schema"
)

// roomsStats is the outcome of the rooms scenario.
type roomsStats struct {
	Users        int     `json:"users"`
	Rooms        int     `json:"rooms"`
	RoomsPerUser int     `json:"rooms_per_user"`
	RoomSize     int     `json:"room_size"`
	Rate         float64 `json:"rate"`
	Sent         int64   `json:"sent"`
	Acked        int64   `json:"acked"`
	// Body is receive time - send time of the messages of the rooms on screen (each
	// user subscribes to one of its rooms).
	Body latencySummary `json:"body_latency"`
	// Ack is send -> ack of the senders' messages: the part of a body's latency that is
	// ingest (logic, the store), the rest being fanout.
	Ack        latencySummary `json:"ack_latency"`
	Bodies     int64          `json:"bodies"`
	Lost       int64          `json:"bodies_lost"`
	OutOfOrder int64          `json:"bodies_out_of_order"`
	// TickFrames counts tick and ticks frames; TickRooms the room entries in them.
	TickFrames        int64   `json:"tick_frames"`
	TickRooms         int64   `json:"tick_rooms"`
	TickFramesPerConn float64 `json:"tick_frames_per_connection_second"`
	// Identify is dial + identify + ready of a user in RoomsPerUser rooms.
	Identify latencySummary `json:"identify_latency"`
	// UnreadExact counts (user, room) pairs whose latest seq, as the user's connection
	// learned it (ready, ticks, bodies), is the room's last seq at the end; Unread the
	// pairs checked.
	UnreadExact int64          `json:"unread_exact"`
	Unread      int64          `json:"unread_checked"`
	Closed      map[string]int `json:"closed,omitempty"`
	Errors      map[string]int `json:"errors,omitempty"`
	LoadSeconds float64        `json:"load_seconds"`
}

func (s *roomsStats) rows(row rowFunc) {
	row("shape", "%s users x %d rooms each = %d rooms of %d; one room on screen each", fmtCount(int64(s.Users)), s.RoomsPerUser, s.Rooms, s.RoomSize)
	row("sent", "%s acked of %s at %.0f msgs/s over all rooms", fmtCount(s.Acked), fmtCount(s.Sent), s.Rate)
	row("bodies (on screen)", "%s  (%s received, %s lost, %s out of order)", s.Body, fmtCount(s.Bodies), fmtCount(s.Lost), fmtCount(s.OutOfOrder))
	row("acks", "%s", s.Ack)
	row("tick frames", "%s (%.2f per connection a second), naming %s rooms", fmtCount(s.TickFrames), s.TickFramesPerConn, fmtCount(s.TickRooms))
	row("identify", "%s", s.Identify)
	row("unread exact", "%s of %s (user, room) pairs", fmtCount(s.UnreadExact), fmtCount(s.Unread))
	row("closed by server", "%s", fmtCodes(s.Closed))
	if len(s.Errors) > 0 {
		row("error frames", "%s", fmtCodes(s.Errors))
	}
}

// roomsUser is one user of the rooms scenario: one connection, in RoomsPerUser rooms,
// subscribed to one of them.
type roomsUser struct {
	wsConn
	name   string
	rooms  []int // indexes of its rooms; rooms[0] is on screen
	screen string

	// Read loop state, read by the parent after the loop ends (done).
	index      map[string]int // position of each room of the user in latest
	latest     []int64        // newest seq learned per room
	next       int64          // next body seq expected on screen
	hist       *Histogram     // body latency, µs
	bodies     int64
	outOfOrder int64
	tickFrames atomic.Int64
	tickRooms  int64
	closed     int // close code, 0 while open or closed by us
	errors     map[string]int
	done       chan struct{}
}

func roomName(runID string, i int) string { return fmt.Sprintf("%s-r%d", runID, i) }

// rooms: many users in many rooms, each looking at one: what the rooms not on screen
// cost (tick frames), how fast the bodies on screen arrive meanwhile, and whether every
// unread count is exact at the end.
func (r *run) rooms(ctx context.Context) error {
	o := r.o
	size := o.users * o.perUser / o.rooms
	users := make([]*roomsUser, o.users)
	members := make([][]string, o.rooms)
	for i := range users {
		u := &roomsUser{name: memberName(r.runID, i), index: make(map[string]int, o.perUser),
			next: 1, hist: &Histogram{}, done: make(chan struct{})}
		// User i is in rooms i*K .. i*K+K-1 (mod R): every room gets U*K/R members. Its
		// screen is its (i mod K)-th room, so that screens spread over the rooms.
		for j := range o.perUser {
			k := (i*o.perUser + (j+i)%o.perUser) % o.rooms
			u.rooms = append(u.rooms, k)
			members[k] = append(members[k], u.name)
		}
		u.screen = roomName(r.runID, u.rooms[0])
		users[i] = u
	}
	// One sender per room, each a member of its room only.
	acks := &series{}
	senders := make([]*sender, o.rooms)
	perRoom := o.rate / float64(o.rooms)
	owner := r.runID + "-owner"
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency)
	for k := range o.rooms {
		room := roomName(r.runID, k)
		// Sender k starts k/rate seconds in: together they send at an even rate, not
		// all at once every 1/perRoom seconds.
		senders[k] = newSender(senderConfig{index: k, user: fmt.Sprintf("%s-s%d", r.runID, k), room: room,
			rate: perRoom, inflight: 16, duration: o.duration,
			offset: time.Duration(float64(k) / o.rate * float64(time.Second))}, acks)
		members[k] = append(members[k], senders[k].cfg.user)
		g.Go(func() error { return r.t.createRoom(gctx, owner, room) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	start := time.Now()
	joined := 0
	stop := r.progress(func(time.Duration) string {
		return fmt.Sprintf("joining: %s of %s memberships", fmtCount(int64(joined)), fmtCount(int64(o.users*o.perUser+o.rooms)))
	})
	for k := range o.rooms {
		if err := r.t.joinAll(ctx, roomName(r.runID, k), members[k], o.concurrency); err != nil {
			stop()
			return err
		}
		joined += len(members[k])
	}
	stop()
	r.t.http.CloseIdleConnections()
	r.report.Setup.Joined = joined
	r.report.Setup.JoinSeconds = time.Since(start).Seconds()

	// Connect: every user identifies (its ready lists its rooms) and subscribes to its
	// screen.
	identify := &Histogram{}
	var idMu sync.Mutex
	var connected atomic.Int64
	start = time.Now()
	stop = r.progress(func(time.Duration) string {
		return fmt.Sprintf("connecting %s/%s", fmtCount(connected.Load()), fmtCount(int64(o.users)))
	})
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency)
	for i, u := range users {
		g.Go(func() error {
			tok, err := r.t.token(gctx, u.name)
			if err != nil {
				return err
			}
			wd, err := r.dialers.forConn(i)
			if err != nil {
				return err
			}
			t0 := time.Now()
			ws, hb, ready, err := dialReady(gctx, wd, r.t.wsURLs[i%len(r.t.wsURLs)], tok)
			if err != nil {
				return fmt.Errorf("user %s: %w", u.name, err)
			}
			idMu.Lock()
			identify.Record(time.Since(t0).Microseconds())
			idMu.Unlock()
			for _, rr := range ready.Rooms {
				u.index[rr.Room] = len(u.latest)
				u.latest = append(u.latest, rr.Seq)
			}
			if len(ready.Rooms) != o.perUser || ready.More {
				ws.Close()
				return fmt.Errorf("user %s: ready lists %d rooms (more: %v), want %d", u.name, len(ready.Rooms), ready.More, o.perUser)
			}
			if err := subscribe(ws, u.screen, 0); err != nil {
				ws.Close()
				return fmt.Errorf("user %s: %w", u.name, err)
			}
			u.ws = ws
			u.live.Store(true)
			r.beats.add(&u.wsConn, hb)
			go u.readLoop()
			connected.Add(1)
			return nil
		})
	}
	err := g.Wait()
	stop()
	defer func() {
		for _, u := range users {
			if u.ws != nil {
				u.shutdown()
				<-u.done
			}
		}
	}()
	if err != nil {
		return err
	}
	r.report.Setup.Connections = int64(o.users)
	r.report.Setup.ConnectSeconds = time.Since(start).Seconds()
	r.report.Setup.ConnectsPerSec = float64(o.users) / r.report.Setup.ConnectSeconds
	if err := r.connectSenders(ctx, senders, o.users); err != nil {
		return err
	}
	defer closeSenders(senders)

	r.loadBegins(nil)
	loadStart := time.Now()
	var ackRate rateTracker
	stop = r.progress(func(time.Duration) string {
		var frames int64
		for _, u := range users {
			frames += u.tickFrames.Load()
		}
		t := sumSenders(senders)
		return fmt.Sprintf("acked %s (%.0f/s) tick frames %s", fmtCount(t.acked), ackRate.rate(t.acked), fmtCount(frames))
	})
	sendErr := runSenders(ctx, senders)
	for _, s := range senders {
		s.awaitAcks(ctx, ackWait)
	}
	// The last ticks go out within a second of a room's last message: wait for them.
	_ = sleepCtx(ctx, o.drain)
	stop()
	load := time.Since(loadStart)
	if sendErr != nil {
		return sendErr
	}

	final := make(map[string]int64, o.rooms)
	for _, s := range senders {
		final[s.cfg.room] = s.maxSeq.Load()
	}
	for _, u := range users {
		u.shutdown()
		<-u.done
	}
	totals := sumSenders(senders)
	st := &roomsStats{
		Users: o.users, Rooms: o.rooms, RoomsPerUser: o.perUser, RoomSize: size, Rate: o.rate,
		Sent: totals.sent, Acked: totals.acked, Identify: summarize(identify), LoadSeconds: load.Seconds(),
		Closed: make(map[string]int), Errors: make(map[string]int),
	}
	body := &Histogram{}
	for _, u := range users {
		body.Merge(u.hist) // the read loop has ended
		st.Bodies += u.bodies
		st.OutOfOrder += u.outOfOrder
		st.TickFrames += u.tickFrames.Load()
		st.TickRooms += u.tickRooms
		if want := final[u.screen]; u.next <= want { // seqs u.next .. want never came
			st.Lost += want - u.next + 1
		}
		for _, k := range u.rooms {
			room := roomName(r.runID, k)
			st.Unread++
			if j, ok := u.index[room]; ok && u.latest[j] == final[room] {
				st.UnreadExact++
			}
		}
		if u.closed != 0 {
			st.Closed[fmt.Sprint(u.closed)]++
		}
		for c, n := range u.errors {
			st.Errors[c] += n
		}
	}
	st.Body = summarize(body)
	st.Ack = summarize(acks.snapshot().total())
	st.TickFramesPerConn = float64(st.TickFrames) / float64(o.users) / load.Seconds()
	r.report.Rooms = st
	r.checkSendErrors(totals.errors)
	if st.UnreadExact < st.Unread {
		r.warn("%d of %d unread counts were not exact at the end", st.Unread-st.UnreadExact, st.Unread)
	}
	if st.Lost > 0 || st.OutOfOrder > 0 {
		r.warn("bodies on screen: %d lost, %d out of order", st.Lost, st.OutOfOrder)
	}
	return nil
}

var ticksOp = []byte(`{"op":"ticks","d":`)

// readLoop reads the user's connection until it closes.
func (u *roomsUser) readLoop() {
	defer close(u.done)
	defer u.live.Store(false)
	hist := u.hist
	buf := make([]byte, 0, 1024)
	var pending []roomSeq // a ticks frame's rooms, applied once the whole frame is read
	for {
		_, rd, err := u.ws.NextReader()
		var frame []byte
		if err == nil {
			frame, err = readFrame(rd, &buf)
		}
		if err != nil {
			if code := closeCode(err); code != websocket.CloseNormalClosure && code != websocket.CloseAbnormalClosure {
				u.closed = code
			}
			return
		}
		now := time.Now().UnixMicro()
		if f, ok := parseMsgs(frame); ok {
			seq := f.seq
			for {
				e, ok := f.next()
				if !ok {
					break
				}
				switch {
				case seq == u.next:
					u.bodies++
					if e.isInt {
						hist.Record(max(now-e.value, 0))
					}
				case seq < u.next:
					// a duplicate: already counted
				default:
					u.outOfOrder++
				}
				if seq >= u.next {
					u.next = seq + 1
				}
				u.learn(f.room, seq)
				seq++
			}
			continue
		}
		switch {
		case bytes.HasPrefix(frame, ticksOp):
			pending = pending[:0]
			if !scanTicks(frame, func(room []byte, seq int64) { pending = append(pending, roomSeq{room, seq}) }) {
				// Not the server's compact form: read it the slow way, or not at all.
				pending = pending[:0]
				var t struct {
					D schema.TicksD `json:"d"`
				}
				if json.Unmarshal(frame, &t) != nil {
					continue
				}
				for _, e := range t.D.Rooms {
					pending = append(pending, roomSeq{[]byte(e.Room), e.Seq})
				}
			}
			u.tickFrames.Add(1)
			for _, p := range pending {
				u.tickRooms++
				u.learn(p.room, p.seq)
			}
		case string(frameOp(frame)) == schema.OpTick:
			var t struct {
				D schema.TickD `json:"d"`
			}
			if json.Unmarshal(frame, &t) == nil {
				u.tickFrames.Add(1)
				u.tickRooms++
				u.learn([]byte(t.D.Room), t.D.Seq)
			}
		case string(frameOp(frame)) == schema.OpError:
			code := "unknown"
			if _, _, c, ok := parseError(frame); ok {
				code = string(c)
			}
			if u.errors == nil {
				u.errors = make(map[string]int)
			}
			u.errors[code]++
		}
	}
}

// roomSeq is one room of a ticks frame, its id a view of the frame's bytes.
type roomSeq struct {
	room []byte
	seq  int64
}

// learn records that room's newest seq is at least seq, for a room of the user (any
// other is not counted: the unread counts checked at the end are of its rooms).
func (u *roomsUser) learn(room []byte, seq int64) {
	if i, ok := u.index[string(room)]; ok && seq > u.latest[i] {
		u.latest[i] = seq
	}
}
