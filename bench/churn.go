package bench

import (
	"context"
	mathrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// presenceStats is what the presence side of a fanout did: members subscribed with
// presence events while churning members came and went.
type presenceStats struct {
	Churners int   `json:"churners"`
	Cycles   int64 `json:"cycles"` // online-offline cycles the churners completed
	Failed   int64 `json:"failed"` // connects that failed
	// Events is the presence events the members received; PerMemberSec that per
	// member and second the churners ran (else of the run), at most about one a
	// second by the protocol (events of the setup included).
	Events       int64   `json:"events"`
	PerMemberSec float64 `json:"per_member_second"`
}

func (p *presenceStats) rows(row rowFunc) {
	row("presence", "%s events to members (%.2f per member a second); %d churning members, %s online-offline cycles, %s failed connects",
		fmtCount(p.Events), p.PerMemberSec, p.Churners, fmtCount(p.Cycles), fmtCount(p.Failed))
}

func churnerName(runID string, i int) string { return runID + "-c" + strconv.Itoa(i) }

// churners are members of the fanout room that identify, stay online for about a
// second, close, stay offline for about a second, and again, until stopped: each
// change is presence news for every member subscribed with presence.
type churners struct {
	n      int
	start  time.Time
	took   time.Duration // from start to stop, once stopped
	cycles atomic.Int64
	failed atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startChurners starts n churners on dial slots from firstSlot; they run until stop.
func (r *run) startChurners(ctx context.Context, n, firstSlot int) *churners {
	ctx, cancel := context.WithCancel(ctx)
	c := &churners{n: n, cancel: cancel, start: time.Now()}
	for i := range n {
		c.wg.Go(func() {
			user := churnerName(r.runID, i)
			// Spread over the first cycle, so that changes come evenly.
			if sleepCtx(ctx, time.Duration(mathrand.Int64N(int64(2*time.Second)))) != nil {
				return
			}
			for ctx.Err() == nil {
				token, err := r.t.token(ctx, user)
				if err != nil {
					c.failed.Add(1)
					_ = sleepCtx(ctx, time.Second)
					continue
				}
				ws, _, err := r.dialers.dialIdentified(ctx, firstSlot+i, r.t.wsURLs[i%len(r.t.wsURLs)], token)
				if err != nil {
					c.failed.Add(1)
					_ = sleepCtx(ctx, time.Second)
					continue
				}
				// Online: nothing read; the server's frames wait in the socket.
				_ = sleepCtx(ctx, halfToOneAndHalf())
				ws.Close()
				c.cycles.Add(1)
				_ = sleepCtx(ctx, halfToOneAndHalf())
			}
		})
	}
	return c
}

// halfToOneAndHalf is a random duration from 0.5 s to 1.5 s.
func halfToOneAndHalf() time.Duration {
	return 500*time.Millisecond + time.Duration(mathrand.Int64N(int64(time.Second)))
}

// stop stops the churners and waits for them.
func (c *churners) stop() {
	c.cancel()
	c.wg.Wait()
	if c.took == 0 {
		c.took = time.Since(c.start)
	}
}
