package embednats

import (
	"fmt"
	"sync"

	"github.com/rs/zerolog"
)

// serverLogger implements nats-server's server.Logger on top of zerolog. nats-server
// formats its own messages, so each call becomes one event with the formatted text.
type serverLogger struct {
	log zerolog.Logger // set once at construction

	mu       sync.Mutex
	fatalErr error // guarded by mu; the first Fatalf since start
}

func newServerLogger(log zerolog.Logger) *serverLogger {
	return &serverLogger{log: log}
}

// levels reports whether nats-server should produce debug and trace logs at all: it
// checks these flags before formatting, which is cheaper than zerolog dropping them.
func (l *serverLogger) levels() (debug, trace bool) {
	// Asking for an event is the one check that covers the logger's level, the global
	// level and the zero Logger (no writer, which reports DebugLevel from GetLevel).
	return l.log.Debug().Enabled(), l.log.Trace().Enabled()
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Info().Msgf(format, v...) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

// Fatalf records the error instead of exiting: nats-server reports startup failures
// (listener in use, JetStream store unusable) this way and then returns from Start,
// and an embedding process must decide for itself whether to exit.
func (l *serverLogger) Fatalf(format string, v ...any) {
	err := &fatalError{msg: fmt.Sprintf(format, v...)}
	for _, arg := range v {
		if cause, ok := arg.(error); ok {
			err.cause = cause
			break
		}
	}
	l.log.Error().Bool("fatal", true).Msg(err.msg)
	l.mu.Lock()
	if l.fatalErr == nil {
		l.fatalErr = err
	}
	l.mu.Unlock()
}

func (l *serverLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

// fatalError is nats-server's fatal message, unwrapping to the error it formatted (for
// example the *net.OpError of a failed listen) so that errors.Is works.
type fatalError struct {
	msg   string
	cause error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.cause }
