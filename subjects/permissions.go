package subjects

// Roles of laneIM processes on NATS. Each role connects with a credential of its own
// and may publish and subscribe only to what its part of the message path needs, so
// that a leaked pusher credential cannot send messages, a gateway's cannot forge
// member events, and none but logic's can serve or answer logic's services. Acting
// for a user needs that user's token besides (HeaderToken): no role credential alone
// reads a private room or sends as someone.
const (
	RoleGateway  = "gateway"
	RoleLogic    = "logic"
	RolePusher   = "pusher"
	RoleCDC      = "cdc"      // `laneim cdc`: binlog reader, cache invalidations
	RoleOperator = "operator" // people and tools: everything
	// RoleServer is a product's backend: it may call the server API (ServerAPI) and
	// nothing else. Its clients take their replies under InboxPrefixT(RoleServer).
	RoleServer = "server"
)

// Roles lists the process roles (the operator aside).
var Roles = []string{RoleGateway, RoleLogic, RolePusher, RoleCDC}

// Users lists the NATS users with permissions of their own: the process roles, and
// the server API's clients (the operator aside, allowed everything).
var Users = []string{RoleGateway, RoleLogic, RolePusher, RoleCDC, RoleServer}

// InboxPrefixT is the prefix of a role's reply subjects. Each role subscribes only to
// its own, so one role cannot read the replies another role's requests get (history
// pages, a user's rooms).
func InboxPrefixT(role string) string { return "_INBOX_" + role }

// Permissions are the subjects a role may publish and subscribe to (nats-server
// wildcards), and whether it may answer requests it received on their reply
// subjects. A nil list allows everything.
type Permissions struct {
	Publish   []string
	Subscribe []string
	Responses bool
}

const (
	jsAPI     = "$JS.API."
	jsAck     = "$JS.ACK."
	kvPrefix  = "$KV."
	kvStream  = "KV_"
	srvPrefix = "$SRV."
)

// bucketAccess is what a role publishes to use KV bucket: create it if it is missing
// (whichever role starts first), put and delete keys, get them, list and watch them
// (ordered consumers on the bucket's stream).
func bucketAccess(bucket string) []string {
	stream := kvStream + bucket
	return []string{jsAPI + "STREAM.INFO." + stream, jsAPI + "STREAM.CREATE." + stream,
		jsAPI + "CONSUMER.*." + stream + ".>", jsAPI + "DIRECT.GET." + stream + ".>",
		jsAPI + "STREAM.MSG.GET." + stream, kvPrefix + bucket + ".>"}
}

