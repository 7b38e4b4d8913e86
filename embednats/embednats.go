// Package embednats runs a nats-server with JetStream inside the laneim process, for
// `laneim dev` and for tests. Every role reaches it through an in-process connection
// (net.Pipe, no TCP), so `laneim dev` follows the same message path as a cluster:
// gateway publishes on IM_IN, logic and pusher consume JetStream, gateways subscribe to
// core NATS room subjects. A TCP listener is optional and exists for tools such as the
// nats CLI (`nats sub 'im.room.*.msgs'`).
package embednats

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// DefaultReadyTimeout bounds how long Start waits for the server to accept clients and
// for JetStream to be enabled. Recovering a large store can take a while; an empty one
// takes a few milliseconds.
const DefaultReadyTimeout = 30 * time.Second

// DefaultServerName is the server name when Options.ServerName is empty. nats-server
// derives the JetStream node name from it, and `nats server ls` shows it.
const DefaultServerName = "laneim"

// Options configures the embedded server. The zero value of each field means its
// default; Dir is required unless Memory is set.
type Options struct {
	// Dir is the JetStream storage directory; nats-server keeps its files in
	// Dir/jetstream. Required unless Memory is set.
	Dir string
	// Listen is the "host:port" of a TCP listener for external clients such as the nats
	// CLI. Port 0 picks a free port (see ClientURL). Empty means no listener: only
	// in-process connections (Server.Connect) reach the server.
	Listen string
	// Memory makes the server's storage ephemeral, for tests: when Dir is empty a
	// temporary directory is created and removed by Shutdown. JetStream still needs a
	// directory even if every stream uses memory storage; without one nats-server falls
	// back to a shared $TMPDIR/jetstream that concurrent tests would fight over. Streams
	// choose their own storage type: Memory does not change it.
	Memory bool
	// Logger receives nats-server's logs, one event per line nats-server formats;
	// label it yourself (log.With().Str("component", "nats")). The zero Logger discards
	// them. Notices are info, about 20 lines at start and 4 at shutdown: pass a Logger
	// at warn level to hide them. nats-server's debug and trace logs are produced only
	// when Logger lets them through; trace logs every protocol operation.
	Logger zerolog.Logger
	// ServerName is the server's name; default DefaultServerName.
	ServerName string
	// MaxPayload is the largest message the server accepts, in bytes; default
	// nats-server's 1 MiB.
	MaxPayload int32
	// MaxMemory and MaxStore cap JetStream memory and file storage, in bytes; zero lets
	// nats-server size them from the machine (75% of RAM, most of the disk).
	MaxMemory int64
	MaxStore  int64
	// ReadyTimeout bounds the wait in Start; default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Users, when set, are the only credentials the server accepts: anonymous
	// connections are refused, in-process ones included. Empty means no
	// authentication (tests of a single component).
	Users []User
}

// User is a user of the embedded server: a name and password, and the subjects it may
// publish and subscribe to.
type User struct {
	Name     string
	Password string
	// Publish and Subscribe list the allowed subjects (wildcards allowed); nil allows
	// everything.
	Publish   []string
	Subscribe []string
	// Responses lets the user answer a request it received on the request's reply
	// subject, whatever Publish says (a service).
	Responses bool
}

// serverUsers gives nats-server the users with bcrypt hashes of their passwords, so
// that no password sits in its memory in clear. The passwords are random and long,
// so the cheapest cost is enough, and each connect pays about 1ms rather than 50.
func serverUsers(users []User) ([]*server.User, error) {
	out := make([]*server.User, len(users))
	for i, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("embednats: user %s: %w", u.Name, err)
		}
		su := &server.User{Username: u.Name, Password: string(hash), Permissions: &server.Permissions{}}
		if u.Publish != nil {
			su.Permissions.Publish = &server.SubjectPermission{Allow: u.Publish}
		}
		if u.Subscribe != nil {
			su.Permissions.Subscribe = &server.SubjectPermission{Allow: u.Subscribe}
		}
		if u.Responses {
			// One answer per request, within the default two minutes.
			su.Permissions.Response = &server.ResponsePermission{MaxMsgs: 1}
		}
		out[i] = su
	}
	return out, nil
}

// Server is a running embedded nats-server.
type Server struct {
	// All fields are set once in Start.
	ns        *server.Server
	name      string
	listening bool
	dir       string // Options.Dir, or tempDir
	tempDir   string // removed by Shutdown; "" when Options.Dir was used
}

