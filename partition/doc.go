// Package partition consumes the partitions of laneIM's partitioned streams (IM_IN for
// logic, IM_OUT for pusher): each partition in batches, in stream order, by exactly
// one node of the role at a time, with partitions spread over the role's live nodes
// and moved when a node joins, leaves or dies.
//
// # Ownership
//
// Every node of a role is a member of the role's group (group.go): it keeps a key
// <role>.<node> in the KV bucket im_partitions, refreshed every TTL/3 with a TTL of a
// few seconds; the bucket's limit markers turn an expired key into a delete that every
// watcher sees. Each member watches its role's keys and owns the partitions that
// rendezvous (highest-random-weight) hashing gives it among the live members: every
// member computes the same assignment from the same key set without talking to the
// others, a join takes about 1/n of the partitions from the others, and a leave moves
// only the leaver's. A member starts Run for the partitions it gains and cancels it for
// those it loses. A member that could not refresh its key for 2/3 of the TTL gives up
// everything before the key can expire under it.
//
// # Exclusivity and handover
//
// Views of the member set differ for milliseconds while a change propagates, so two
// nodes may both think they own a partition. The consumer's pinned priority group is
// the safety net: the server delivers to one pinned puller only, and pins another
// only when the pinned one unpins or stays silent for PinnedTTL (the group's TTL, so a
// dead owner's pin lapses when its key does).
//
// A node giving a partition up (Run's context ends) finishes the batch in hand, stops
// pulling, waits until the server's ack floor covers what it handled, NAKs what it
// fetched but did not handle, in stream order, so that it is redelivered at once
// ahead of newer messages, and unpins the consumer so that the next puller is pinned at
// once instead of after PinnedTTL.
//
// # AckAll
//
// The consumers ack with AckAll: an ack of message N acks every message below it. A
// new owner that handled and acked N while an earlier message M < N was still pending
// with another node would ack M unhandled, and lose it if that node died. Two rules
// make this impossible:
//
//  1. Takeover waits for the partition to be free: Run does not pull while the
//     consumer is pinned to anyone (it has not pulled yet, so the pin is someone
//     else's). Once nobody is pinned, whatever is still ack-pending was fetched by a
//     node that released it (NAKed) or stopped pulling for PinnedTTL (dead); Run resets
//     the consumer to its ack floor, which returns every one of them to the stream in
//     order, and only then pulls. Nothing is pending with anyone else when it starts.
//  2. Whenever the server pins this node anew (every message to a pinned puller
//     carries its pin id; a new id means the pin moved), and after a handler call
//     long enough (PinnedTTL/2) for its own pin to have lapsed meanwhile, Run checks
//     before handling the batch that its first message is the partition's first
//     message past both the ack floor and what this run handled. If it is not, an
//     earlier message is in someone else's hands: Run handles nothing and stops
//     pulling; if it holds the pin it resets the consumer to the ack floor and
//     unpins, and if the pin has moved to another node, it is the stale one and
//     leaves the partition as it is. Either way it starts over with rule 1.
//
// Within one pin, the server delivers the partition in stream order, and a redelivery
// of a message this run already handled (an ack that came too late) is acked and
// skipped, so every batch a run hands over continues exactly where the last ended.
// A release that completes (floor covers the handled, the rest NAKed) leaves nothing
// handled unacked, so the next owner neither repeats nor skips a message.
//
// What remains is at-least-once, never loss: a node that dies between handling a
// batch and its ack landing has the batch handled again by the next owner (logic
// drops a repeated send by its nonce, pusher a repeated seq, gateways a repeated
// frame), and a node frozen (not pulling: a stopped process, a cut link) for longer
// than PinnedTTL with a batch in hand finishes that one batch alongside the node that
// took over, and nothing more. A handler that is merely slow keeps its pin: nats.go
// goes on pulling into its buffer meanwhile, which renews the pin.
package partition