// RolePermissions returns what role may do on NATS; the operator may do everything.
func RolePermissions(role string) Permissions {
	inbox := InboxPrefixT(role) + ".>"
	switch role {
	case RoleGateway:
		return Permissions{
			// Sends into IM_IN (JetStream answers on the inbox), requests to logic and
			// its ping (healthz), and its discovery entry and the others' (GET
			// /v1/gateways) in im_nodes, which it creates when it comes first
			// (creating a bucket reads the account's JetStream info). Presence and
			// typing are the gateways' own: nothing else publishes them, and nothing
			// stores them.
			Publish: append([]string{In, ServicePrefix + ".>", LogicPing, jsAPI + "INFO",
				RoomTyping, PresenceGateways, PresenceSync, PresenceSnap}, bucketAccess(BucketNodes)...),
			// Room frames, ticks, events and typing, user events, its acks, the
			// other gateways' presence, the notifier's question of who is active, and
			// the server API it serves (with micro's discovery subjects); it answers
			// the last two on the request's reply subject, hence Responses.
			Subscribe: []string{RoomMsgs, RoomTicks, RoomEvents, RoomTyping, UserEvents, GatewayAcks,
				PresenceGateways, PresenceSync, PresenceSnap, PresenceActive,
				ServerAPI, srvPrefix + "*", srvPrefix + "*." + ServerService + ".>", srvPrefix + "*." + ServerService, inbox},
			Responses: true,
		}
	case RoleServer:
		// The product's backend: the server API's requests, micro's discovery of its
		// service (`nats micro ls`), and its own durable consumers of the offline
		// hook's IM_NOTIFY; the replies come to its own inbox.
		return Permissions{
			Publish: []string{ServerAPI, srvPrefix + "*." + ServerService, srvPrefix + "*." + ServerService + ".>",
				jsAPI + "INFO", jsAPI + "STREAM.INFO." + StreamNotify, jsAPI + "CONSUMER.*." + StreamNotify,
				jsAPI + "CONSUMER.*." + StreamNotify + ".>", jsAPI + "CONSUMER.DURABLE.CREATE." + StreamNotify + ".>",
				jsAPI + "CONSUMER.MSG.NEXT." + StreamNotify + ".>", jsAck + StreamNotify + ".>"},
			Subscribe: []string{inbox},
		}
	case RoleLogic:
		return Permissions{
			// Logic owns the streams and consumers (any JetStream API), acks IM_IN,
			// publishes stored messages to IM_OUT, acks to gateways, member and read
			// events, the dev stack's discovery entries, the cache invalidations
			// of the metadata it writes, and the sends that mention users
			// (IM_MENTIONS).
			Publish: []string{jsAPI + ">", jsAck + StreamIn + ".>", Out, GatewayAcks, RoomEvents, UserEvents,
				kvPrefix + BucketNodes + ".>", kvPrefix + BucketPartitions + ".>", CacheInval, Mentions},
			// Its services (and micro's discovery subjects), the notifier's
			// membership check, and every node's cache invalidations.
			Subscribe: []string{ServicePrefix + ".>", srvPrefix + ">", MembersCheck, CacheInval, inbox},
			Responses: true,
		}
	case RolePusher:
		return Permissions{
			// IM_OUT's consumers and acks, and the frames it builds.
			// Its partition group: the im_partitions bucket (created by whichever role
			// comes first), its key and a watch; the first message past a partition's
			// ack floor at a takeover (STREAM.MSG.GET).
			// Its discovery entry in im_nodes (whose other entries count the live
			// gateways for the notifier).
			// The notifier: IM_MENTIONS's shared consumer and acks, logic's
			// membership check, the gateways' answer of who is active, and its
			// verdicts into IM_NOTIFY (JetStream answers on the inbox).
			Publish: append(append([]string{jsAPI + "INFO", jsAPI + "STREAM.INFO." + StreamOut, jsAPI + "STREAM.MSG.GET." + StreamOut,
				jsAPI + "CONSUMER.*." + StreamOut + ".>", jsAPI + "CONSUMER.MSG.NEXT." + StreamOut + ".>",
				jsAck + StreamOut + ".>", RoomMsgs, RoomTicks,
				jsAPI + "STREAM.INFO." + StreamMentions, jsAPI + "CONSUMER.*." + StreamMentions + ".>",
				jsAPI + "CONSUMER.MSG.NEXT." + StreamMentions + ".>", jsAck + StreamMentions + ".>",
				MembersCheck, PresenceActive, Notify},
				bucketAccess(BucketPartitions)...), bucketAccess(BucketNodes)...),
			Subscribe: []string{inbox},
		}
	case RoleCDC:
		// Invalidations, the member events of memberships changed in SQL, its two
		// KV buckets (created, read and written) and its discovery entry in
		// im_nodes: nothing else of JetStream.
		publish := []string{CacheInval, UserEvents, jsAPI + "INFO"}
		for _, bucket := range []string{BucketCDC, BucketCDCLock} {
			stream := "KV_" + bucket
			publish = append(publish, kvPrefix+bucket+".>",
				jsAPI+"STREAM.INFO."+stream, jsAPI+"STREAM.CREATE."+stream, jsAPI+"STREAM.UPDATE."+stream,
				jsAPI+"STREAM.MSG.GET."+stream, jsAPI+"DIRECT.GET."+stream+".>")
		}
		publish = append(publish, bucketAccess(BucketNodes)...)
		return Permissions{Publish: publish, Subscribe: []string{inbox}}
	}
	return Permissions{}
}
