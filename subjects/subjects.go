// Package subjects names every NATS subject, JetStream stream, consumer, KV bucket and
// service endpoint laneIM uses. Nobody formats a subject string anywhere else: each
// name is a constant (wildcards, fixed names) with a builder beside it for the concrete
// form, the way nats-server pairs JSApiStreamCreate with JSApiStreamCreateT.
//
// The path of one message through these names:
//
//	gateway  --publish-->  im.in.<room>                    (stream IM_IN, stored as im.in.<p>.<room>)
//	logic    --consume-->  im.in.<p>.*                     (consumer logic_in_<p>, one logic node per partition)
//	logic    --publish-->  im.out.<room>                   (stream IM_OUT, stored as im.out.<p>.<room>)
//	logic    --reply---->  im.gw.<gateway>.acks            (core NATS, the gateway turns it into the client's ack)
//	pusher   --consume-->  im.out.<p>.*                    (consumer pusher_out_<p>)
//	pusher   --publish-->  im.room.<room>.msgs / .tick     (core NATS, pre-encoded client frames)
//	logic    --publish-->  im.room.<room>.events           (member events for every member connection)
//	logic    --publish-->  im.user.<user>.events           (read sync and the user's own membership changes)
//
// Beside the message path, gateways share who is online and who is typing:
//
//	gateway  --publish-->  im.presence.gw.<gateway>        (its users coming online and going offline, sequenced, and heartbeats)
//	gateway  --publish-->  im.presence.sync.<gateway>      (asks that gateway for its whole online set)
//	gateway  --publish-->  im.presence.snap.<gateway>      (the set, answered to the gateway that asked)
//	gateway  --publish-->  im.room.<room>.typing           (a member typing; never stored)
//
// The offline hook, beside the message path too (docs/protocol.md, "Offline hook"):
//
//	logic    --publish-->  im.mention.<room>               (stream IM_MENTIONS: a stored send that mentions users)
//	pusher   --consume-->  im.mention.*                    (consumer notify, shared by every pusher node)
//	pusher   --request-->  im.members.check                (logic: which mentioned users are members)
//	pusher   --request-->  im.presence.active              (every gateway answers: who is subscribed, who online)
//	pusher   --publish-->  im.notify.<room>                (stream IM_NOTIFY: the members offline or passive, for the product's backend)
package subjects

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Streams.
const (
	// StreamIn holds accepted-but-not-yet-stored sends. Interest retention: a message
	// goes once its partition's logic consumer has acked it (work-queue retention would
	// forbid acking a batch at once; see logic/streams.go).
	StreamIn = "IM_IN"
	// StreamOut holds stored messages on their way to pusher.
	StreamOut = "IM_OUT"
	// StreamMentions holds the stored sends that mention users, on their way to the
	// notifier (package notify, run by pusher nodes).
	StreamMentions = "IM_MENTIONS"
	// StreamNotify holds the notifier's verdicts: which mentioned members were
	// offline or passive. The product's backend consumes it with a durable consumer
	// of its own.
	StreamNotify = "IM_NOTIFY"
)

// Offline hook subjects: logic publishes a mention-carrying send on MentionT(room)
// (IM_MENTIONS), the notifier publishes its verdict on NotifyT(room) (IM_NOTIFY).
const (
	Mentions      = "im.mention.*"
	mentionPrefix = "im.mention."
	Notify        = "im.notify.*"
	notifyPrefix  = "im.notify."
	// NotifyConsumer is the durable consumer of IM_MENTIONS that every pusher node's
	// notifier pulls from: each message goes to one of them.
	NotifyConsumer = "notify"
	// PresenceActive is asked by the notifier and answered by every gateway (no queue
	// group): of these users, who has a connection here subscribed to the room, and
	// who has one at all.
	PresenceActive = "im.presence.active"
	// MembersCheck is logic's answer to which (room, user) pairs are memberships, for
	// the notifier. It is outside im.svc.>, which gateways may call, and needs no user
	// token: its callers are roles whose NATS credential allows it (pusher, the
	// operator).
	MembersCheck = "im.members.check"
)

