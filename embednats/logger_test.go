package embednats

import (
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

func TestServerLoggerLevels(t *testing.T) {
	tests := []struct {
		name         string
		log          zerolog.Logger
		debug, trace bool
	}{
		{"zero Logger discards", zerolog.Logger{}, false, false},
		{"Nop", zerolog.Nop(), false, false},
		{"info", zerolog.New(io.Discard).Level(zerolog.InfoLevel), false, false},
		{"debug", zerolog.New(io.Discard).Level(zerolog.DebugLevel), true, false},
		{"trace", zerolog.New(io.Discard).Level(zerolog.TraceLevel), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug, trace := newServerLogger(tt.log).levels()
			if debug != tt.debug || trace != tt.trace {
				t.Errorf("debug %v trace %v, want %v %v", debug, trace, tt.debug, tt.trace)
			}
		})
	}
}

func TestServerLoggerFatalDoesNotExit(t *testing.T) {
	var out strings.Builder
	logger := newServerLogger(zerolog.New(&out))
	cause := syscall.EADDRINUSE
	logger.Fatalf("Error listening on port: %s, %q", "127.0.0.1:4222", cause)
	logger.Fatalf("second")
	err := logger.fatal()
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "127.0.0.1:4222") {
		t.Fatalf("fatal() = %v, want the first fatal, wrapping its error", err)
	}
	if !strings.Contains(out.String(), `"level":"error","fatal":true`) {
		t.Errorf("fatal not logged as an error: %s", out.String())
	}
}
