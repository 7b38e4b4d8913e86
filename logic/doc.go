// Package logic is laneIM's business role. It consumes the IM_IN stream partition by
// partition (one pinned logic node per partition, so it is the single writer of each
// room's seq), re-checks membership, writes each batch to the message store in one
// durable write, replies to the sending gateway, and publishes every stored message to
// IM_OUT for pusher, and every stored send whose body mentions users to IM_MENTIONS for
// the offline hook (mentions.go, package notify). It also serves history, rooms,
// members and read state as NATS services (nats.go/micro), the notifier's membership
// check (hook.go), and publishes membership and read events.
package logic