// MentionT is the subject logic publishes a stored send of room that mentions users on.
func MentionT(room string) string { return mentionPrefix + room }

// NotifyT is the subject of a notification of a message of room.
func NotifyT(room string) string { return notifyPrefix + room }

// MentionMsgIDT is the dedupe id of a stored message's mention and notification: a
// re-ingest or a redelivery publishes the same id, which JetStream drops. The stored
// ts tells seq 1 of a room created again from seq 1 of the deleted one.
func MentionMsgIDT(room string, seq, ts int64) string {
	return room + ":" + strconv.FormatInt(seq, 10) + ":" + strconv.FormatInt(ts, 10)
}

// Ingest subjects. A gateway publishes on InT(room); the stream's subject transform
// rewrites it to InPartitionT(p, room) with p = partition(N, room), so that one logic
// node consumes all of a room's messages in order.
const (
	In            = "im.in.*"
	inPrefix      = "im.in."
	Out           = "im.out.*"
	outPrefix     = "im.out."
	partitionExpr = "{{partition(%d,1)}}.{{wildcard(1)}}"
)

// InT is the subject a gateway publishes a send of room on.
func InT(room string) string { return inPrefix + room }

// OutT is the subject logic publishes a stored message of room on.
func OutT(room string) string { return outPrefix + room }

// InPartitionT is the stored (transformed) ingest subject filter of partition p.
func InPartitionT(p int) string { return inPrefix + strconv.Itoa(p) + ".*" }

// OutPartitionT is the stored (transformed) outbound subject filter of partition p.
func OutPartitionT(p int) string { return outPrefix + strconv.Itoa(p) + ".*" }

// InTransform returns the stream subject transform destination for n partitions.
func InTransform(n int) string { return inPrefix + partitionDest(n) }

// OutTransform returns the stream subject transform destination for n partitions.
func OutTransform(n int) string { return outPrefix + partitionDest(n) }

func partitionDest(n int) string {
	return strings.Replace(partitionExpr, "%d", strconv.Itoa(n), 1)
}

// RoomOfStored returns the room token of an IM_IN or IM_OUT subject, stored
// ("im.in.<p>.<room>") or as published ("im.in.<room>"): the room is the last token.
func RoomOfStored(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return ""
}

// Consumers. One durable per partition, consumed by the node the partition group
// (package partition) assigns it to; the pinned priority group keeps a second puller
// idle while ownership moves.
const (
	PriorityGroup = "laneim"
	inConsumer    = "logic_in_"
	outConsumer   = "pusher_out_"
)

// InConsumerT is the durable consumer name of IM_IN partition p.
func InConsumerT(p int) string { return inConsumer + strconv.Itoa(p) }

// OutConsumerT is the durable consumer name of IM_OUT partition p.
func OutConsumerT(p int) string { return outConsumer + strconv.Itoa(p) }

// Room fanout subjects (core NATS). Payloads are the JSON frames of docs/protocol.md, so
// `nats sub 'im.room.*.msgs'` shows a room's traffic readably.
const (
	RoomMsgs   = "im.room.*.msgs"
	RoomTicks  = "im.room.*.tick"
	RoomEvents = "im.room.*.events"
	roomPrefix = "im.room."
)

// RoomMsgsT is the subject pusher publishes a room's msgs frames on.
func RoomMsgsT(room string) string { return roomPrefix + room + ".msgs" }

// RoomTickT is the subject pusher publishes a room's coalesced tick frames on.
func RoomTickT(room string) string { return roomPrefix + room + ".tick" }

// RoomEventsT is the subject of a room's member events.
func RoomEventsT(room string) string { return roomPrefix + room + ".events" }

// RoomTyping is the wildcard of typing notices, which gateways publish and subscribe
// to while a local connection is subscribed to the room: {"user"}, never stored.
const RoomTyping = "im.room.*.typing"

