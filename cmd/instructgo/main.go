package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// run executes one command line (args[0] is the program name) with command
// output on stdout and logs and errors on stderr, and returns the process
// exit code. It never exits the process itself.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp()
	app.Writer = stdout
	app.ErrWriter = stderr
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	err = normalizeError(err)
	if line := errorLine(err); line != "" {
		fmt.Fprintf(stderr, "instructgo: %s\n", line)
	}
	return exitCode(err)
}

// newApp builds the instructgo command line. Commands write their output to
// app.Writer and logs to app.ErrWriter, so tests can run it in-process.
func newApp() *cli.App {
	app := &cli.App{
		Name:    "instructgo",
		Usage:   "train language models to follow instructions with human feedback (InstructGPT: SFT, RM, PPO-ptx)",
		Version: version,
		Flags:   globalFlags(),
		Before:  setupGlobals,
		Action:  rootAction,
		Commands: []*cli.Command{
			infoCommand(),
			versionCommand(),
			pretrainCommand(),
			dataCommand(),
			sftCommand(),
			rmCommand(),
			dpoCommand(),
			ppoCommand(),
			grpoCommand(),
			rlooCommand(),
			rsCommand(),
			pipelineCommand(),
			generateCommand(),
			evalCommand(),
			inspectCommand(),
			benchCommand(),
			launchCommand(),
		},
		OnUsageError: onUsageError,
		// A repeatable flag takes one value per use: a comma is part of
		// the value (a prompt, a path), not a separator.
		DisableSliceFlagSeparator: true,
		// Errors are turned into exit codes by run, never by os.Exit
		// inside the app, so tests and deferred cleanups still run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError
	}
	return app
}

func init() {
	// urfave's default version flag also answers to -v, which reads like
	// "verbose"; keep only the long form.
	cli.VersionFlag = &cli.BoolFlag{
		Name:               "version",
		Usage:              "print the version and exit (the version command says more)",
		DisableDefaultText: true,
	}
}

// rootAction runs when no command is named: it prints the help, or rejects
// an unknown command.
func rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return unknownCommand(c, c.Args().First())
	}
	return cli.ShowAppHelp(c)
}
