package roles

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/subjects"
)

// ClusteredReplicas is the replication of streams and buckets on a clustered NATS
// server when cfg.Replicas does not say: JetStream R3 survives the loss of one server.
const ClusteredReplicas = 3

// Connect connects role to the NATS servers of cfg.NATSURL with cfg's credential, the
// role's inbox prefix, and reconnects forever. It waits until connected, logging
// which servers it is waiting for, and returns an error only when ctx ends first.
// With no credential it connects as is and warns: a server without authorization
// lets every role do everything.
func Connect(ctx context.Context, cfg configs.Config, role, name string, log zerolog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if cfg.NATSURL == "" {
		return nil, fmt.Errorf("%s: no NATS to connect to: set %s or --nats-url", role, configs.EnvName("nats_url"))
	}
	all := []nats.Option{
		nats.Name("laneim-" + name),
		nats.CustomInboxPrefix(subjects.InboxPrefixT(role)),
		nats.MaxReconnects(-1),
		// A server of the cluster that is down is tried again after this long; the
		// others are tried at once.
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil || nc.IsClosed() || nc.IsDraining() {
				return // closed on purpose
			}
			log.Warn().Err(err).Str("server", nc.ConnectedUrlRedacted()).Msg("NATS disconnected, reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
	}
	switch {
	case cfg.NATSCreds != "":
		all = append(all, nats.UserCredentials(cfg.NATSCreds))
	case cfg.NATSUser != "":
		all = append(all, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	case cfg.NATSToken != "":
		all = append(all, nats.Token(cfg.NATSToken))
	default:
		log.Warn().Msgf("no NATS credential (%s, %s and %s, or %s): connecting without one",
			configs.EnvName("nats_creds"), configs.EnvName("nats_user"), configs.EnvName("nats_password"), configs.EnvName("nats_token"))
	}
	nc, err := nats.Connect(cfg.NATSURL, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: NATS %s: %w", role, cfg.NATSURL, err)
	}
	err = WaitFor(ctx, log, "NATS at "+cfg.NATSURL, func(context.Context) error {
		if nc.IsConnected() {
			return nil
		}
		if err := nc.LastError(); err != nil {
			return err
		}
		return fmt.Errorf("not connected (%s)", nc.Status())
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	log.Info().Str("server", nc.ConnectedUrlRedacted()).Str("server_name", nc.ConnectedServerName()).
		Str("cluster", nc.ConnectedClusterName()).Msg("connected to NATS")
	return nc, nil
}

// Replicas is cfg.Replicas, or ClusteredReplicas when nc's server belongs to a
// cluster, 1 otherwise.
func Replicas(cfg configs.Config, nc *nats.Conn) int {
	if cfg.Replicas > 0 {
		return cfg.Replicas
	}
	if nc.ConnectedClusterName() != "" {
		return ClusteredReplicas
	}
	return 1
}