// RoomTypingT is the subject of room's typing notices.
func RoomTypingT(room string) string { return roomPrefix + room + ".typing" }

// Presence subjects (core NATS, between gateways only). Each gateway publishes its own
// online users as a sequenced stream of changes on PresenceGatewayT(itself), with a
// heartbeat carrying the last seq when nothing changes; another gateway that misses a
// seq, or hears a gateway for the first time, asks for the whole set on
// PresenceSyncT(that gateway), which answers on PresenceSnapT(the asker).
const (
	PresenceGateways = "im.presence.gw.*"
	PresenceSync     = "im.presence.sync.*"
	PresenceSnap     = "im.presence.snap.*"
	presencePrefix   = "im.presence."
)

// PresenceGatewayT is the subject of gateway's online changes and heartbeats.
func PresenceGatewayT(gateway string) string { return presencePrefix + "gw." + gateway }

// PresenceSyncT is where gateway is asked for its whole online set.
func PresenceSyncT(gateway string) string { return presencePrefix + "sync." + gateway }

// PresenceSnapT is where gateway receives the online sets it asked for.
func PresenceSnapT(gateway string) string { return presencePrefix + "snap." + gateway }

// User subjects (core NATS): read sync and the user's own membership changes.
const (
	UserEvents = "im.user.*.events"
	userPrefix = "im.user."
)

// UserEventsT is the subject of events targeted at every session of user.
func UserEventsT(user string) string { return userPrefix + user + ".events" }

// Gateway ack subjects: logic replies to the gateway that published a send here.
const GatewayAcks = "im.gw.*.acks"

// GatewayAcksT is the ack subject of gateway id.
func GatewayAcksT(gateway string) string { return "im.gw." + gateway + ".acks" }

// Cache invalidation subjects.
const CacheInval = "im.cache.inval.*"

// CacheInvalT is the invalidation subject of a metadata table.
func CacheInvalT(table string) string { return "im.cache.inval." + table }

// KV buckets.
const (
	// BucketNodes holds one key per live node with a per-key TTL.
	BucketNodes = "im_nodes"
	// BucketCDC holds `laneim cdc`'s binlog checkpoint (key CDCPositionKey): where
	// the next reader resumes. No TTL, one revision.
	BucketCDC = "im_cdc"
	// BucketCDCLock holds the reader lock of `laneim cdc` (key CDCLockKey). Its TTL
	// is the lock's: a holder that stops refreshing loses it.
	BucketCDCLock = "im_cdc_lock"
	// CDCPositionKey and CDCLockKey are the keys of those buckets.
	CDCPositionKey = "position"
	CDCLockKey     = "lock"
	// BucketPartitions holds one key per member of a partition group,
	// <role>.<node>, with a short per-key TTL: the live logic and pusher nodes among
	// which IM_IN and IM_OUT partitions are shared.
	BucketPartitions = "im_partitions"
)

// Logic's NATS services (nats.go/micro): `nats micro ls` lists them, queue groups
// spread the load.
const (
	LogicService = "laneim-logic"
	// LogicQueue is the queue group of every logic endpoint: NATS hands each request
	// to one of the subscribed logic nodes, at random.
	LogicQueue    = "laneim-logic"
	ServicePrefix = "im.svc"

	SvcHistory      = "im.svc.history"
	SvcRoomState    = "im.svc.room.state"
	SvcRoomCreate   = "im.svc.room.create"
	SvcRoomGet      = "im.svc.room.get"
	SvcMemberAdd    = "im.svc.member.add"
	SvcMemberRemove = "im.svc.member.remove"
	SvcMemberList   = "im.svc.member.list"
	SvcReadSet      = "im.svc.read.set"
	SvcUserRooms    = "im.svc.user.rooms"
	SvcNonceLookup  = "im.svc.nonce.lookup"
	// LogicPing is nats.go/micro's ping of logic's service: any node answers.
	LogicPing = "$SRV.PING." + LogicService
)

