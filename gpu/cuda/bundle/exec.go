package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// minStep is the least time worth starting a step with: below it, a step
// is skipped rather than started and killed.
const minStep = 5 * time.Second

// outOfTime is Step.Skipped for a step the time budget left no room for.
const outOfTime = "out of the time budget (-budget)"

// command is one program run as a step.
type command struct {
	name  string
	argv  []string
	limit time.Duration
	// json, when set, sends standard output to logs/NAME.out (kept apart
	// from the log, where standard error goes) for the step's JSON result.
	json bool
	env  []string // added to the runner's environment
}

// exec runs c with its time limit (cut to what is left of ctx's deadline),
// its output going to logs/NAME.log, and returns the step with the
// output's tail. A step ctx leaves too little time for is not started and
// comes back skipped.
func (r *runner) exec(ctx context.Context, c command) Step {
	st := Step{Name: c.name, Command: c.argv, Log: filepath.Join(r.work, "logs", c.name+".log")}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < minStep {
		st.Skipped, st.Log = outOfTime, ""
		fmt.Fprintf(os.Stderr, "== %s: skipped, out of time\n", c.name)
		return st
	}
	fmt.Fprintf(os.Stderr, "== %s: %s\n", c.name, strings.Join(c.argv, " "))
	f, err := os.Create(st.Log)
	if err != nil {
		st.ExitCode, st.Tail = -1, err.Error()
		return st
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, c.limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if c.json {
		st.Stdout = filepath.Join(r.work, "logs", c.name+".out")
		out, err := os.Create(st.Stdout)
		if err != nil {
			st.ExitCode, st.Tail = -1, err.Error()
			return st
		}
		defer out.Close()
		cmd.Stdout = out
	}
	if len(c.env) > 0 {
		cmd.Env = append(os.Environ(), c.env...)
	}
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err = cmd.Run()
	st.Seconds = time.Since(start).Seconds()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		st.ExitCode = exitErr.ExitCode()
		if st.ExitCode == -1 {
			st.ExitCode = 128 + 9 // killed (the time limit)
		}
	default:
		st.ExitCode = -1
		fmt.Fprintf(f, "\nbundle-runner: %v\n", err)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(f, "\nbundle-runner: stopped after %v\n", c.limit)
	}
	f.Sync()
	st.Tail = tail(readFile(st.Log), 40)
	fmt.Fprintf(os.Stderr, "   exit %d after %.1fs\n", st.ExitCode, st.Seconds)
	return st
}

// jsonResult is the JSON object a step printed last on its standard
// output (Step.Stdout), or nil when there is none.
func jsonResult(st Step) json.RawMessage {
	if st.ExitCode != 0 || st.Skipped != "" || st.Stdout == "" {
		return nil
	}
	raw := strings.TrimSpace(lastJSONObject(readFile(st.Stdout)))
	if !json.Valid([]byte(raw)) {
		return nil
	}
	return json.RawMessage(raw)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var testLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(([0-9.]+)s\)`)

// parseTestOutput reads the results of `go test -v` output.
func parseTestOutput(out string) []TestResult {
	var rs []TestResult
	for _, line := range strings.Split(out, "\n") {
		m := testLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseFloat(m[3], 64)
		rs = append(rs, TestResult{Name: m[2], Status: m[1], Seconds: sec})
	}
	return rs
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// parseBenchOutput reads benchmark result lines: name, iterations, then
// value-unit pairs ("123 ns/op", "4.5 TFLOP/s").
func parseBenchOutput(out string) []Benchmark {
	var bs []Benchmark
	for _, line := range strings.Split(out, "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue
		}
		b := Benchmark{Name: m[1], Iterations: n, Metrics: map[string]float64{}}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.Metrics[f[i+1]] = v
		}
		if len(b.Metrics) > 0 {
			bs = append(bs, b)
		}
	}
	return bs
}

// parseNvidiaSMI reads nvidia-smi's CSV (the fields of main's query).
func parseNvidiaSMI(out string) []map[string]any {
	keys := []string{"name", "driver_version", "memory_total_mib", "compute_cap", "max_sm_clock_mhz", "power_limit_w", "sm_clock_mhz", "temperature_c"}
	var gpus []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		g := map[string]any{}
		for i, f := range strings.Split(line, ",") {
			if i >= len(keys) {
				break
			}
			f = strings.TrimSpace(f)
			if v, err := strconv.ParseFloat(f, 64); err == nil && keys[i] != "driver_version" && keys[i] != "compute_cap" {
				g[keys[i]] = v
			} else {
				g[keys[i]] = f
			}
		}
		gpus = append(gpus, g)
	}
	return gpus
}

// lastJSONObject returns the text from the last line starting with '{' on
// (info --json prints one object; log lines may come before it).
func lastJSONObject(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return strings.Join(lines[i:], "\n")
		}
	}
	return s
}

// smokeText is about n bytes of varied English-like text, deterministic.
func smokeText(n int) string {
	subjects := []string{"the model", "a small network", "the optimizer", "every layer", "the tokenizer", "our kernel"}
	verbs := []string{"learns", "predicts", "updates", "normalizes", "attends to", "samples"}
	objects := []string{"the next token", "its weights", "the residual stream", "a batch of text", "the gradient", "each position"}
	var sb strings.Builder
	x := uint64(88172645463325252)
	for sb.Len() < n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		fmt.Fprintf(&sb, "%s %s %s", subjects[x%6], verbs[(x>>8)%6], objects[(x>>16)%6])
		if x>>24%4 == 0 {
			sb.WriteString(".\n")
		} else {
			sb.WriteString(", and ")
		}
	}
	return sb.String()
}
