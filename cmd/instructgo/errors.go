package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes of the instructgo process.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong: unknown command or flag, bad value
	exitHang    = 3 // data parallel: the watchdog ended this rank because a rank hung
)

// usageError marks an error in the command line itself; it exits with
// exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf formats a usage error like fmt.Errorf.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// globalFlagNames are the flags that belong before the command.
var globalFlagNames = map[string]bool{}

func init() {
	for _, f := range globalFlags() {
		for _, name := range f.Names() {
			globalFlagNames[name] = true
		}
	}
}

// onUsageError replaces urfave's default reaction to a flag that does not
// parse (print the error and the whole help) with a single usage error that
// names the command and points at its help.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	where, helpCmd := "", c.App.Name+" --help"
	if isSubcommand {
		where = c.Command.Name
		helpCmd = c.App.Name + " " + c.Command.Name + " --help"
	}
	msg := flagErrorText(err.Error())
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		if isSubcommand && globalFlagNames[name] {
			return usageErrorf("%s: --%s is a global flag: put it before the command (%s --%s ... %s)",
				where, name, c.App.Name, name, c.Command.Name)
		}
		msg = "unknown flag --" + name
	}
	if where != "" {
		msg = where + ": " + msg
	}
	return usageErrorf("%s (see '%s')", msg, helpCmd)
}

// flagErrorText rewrites the flag package's `invalid value "x" for flag
// -threads: parse error` as `invalid --threads "x": parse error`; other
// messages pass through.
func flagErrorText(msg string) string {
	rest, ok := strings.CutPrefix(msg, `invalid value "`)
	if !ok {
		return msg
	}
	value, rest, ok := strings.Cut(rest, `" for flag -`)
	if !ok {
		return msg
	}
	name, reason, ok := strings.Cut(rest, ": ")
	if !ok {
		return msg
	}
	return fmt.Sprintf("invalid --%s %q: %s", name, value, reason)
}

// unknownCommand is the usage error for a command name that does not exist;
// it lists the commands there are.
func unknownCommand(c *cli.Context, name string) error {
	var names []string
	for _, cmd := range c.App.VisibleCommands() {
		names = append(names, cmd.Name)
	}
	return usageErrorf("unknown command %q (commands: %s; see '%s --help')",
		name, strings.Join(names, ", "), c.App.Name)
}

// noArgs rejects positional arguments for commands that take none.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("%s takes no arguments, got %q (see '%s %s --help')",
			c.Command.Name, strings.Join(c.Args().Slice(), " "), c.App.Name, c.Command.Name)
	}
	return nil
}

// normalizeError turns the usage errors urfave reports in its own way into
// usageErrors, so they exit with exitUsage like the rest:
// "help <unknown command>" (an ExitCoder with code 3) and missing required
// flags. urfave exposes no types for these, so they are told apart by text.
func normalizeError(err error) error {
	var ue *usageError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "No help topic for "); ok {
		return usageErrorf("help: unknown command %q (see 'instructgo --help')", strings.Trim(name, "'"))
	}
	if strings.HasPrefix(msg, "Required flag") {
		return &usageError{err: err}
	}
	return err
}

// errorLine is err as one line for stderr; "" for an error with no text (a
// cli.ExitCoder that only carries a code).
func errorLine(err error) string {
	var parts []string
	for _, e := range flatten(err) {
		if s := strings.TrimSpace(e.Error()); s != "" {
			parts = append(parts, strings.Join(strings.Fields(s), " "))
		}
	}
	return strings.Join(parts, "; ")
}

// exitCode maps an error returned by the app to the process exit code:
// exitUsage for usage errors, the code of a cli.ExitCoder (for example 130
// after SIGINT), exitFailure otherwise. For a cli.MultiError the first error
// decides.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if errs := flatten(err); len(errs) > 0 {
		err = errs[0]
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitFailure
}

// flatten lists the non-nil errors inside a cli.MultiError (which does not
// implement Unwrap), or err alone.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	var multi cli.MultiError
	if !errors.As(err, &multi) {
		return []error{err}
	}
	var out []error
	for _, e := range multi.Errors() {
		out = append(out, flatten(e)...)
	}
	return out
}