// Logic's services of what a user accepts: leaving rooms in bulk, and blocking the
// adds of other users (docs/protocol.md).
const (
	SvcUserLeave   = "im.svc.user.leave"
	SvcBlockAdd    = "im.svc.block.add"
	SvcBlockRemove = "im.svc.block.remove"
	SvcBlockList   = "im.svc.block.list"
)

// Logic's services of a room's owner: rename, transfer and delete the room, and
// appoint its moderators (docs/protocol.md).
const (
	SvcRoomRename   = "im.svc.room.rename"
	SvcRoomTransfer = "im.svc.room.transfer"
	SvcRoomDelete   = "im.svc.room.delete"
	SvcModeratorSet = "im.svc.moderator.set"
)

// Logic's services of moderation by a room's owner and moderators: mute and ban
// members, lift those, and list them (docs/protocol.md).
const (
	SvcSanctionSet  = "im.svc.sanction.set"
	SvcSanctionList = "im.svc.sanction.list"
)

// The server API over NATS (docs/protocol.md, Server API): gateways serve ServerAPI
// as a micro service in the queue group ServerQueue, answering a request with what
// the HTTP API would answer for an API key. Only the server role (and the operator)
// may request it. SvcUserKick is logic's service behind POST /v1/users/{user}/kick,
// which logic grants to server requests only.
const (
	ServerService = "laneim-server"
	ServerQueue   = "laneim-server"
	ServerAPI     = "im.server.api"
	SvcUserKick   = "im.svc.user.kick"
)

// Headers carried on ingest, outbound and fanout messages.
const (
	HeaderMsgID   = "Nats-Msg-Id"
	HeaderUser    = "Laneim-User"
	HeaderNonce   = "Laneim-Nonce"
	HeaderReply   = "Laneim-Reply"
	HeaderSeq     = "Laneim-Seq"
	HeaderLast    = "Laneim-Last"
	HeaderTs      = "Laneim-Ts"
	HeaderSession = "Laneim-Session"
	// HeaderMark names the message an edit or a delete acts on (schema.MarkHeader);
	// absent on a plain message.
	HeaderMark = "Laneim-Mark"
	// HeaderToken carries the client's own token on every request a gateway makes
	// for it and on its sends: logic acts only as the subject of a token it has
	// verified.
	HeaderToken = "Laneim-Token"
)

// MsgIDT is the JetStream dedupe id of a send: nonces are scoped to a user in a room.
// The nonce is encoded as in HeaderNonce, so that two nonces that differ only in white
// space never share an id.
func MsgIDT(room, user, nonce string) string { return room + ":" + user + ":" + EncodeNonce(nonce) }

// EncodeNonce is how a nonce travels in a NATS header (HeaderNonce, HeaderMsgID). A
// nonce is any printable ASCII, spaces included, but nats.go trims white space around
// header values: "  n1" would arrive as "n1", be stored under another nonce than the
// one the client waits for, and deduplicate a different message sent as " n1". In
// unpadded base64url every nonce arrives byte for byte.
func EncodeNonce(nonce string) string { return base64.RawURLEncoding.EncodeToString([]byte(nonce)) }

// DecodeNonce reverses EncodeNonce; ok is false for a value EncodeNonce cannot produce.
func DecodeNonce(v string) (nonce string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Kinds of room subjects.
const (
	KindMsgs   = "msgs"
	KindTick   = "tick"
	KindEvents = "events"
	KindTyping = "typing"
)

// ParseRoomSubject splits im.room.<room>.<kind> into room and kind.
func ParseRoomSubject(subject string) (room, kind string, ok bool) {
	rest, found := strings.CutPrefix(subject, roomPrefix)
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// ParseUserSubject returns the user of im.user.<user>.events.
func ParseUserSubject(subject string) (user string, ok bool) {
	rest, found := strings.CutPrefix(subject, userPrefix)
	if !found {
		return "", false
	}
	user, found = strings.CutSuffix(rest, ".events")
	return user, found && user != ""
}
