package main

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"github.com/urfave/cli/v2"
)

// Names of the global flags.
const (
	flagLogLevel  = "log-level"
	flagLogFormat = "log-format"
	flagDevice    = "device"
	flagThreads   = "threads"
	// flagAllowNonFinite loads checkpoints with NaN or infinite weights.
	flagAllowNonFinite = "allow-nonfinite"
	// flagAllowChangedData resumes runs whose data changed.
	flagAllowChangedData = "allow-changed-data"
	// flagDistTimeout is the data-parallel watchdog's timeout.
	flagDistTimeout = "dist-timeout"
)

// globalFlags are the flags every command shares; they go before the
// command name.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  flagLogLevel,
			Value: "info",
			Usage: "log verbosity: trace, debug, info, warn or error",
		},
		&cli.StringFlag{
			Name:  flagLogFormat,
			Value: "console",
			Usage: "log encoding on stderr: console (human-readable) or json (one object per line)",
		},
		&cli.StringFlag{
			Name:  flagDevice,
			Value: "auto",
			Usage: "compute device: auto (cuda when this binary has the cuda backend and a GPU answers, else cpu), cpu, cuda or cuda:N (GPU ordinal N)",
		},
		precisionFlag(),
		chatTemplateFlag(),
		saveDTypeFlag(),
		&cli.BoolFlag{
			Name:  flagAllowChangedData,
			Usage: "let --resume continue a run whose data files changed since it started (refused otherwise)",
		},
		&cli.BoolFlag{
			Name:  flagAllowNonFinite,
			Usage: "load checkpoints whose weights hold NaN or infinities (refused otherwise; to inspect or repair a diverged run)",
		},
		&cli.IntFlag{
			Name:  flagThreads,
			Value: 0,
			Usage: "worker threads of the cpu backend (0: all logical cores); GOMAXPROCS keeps Go's default",
		},
		&cli.DurationFlag{
			Name:  flagDistTimeout,
			Value: defaultDistTimeout,
			Usage: "data parallel: end the run when a collective waits this long or a rank's heartbeat stops this long (a rank hangs), naming the rank (0: never)",
		},
	}
}

// logLevels are the accepted --log-level values.
var logLevels = map[string]zerolog.Level{
	"trace": zerolog.TraceLevel,
	"debug": zerolog.DebugLevel,
	"info":  zerolog.InfoLevel,
	"warn":  zerolog.WarnLevel,
	"error": zerolog.ErrorLevel,
}

// setupGlobals validates the global flags and installs the logger. It runs
// before any command (app.Before); its errors are usage errors.
func setupGlobals(c *cli.Context) error {
	level, ok := logLevels[c.String(flagLogLevel)]
	if !ok {
		return usageErrorf("invalid --%s %q: want trace, debug, info, warn or error", flagLogLevel, c.String(flagLogLevel))
	}
	logOut := c.App.ErrWriter
	if c.String(flagLogFormat) == "console" && isTerminal(logOut) {
		bar := newBarProgress(logOut)
		if c.App.Metadata == nil {
			c.App.Metadata = map[string]any{}
		}
		c.App.Metadata[progressKey] = bar
		logOut = bar.Writer(logOut)
	}
	color := isTerminal(c.App.ErrWriter) && os.Getenv("NO_COLOR") == ""
	logger, err := newLogger(logOut, c.String(flagLogFormat), level, color)
	if err != nil {
		return err
	}
	if _, err := parseDevice(c.String(flagDevice)); err != nil {
		return &usageError{err: err}
	}
	if err := checkPrecisionFlag(c); err != nil {
		return err
	}
	if err := checkChatTemplateFlag(c); err != nil {
		return err
	}
	if n := c.Int(flagThreads); n < 0 {
		return usageErrorf("invalid --%s %d: want 0 (all cores) or a positive count", flagThreads, n)
	}
	if d := c.Duration(flagDistTimeout); d < 0 {
		return usageErrorf("invalid --%s %v: want 0 (no watchdog) or a positive duration such as 10m", flagDistTimeout, d)
	}

	// Commands find the logger with zerolog.Ctx(c.Context) and pass the
	// context on. Code that uses zerolog's global logger, or a context
	// without a logger, gets the same one.
	c.Context = logger.WithContext(c.Context)
	log.Logger = logger
	zerolog.DefaultContextLogger = &logger
	return nil
}

// newLogger returns a logger writing to w in the given format ("console" or
// "json") at the given level; color applies to the console format.
func newLogger(w io.Writer, format string, level zerolog.Level, color bool) (zerolog.Logger, error) {
	switch format {
	case "console":
		w = zerolog.ConsoleWriter{
			Out:        w,
			TimeFormat: time.TimeOnly,
			NoColor:    !color,
		}
	case "json":
	default:
		return zerolog.Nop(), usageErrorf("invalid --%s %q: want console or json", flagLogFormat, format)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0
}

// logger is the logger setupGlobals installed for this command line.
func logger(c *cli.Context) *zerolog.Logger {
	return zerolog.Ctx(c.Context)
}
