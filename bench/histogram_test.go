package bench

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestBuckets(t *testing.T) {
	// Buckets tile the values without gaps or overlaps.
	for i := 0; i+1 < numBuckets; i++ {
		_, hi := bucketRange(i)
		lo, _ := bucketRange(i + 1)
		if lo != hi+1 {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i, hi, i+1, lo)
		}
	}
	if _, hi := bucketRange(numBuckets - 1); hi != maxValue {
		t.Fatalf("last bucket ends at %d, want %d", hi, maxValue)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := int64(math.Exp(r.Float64() * math.Log(maxValue)))
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if hi-lo > lo/subBuckets {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d", i, lo, hi, subBuckets)
		}
	}
	if bucketOf(-5) != 0 || bucketOf(math.MaxInt64) != numBuckets-1 {
		t.Fatal("out-of-range values are not clamped")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for name, gen := range map[string]func() int64{
		"uniform 0-100ms":  func() int64 { return r.Int64N(100_000) },
		"exponential 2ms":  func() int64 { return int64(r.ExpFloat64() * 2000) },
		"small":            func() int64 { return r.Int64N(50) },
		"lognormal + tail": func() int64 { v := int64(math.Exp(r.NormFloat64()*1.5 + 7)); return v },
		"constant":         func() int64 { return 1234 },
	} {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			var w window
			var s series
			values := make([]int64, 20000)
			var sum int64
			for i := range values {
				values[i] = gen()
				sum += values[i]
				h.Record(values[i])
				w.sec = int64(i / 5000) // four seconds
				w.record(values[i])
				if (i+1)%5000 == 0 {
					s.flush(i, &w)
				}
			}
			sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
			viaSeries := s.snapshot().total()
			if len(s.snapshot()) != 4 {
				t.Fatalf("%d seconds, want 4", len(s.snapshot()))
			}
			for _, hist := range []*Histogram{&h, viaSeries} {
				if hist.Count() != uint64(len(values)) || hist.Min() != values[0] || hist.Max() != values[len(values)-1] {
					t.Fatalf("count %d min %d max %d", hist.Count(), hist.Min(), hist.Max())
				}
				if math.Abs(hist.Mean()-float64(sum)/float64(len(values))) > 1e-6 {
					t.Fatalf("mean %f", hist.Mean())
				}
				for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
					rank := int(math.Ceil(q*float64(len(values)))) - 1
					want := values[rank]
					got := hist.Quantile(q)
					if math.Abs(float64(got-want)) > float64(want)/64+1 {
						t.Errorf("q%.3f = %d, want %d (±1/64)", q, got, want)
					}
				}
			}
		})
	}
}

func TestHistogramJSON(t *testing.T) {
	var h Histogram
	for _, v := range []int64{0, 1, 63, 64, 1000, 1000, 123456789, maxValue + 10} {
		h.Record(v)
	}
	data, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back != h {
		t.Fatalf("round trip changed the histogram: %s", data)
	}
	sh := secondHistograms{17: &h}
	data, _ = json.Marshal(sh)
	var shBack secondHistograms
	if err := json.Unmarshal(data, &shBack); err != nil || *shBack[17] != h {
		t.Fatalf("second histograms round trip: %v %s", err, data)
	}
	if err := json.Unmarshal([]byte(`{"n":2,"buckets":[[1,1]]}`), &back); err == nil {
		t.Fatal("accepted a histogram whose buckets disagree with n")
	}
}

func TestMemberAccount(t *testing.T) {
	var m member
	for _, seq := range []int64{1, 2, 5, 3, 3, 7, 4, 6, 2, 8} {
		m.account(seq)
	}
	// 1 2 | gap 3-4 at 5 | 3 late | 3 again | gap 6 at 7 | 4 late | 6 late | 2 again | 8
	if m.received != 8 || m.gaps != 2 || m.outOfOrder != 3 || m.duplicates != 2 || len(m.missing) != 0 || m.last != 8 {
		t.Fatalf("received %d gaps %d out of order %d duplicates %d missing %v last %d",
			m.received, m.gaps, m.outOfOrder, m.duplicates, m.missing, m.last)
	}
	var split member
	split.account(10) // 1..9 missing
	split.account(5)
	if len(split.missing) != 2 || split.missing[0] != (seqRange{1, 4}) || split.missing[1] != (seqRange{6, 9}) {
		t.Fatalf("missing %v", split.missing)
	}
}
