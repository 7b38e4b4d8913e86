package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"sync"
)

// Latencies are recorded in microseconds into log-linear buckets: values below 64 have
// a bucket each, and every power of two above is split into 32 equal buckets, so a
// bucket is at most 1/32 (3.1%) of its values wide and a quantile read from its middle
// is within 1.6%. Values up to 2^37 µs (38 hours) fit; larger ones count in the last
// bucket. 1056 buckets: a fixed array, so recording a sample allocates nothing.
const (
	subBucketBits = 5
	subBuckets    = 1 << subBucketBits
	maxValueBits  = 37
	numBuckets    = (maxValueBits - subBucketBits + 1) * subBuckets
	maxValue      = 1<<maxValueBits - 1
)

// bucketOf is the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < 2*subBuckets {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v > maxValue {
		v = maxValue
	}
	shift := bits.Len64(uint64(v)) - 1 - subBucketBits
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketRange is the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subBuckets {
		return int64(i), int64(i)
	}
	shift := i/subBuckets - 1
	m := int64(i%subBuckets + subBuckets)
	return m << shift, (m+1)<<shift - 1
}

// Histogram is a merged latency distribution in microseconds.
type Histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    uint64
	min    int64
	max    int64
}

// Record adds one value.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += uint64(v)
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value, exact.
func (h *Histogram) Max() int64 { return h.max }

// Min is the smallest value, exact.
func (h *Histogram) Min() int64 { return h.min }

// Mean is the average value, exact.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// Quantile returns the value at quantile q (0 < q <= 1): the middle of the bucket
// holding the ceil(q*n)-th smallest value, clamped to the exact min and max.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	rank = min(rank, h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// histogramJSON is a Histogram on the wire between worker processes: the non-empty
// buckets only, as [index, count] pairs.
type histogramJSON struct {
	N       uint64      `json:"n"`
	Sum     uint64      `json:"sum"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Buckets [][2]uint64 `json:"buckets"`
}

// MarshalJSON encodes the non-empty buckets.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histogramJSON{N: h.n, Sum: h.sum, Min: h.min, Max: h.max, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var in histogramJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*h = Histogram{n: in.N, sum: in.Sum, min: in.Min, max: in.Max}
	var total uint64
	for _, b := range in.Buckets {
		if b[0] >= numBuckets {
			return fmt.Errorf("histogram bucket %d out of range", b[0])
		}
		h.counts[b[0]] += b[1]
		total += b[1]
	}
	if total != h.n {
		return fmt.Errorf("histogram buckets hold %d values, header says %d", total, h.n)
	}
	return nil
}

// window collects the latencies one goroutine records within one second, without
// locks; at the next second (or at the end) it is flushed into a series. uint32
// counts keep it at 4 KiB: one per member of a 10,000-member room is 42 MB.
type window struct {
	sec    int64 // the Unix second the values belong to
	n      uint32
	sum    uint64
	min    int64
	max    int64
	lo, hi int // the range of buckets touched, so a flush reads only those
	counts [numBuckets]uint32
}

// record adds one value (v >= 0).
func (w *window) record(v int64) {
	i := bucketOf(v)
	if w.n == 0 {
		w.lo, w.hi, w.min, w.max = i, i, v, v
	} else {
		w.lo, w.hi = min(w.lo, i), max(w.hi, i)
		w.min, w.max = min(w.min, v), max(w.max, v)
	}
	w.counts[i]++
	w.n++
	w.sum += uint64(v)
}

// series is latency by Unix second, filled by many goroutines' windows. It is sharded
// so that the goroutines flushing at the turn of a second do not all wait on one lock.
type series struct {
	shards [seriesShards]seriesShard
}

const seriesShards = 16

type seriesShard struct {
	mu   sync.Mutex
	secs map[int64]*Histogram // guarded by mu
}

// flush moves w's values into the shard's histogram of w.sec and empties w.
func (s *series) flush(shard int, w *window) {
	if w.n == 0 {
		return
	}
	sh := &s.shards[shard%seriesShards]
	sh.mu.Lock()
	if sh.secs == nil {
		sh.secs = make(map[int64]*Histogram)
	}
	h := sh.secs[w.sec]
	if h == nil {
		h = new(Histogram)
		sh.secs[w.sec] = h
	}
	for i := w.lo; i <= w.hi; i++ {
		h.counts[i] += uint64(w.counts[i])
		w.counts[i] = 0
	}
	if h.n == 0 || w.min < h.min {
		h.min = w.min
	}
	h.max = max(h.max, w.max)
	h.n += uint64(w.n)
	h.sum += w.sum
	sh.mu.Unlock()
	w.n, w.sum = 0, 0
}

// record adds one value to the histogram of sec directly, for goroutines that
// record rarely (a sender's acks).
func (s *series) record(shard int, sec, v int64) {
	sh := &s.shards[shard%seriesShards]
	sh.mu.Lock()
	if sh.secs == nil {
		sh.secs = make(map[int64]*Histogram)
	}
	h := sh.secs[sec]
	if h == nil {
		h = new(Histogram)
		sh.secs[sec] = h
	}
	h.Record(v)
	sh.mu.Unlock()
}

// snapshot returns a merged copy of every second so far.
func (s *series) snapshot() secondHistograms {
	out := make(secondHistograms)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for sec, h := range sh.secs {
			out.add(sec, h)
		}
		sh.mu.Unlock()
	}
	return out
}

// secondHistograms is latency by Unix second.
type secondHistograms map[int64]*Histogram

func (sh secondHistograms) add(sec int64, h *Histogram) {
	dst := sh[sec]
	if dst == nil {
		dst = new(Histogram)
		sh[sec] = dst
	}
	dst.Merge(h)
}

// merge adds every second of o.
func (sh secondHistograms) merge(o secondHistograms) {
	for sec, h := range o {
		sh.add(sec, h)
	}
}

// total is every second merged.
func (sh secondHistograms) total() *Histogram {
	var t Histogram
	for _, h := range sh {
		t.Merge(h)
	}
	return &t
}

// seconds returns the seconds present, in order.
func (sh secondHistograms) seconds() []int64 {
	out := make([]int64, 0, len(sh))
	for sec := range sh {
		out = append(out, sec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