// Start starts a nats-server with JetStream and returns once it accepts clients and
// JetStream is enabled. When the server cannot start (Listen address in use, store
// directory unusable, timeout), Start shuts it down again and returns the reason.
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" && !opts.Memory {
		return nil, errors.New("embednats: Options.Dir is required unless Memory is set")
	}
	host, port, err := parseListen(opts.Listen)
	if err != nil {
		return nil, err
	}
	if opts.ServerName == "" {
		opts.ServerName = DefaultServerName
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}

	dir, tempDir := opts.Dir, ""
	if dir == "" {
		tempDir, err = os.MkdirTemp("", "laneim-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embednats: create temporary store dir: %w", err)
		}
		dir = tempDir
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embednats: create store dir: %w", err)
	}
	removeTemp := func() {
		if tempDir != "" {
			_ = os.RemoveAll(tempDir)
		}
	}

	serverOpts := &server.Options{
		ServerName:             opts.ServerName,
		Host:                   host,
		Port:                   port,
		DontListen:             opts.Listen == "",
		MaxPayload:             opts.MaxPayload,
		JetStream:              true,
		StoreDir:               dir,
		JetStreamMaxMemory:     opts.MaxMemory,
		JetStreamMaxStore:      opts.MaxStore,
		DisableJetStreamBanner: true,
		// laneim owns SIGINT/SIGTERM; nats-server would otherwise install its own
		// handlers and exit the process.
		NoSigs: true,
	}
	if len(opts.Users) > 0 {
		if serverOpts.Users, err = serverUsers(opts.Users); err != nil {
			removeTemp()
			return nil, err
		}
	}
	ns, err := server.NewServer(serverOpts)
	if err != nil {
		removeTemp()
		return nil, fmt.Errorf("embednats: configure nats-server: %w", err)
	}
	// NewServer leaves the logger unset and Start must not run with nats-server's own
	// logger: its Fatalf calls os.Exit. Ours records the fatal error for Start to return.
	logger := newServerLogger(opts.Logger)
	debug, trace := logger.levels()
	ns.SetLoggerV2(logger, debug, trace, false)

	// Server.Start runs its setup, including enabling JetStream and opening the client
	// listener, on this goroutine; failures arrive through Fatalf.
	ns.Start()
	s := &Server{ns: ns, name: opts.ServerName, listening: opts.Listen != "", dir: dir, tempDir: tempDir}
	if err := s.waitReady(logger, opts); err != nil {
		s.Shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(logger *serverLogger, opts Options) error {
	deadline := time.Now().Add(opts.ReadyTimeout)
	if err := logger.fatal(); err != nil {
		return startError(opts, err)
	}
	if !s.ns.ReadyForConnections(opts.ReadyTimeout) {
		if err := logger.fatal(); err != nil {
			return startError(opts, err)
		}
		return fmt.Errorf("embednats: nats-server not ready for connections after %s", opts.ReadyTimeout)
	}
	for !s.ns.JetStreamEnabled() {
		if err := logger.fatal(); err != nil {
			return startError(opts, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embednats: JetStream not enabled after %s", opts.ReadyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func startError(opts Options, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("embednats: nats listen address %s is already in use "+
			"(is another laneim or nats-server running? choose another nats_listen, or \"none\"): %w",
			opts.Listen, err)
	}
	return fmt.Errorf("embednats: start nats-server: %w", err)
}

// parseListen turns Listen into nats-server's Host and Port. nats-server reads Port 0
// as its default 4222 and -1 as "pick a free port", so ":0" maps to -1.
func parseListen(listen string) (string, int, error) {
	if listen == "" {
		return "", 0, nil
	}
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("embednats: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embednats: listen address %q: port must be 0 to 65535", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// Connect opens an in-process connection: a net.Pipe to the server, no TCP and no
// listener needed. The connection is named "laneim" unless opts set another name;
// opts are applied after the defaults.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := make([]nats.Option, 0, len(opts)+2)
	all = append(all, nats.Name(s.name), nats.InProcessServer(s.ns))
	all = append(all, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("embednats: in-process connect: %w", err)
	}
	return nc, nil
}

// ClientURL is the URL external clients dial ("nats://127.0.0.1:4222"), with the port
// the server actually bound when Listen asked for port 0. It is "" when the server
// does not listen.
func (s *Server) ClientURL() string {
	if !s.listening {
		return ""
	}
	return s.ns.ClientURL()
}

// StoreDir is the directory given to nats-server (it keeps its files in
// StoreDir()/jetstream).
func (s *Server) StoreDir() string { return s.dir }

// Shutdown stops the server, waits until it has stopped and, with Options.Memory and no
// Dir, removes its temporary directory. Connections see the server go away; close
// them first to avoid reconnect attempts in their logs.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// NATS returns the underlying server, for monitoring (Varz, Connz, JszOptions) and tests.
func (s *Server) NATS() *server.Server { return s.ns }
