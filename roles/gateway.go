package roles

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/gateway"
	"github.com/laneim/laneim/nodes"
	"github.com/laneim/laneim/notify"
	"github.com/laneim/laneim/pusher"
)

// GatewayConfig is the configuration of a gateway with id and secret from cfg; nodes
// lists the live nodes (GET /v1/gateways, /v1/status). Dev sets its own fields on
// top (the dev token route, the web demo).
func GatewayConfig(cfg configs.Config, id string, secret []byte, list func(ctx context.Context) ([]nodes.Info, error), log zerolog.Logger) gateway.Config {
	return gateway.Config{
		ID:                      id,
		Secret:                  secret,
		APIKeys:                 cfg.APIKeys,
		Nodes:                   list,
		MaxFrameBytes:           cfg.MaxFrameBytes,
		MaxBodyBytes:            cfg.MaxBodyBytes,
		Heartbeat:               cfg.Heartbeat(),
		MaxQueueBytes:           cfg.MaxQueueBytes,
		RateLimit:               float64(cfg.RateLimit),
		MaxRoomsPerUser:         cfg.MaxRoomsPerUser,
		MaxConnsPerUser:         cfg.MaxConnsPerUser,
		MaxSubscriptionsPerConn: cfg.MaxSubscriptionsPerConn,
		TicksInterval:           cfg.TicksInterval,
		PresenceInterval:        cfg.PresenceInterval,
		PresenceHeartbeat:       cfg.PresenceHeartbeat,
		PresenceTimeout:         cfg.PresenceTimeout,
		Logger:                  log,
	}
}

// PusherConfig is the configuration of a pusher named node ("" for
// partition.NodeName()) creating the partition bucket with replicas if needed.
func PusherConfig(node string, replicas int, log zerolog.Logger) pusher.Config {
	return pusher.Config{Node: node, Replicas: replicas, Logger: log}
}

// NotifyConfig is the offline hook's notifier of a pusher: every pusher runs one, on
// IM_NOTIFY and, when cfg says so, the webhook.
func NotifyConfig(cfg configs.Config) *notify.Config {
	return &notify.Config{WebhookURL: cfg.OfflineWebhookURL, WebhookSecret: []byte(cfg.OfflineWebhookSecret)}
}
