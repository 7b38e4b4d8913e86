// Package logging builds the process logger from configs.LogConfig: zerolog, human
// readable on a console in dev, JSON lines otherwise, to stderr or to a file rotated by
// lumberjack. Components receive a zerolog.Logger (usually with a "component" field);
// nothing logs through a global. RateLimited guards logs on hot paths.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/laneim/laneim/configs"
)

// timeLayout is the timestamp of every event: RFC 3339 with milliseconds, since
// zerolog's default of whole seconds cannot order the steps of one message's path.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// consoleTimeLayout is what the console shows of the timestamp.
const consoleTimeLayout = "15:04:05.000"

// New returns the process logger and a Closer for its file (a no-op for stderr); close
// it last, after the final log line. cfg.Format "" means console when dev is set and
// JSON otherwise. A log file is opened here, so a bad path fails now rather than at
// the first event.
func New(cfg configs.LogConfig, dev bool) (zerolog.Logger, io.Closer, error) {
	level := zerolog.InfoLevel
	if cfg.Level != "" {
		parsed, err := zerolog.ParseLevel(cfg.Level)
		if err != nil {
			return zerolog.Nop(), nopCloser{}, fmt.Errorf("log level %q: %w", cfg.Level, err)
		}
		level = parsed
	}

	format := cfg.Format
	if format == "" {
		format = configs.FormatJSON
		if dev {
			format = configs.FormatConsole
		}
	}
	if format != configs.FormatConsole && format != configs.FormatJSON {
		return zerolog.Nop(), nopCloser{}, fmt.Errorf("log format %q: want %q or %q", cfg.Format, configs.FormatConsole, configs.FormatJSON)
	}

	var (
		out    io.Writer = os.Stderr
		closer io.Closer = nopCloser{}
		color            = isTerminal(os.Stderr) && os.Getenv("NO_COLOR") == ""
	)
	if cfg.File != "" {
		file := &lumberjack.Logger{
			Filename:   cfg.File,
			MaxSize:    cfg.MaxSizeMB,
			MaxBackups: cfg.MaxBackups,
			MaxAge:     cfg.MaxAgeDays,
		}
		// lumberjack opens (and creates the directory) on the first write; an empty
		// write does only that.
		if _, err := file.Write(nil); err != nil {
			return zerolog.Nop(), nopCloser{}, fmt.Errorf("log file: %w", err)
		}
		out, closer, color = file, file, false
	}

	if format == configs.FormatConsole {
		out = zerolog.ConsoleWriter{
			Out:             out,
			NoColor:         !color,
			FormatTimestamp: formatConsoleTimestamp(color),
		}
	}
	logger := zerolog.New(out).Level(level).Hook(timestampHook{})
	return logger, closer, nil
}

// timestampHook stamps each event with timeLayout in UTC. It replaces zerolog's
// Timestamp(), whose format is the package-global TimeFieldFormat.
type timestampHook struct{}

func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	var buf [len(timeLayout) + 8]byte
	e.Str(zerolog.TimestampFieldName, string(time.Now().UTC().AppendFormat(buf[:0], timeLayout)))
}

func formatConsoleTimestamp(color bool) zerolog.Formatter {
	return func(value any) string {
		text, _ := value.(string)
		if t, err := time.Parse(timeLayout, text); err == nil {
			text = t.Local().Format(consoleTimeLayout)
		}
		if color {
			return "\x1b[90m" + text + "\x1b[0m" // dark gray, as zerolog's own
		}
		return text
	}
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
