package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/train/tasks"
)

// dataCommand is `instructgo data`, the datasets; its one subcommand,
// synth, writes the built-in instruction-task dataset.
func dataCommand() *cli.Command {
	d := tasks.DefaultSynthConfig()
	synth := &cli.Command{
		Name:      "synth",
		Usage:     "write the built-in instruction-task dataset (pretrain, SFT, RM rankings, PPO and eval prompts)",
		UsageText: "instructgo [global options] data synth --out DIR [--seed N] [--sft N] [--rm N] [--ppo N] [--eval N] [--pretrain-bytes N] [--demo-habit F] [--json]",
		Description: "Writes, deterministically for a seed, a complete InstructGPT-style dataset for the built-in\n" +
			"tasks (" + strings.Join(tasks.Names(), ", ") + ") to --out:\n" +
			"  pretrain.txt  text in the tasks' domain, without instructions (stage 0 and the ptx mix)\n" +
			"  sft.jsonl     demonstrations {\"prompt\", \"completion\", \"task\"}; --demo-habit of them open\n" +
			"                with \"" + tasks.HabitPrefix + "\", a writer's habit the labeler marks down\n" +
			"  rm.jsonl      K = 4..9 responses per prompt ranked by the simulated labeler\n" +
			"                {\"prompt\", \"responses\", \"ranking\", \"task\", \"answer\"}\n" +
			"  ppo.jsonl     prompts {\"prompt\", \"task\", \"answer\"}\n" +
			"  eval.jsonl    held-out prompts (in no other file), same fields\n" +
			"The defaults follow the paper's proportions (13k SFT, 33k RM, 31k PPO prompts) scaled down.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "directory to write (created if missing; the five files are replaced)"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of everything drawn"},
			&cli.IntFlag{Name: "sft", Value: d.NSFT, Usage: "demonstrations in sft.jsonl"},
			&cli.IntFlag{Name: "rm", Value: d.NRM, Usage: "ranked prompts in rm.jsonl"},
			&cli.IntFlag{Name: "ppo", Value: d.NPPO, Usage: "prompts in ppo.jsonl"},
			&cli.IntFlag{Name: "eval", Value: d.NEval, Usage: "held-out prompts in eval.jsonl"},
			&cli.IntFlag{Name: "pretrain-bytes", Value: d.PretrainBytes, Usage: "size of pretrain.txt"},
			&cli.Float64Flag{Name: "demo-habit", Value: d.DemoHabit, Usage: "fraction of demonstrations that open with the writers' habit \"" + tasks.HabitPrefix + "\" (0: every demonstration is the bare answer)"},
			&cli.StringSliceFlag{Name: "families", Usage: "opt-in task families, comma-separated or repeated: " + strings.Join(tasks.FamilyNames(), ", ")},
			&cli.StringSliceFlag{Name: "prompt-kinds", Usage: "phrase every prompt as one of these kinds, drawn uniformly: " + strings.Join(tasks.PromptKinds(), ", ")},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object instead of a table"},
		},
		Action:       runDataSynth,
		OnUsageError: subcommandUsageError,
	}
	return &cli.Command{
		Name:  "data",
		Usage: "make datasets (data synth: the built-in instruction tasks; data label: rankings of a policy's samples)",
		UsageText: "instructgo [global options] data synth --out DIR [options]\n" +
			"   instructgo [global options] data label --policy DIR --prompts FILE --out FILE [options]",
		Subcommands: []*cli.Command{synth, labelCommand()},
		Action:      runData,
	}
}

// runData runs for `instructgo data` without a known subcommand.
func runData(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("data: unknown subcommand %q (subcommands: synth, label; see '%s data --help')", c.Args().First(), c.App.Name)
	}
	return cli.ShowSubcommandHelp(c)
}

func runDataSynth(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		return usageErrorf("data synth needs --out DIR")
	}
	cfg := tasks.SynthConfig{
		Seed: c.Uint64("seed"), NSFT: c.Int("sft"), NRM: c.Int("rm"), NPPO: c.Int("ppo"),
		NEval: c.Int("eval"), PretrainBytes: c.Int("pretrain-bytes"), DemoHabit: c.Float64("demo-habit"),
		Families: splitList(c.StringSlice("families")), PromptKinds: splitList(c.StringSlice("prompt-kinds")),
	}
	if h := cfg.DemoHabit; !(h >= 0 && h <= 1) {
		return usageErrorf("data synth: invalid --demo-habit %g: want a fraction from 0 to 1", h)
	}
	for _, name := range []string{"sft", "rm", "ppo", "eval", "pretrain-bytes"} {
		if n := c.Int(name); n < 0 {
			return usageErrorf("data synth: invalid --%s %d: want 0 or more", name, n)
		}
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("data synth: %v", err)
	}
	logger(c).Debug().Str("out", out).Uint64("seed", cfg.Seed).Msg("writing the instruction-task dataset")
	sum, err := tasks.Synth(out, cfg)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c, sum)
	}
	return writeSynthSummary(c, sum)
}

// writeSynthSummary prints what Synth wrote as a table and a line on the
// labeler.
func writeSynthSummary(c *cli.Context, sum tasks.Summary) error {
	w := c.App.Writer
	fmt.Fprintf(w, "wrote %s (seed %d; tasks: %s)\n", sum.Dir, sum.Seed, strings.Join(tasks.Names(), ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "file\trecords\tcomparisons\tbytes\t")
	for _, f := range sum.Files {
		comparisons := "-"
		if f.Name == tasks.RMFile {
			comparisons = strconv.Itoa(f.Comparisons)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", f.Name, f.Records, comparisons, formatBytes(uint64(f.Bytes)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	for _, f := range sum.Files {
		if f.Name == tasks.SFTFile {
			fmt.Fprintf(w, "demonstrations opening with the writers' habit %q: %d of %d\n", tasks.HabitPrefix, sum.HabitDemos, f.Records)
		}
	}
	a := sum.Agreement
	_, err := fmt.Fprintf(w, "labeler (noise %g, style weight %g): two labelers agree on %.1f%% of the %d ranked pairs "+
		"(calibrated to the paper's 72.6%% on comparisons of SFT samples; these synthetic sets are easier); %.1f%% agree with the noise-free order\n",
		sum.Labeler.Noise, sum.Labeler.StyleWeight, 100*a.BetweenLabelers, a.Pairs, 100*a.WithTruth)
	return err
}

// subcommandUsageError is onUsageError for a subcommand such as data
// synth: it names the command by its full path (urfave's HelpName, less the
// program name).
func subcommandUsageError(c *cli.Context, err error, _ bool) error {
	name := strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
	if name == "" {
		name = c.Command.Name
	}
	msg := flagErrorText(err.Error())
	const undefined = "flag provided but not defined: -"
	if flag, ok := strings.CutPrefix(msg, undefined); ok {
		if globalFlagNames[flag] {
			return usageErrorf("%s: --%s is a global flag: put it before the command (%s --%s ... %s)",
				name, flag, c.App.Name, flag, name)
		}
		msg = "unknown flag --" + flag
	}
	return usageErrorf("%s: %s (see '%s %s --help')", name, msg, c.App.Name, name)
}

// splitList splits each value of a repeatable flag at commas, so that
// "--families a,b" and "--families a --families b" say the same.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}
