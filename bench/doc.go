// Package bench is `laneim bench`, laneIM's load generator. It drives gateways on this
// machine over real WebSockets and HTTP, exactly as clients do, and measures what
// docs/protocol.md promises: every member gets every message once, in seq order, quickly;
// an ack means durable; a slow client does not slow the others.
//
// Scenarios:
//
//	fanout  --members M in one room, --publishers P at --rate R for --duration:
//	        delivery latency (receive - send), deliveries/s, loss, duplicates, order
//	ack     one sender, --count N messages one at a time (reference counts 1, 36,
//	        1424, 48000): ack latency, and the time from the last ack until every
//	        member has every message
//	ingest  --senders S over --rooms R, pipelined: acks/s and ack latency
//	conns   --conns K idle identified connections: server RSS per connection
//
// Targets: gateways already running here (--url, repeatable, loopback only; a server
// for heavy loads runs with --rate-limit 0), or a stack started in this process
// (--embedded: devstack in a temporary data dir, rate limits off). Tokens are signed
// with --secret, the embedded stack's secret, or fetched from POST /v1/dev/token.
//
// # Measuring without becoming the bottleneck
//
// Each message body is the send time in Unix microseconds, so a member computes
// latency from the frame alone. Members read with one goroutine each through
// gorilla's NextReader into a buffer they keep, and scan msgs frames by hand
// (scan.go): the fixed prefix, seq, then each entry's integer body, with no
// allocation (BenchmarkScanMsgs, BenchmarkMemberHandle). Latencies go into a
// per-member window of log-linear buckets (histogram.go), flushed once a second into
// sharded per-second histograms, which give the percentiles, the live p99 and the
// plot. One goroutine per process sends every connection's heartbeats.
//
// A process may open 20,000 files (the hard limit), and with --embedded every
// connection is two of them. Larger runs hold the members in --workers child
// processes: the bench re-executes itself with --worker-child --member-offset
// --member-count, and children report counters and histograms as JSON lines on
// stdout (workers.go). Connections bind to source addresses 127.0.0.2, 127.0.0.3, ...
// (--per-source per address) so that ephemeral ports do not run out.
//
// Every run ends by itself: --duration, then at most --drain for the last messages,
// and every wait in between has a timeout.
package bench
