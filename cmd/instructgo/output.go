package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// writeJSON writes v to the command output as indented JSON.
func writeJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// formatBytes renders a byte count in binary units, e.g. "15.5 GiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// notAnInput refuses an output file that is one of the command's inputs
// (the same path, or the same file under another name), so that nothing
// a command reads is overwritten by what it writes.
func notAnInput(out string, inputs ...string) error {
	if out == "" {
		return nil
	}
	oa, _ := filepath.Abs(out)
	ost, oerr := os.Stat(out)
	for _, in := range inputs {
		if in == "" {
			continue
		}
		ia, _ := filepath.Abs(in)
		same := ia == oa
		if ist, err := os.Stat(in); err == nil && oerr == nil {
			same = same || os.SameFile(ist, ost)
		}
		if same {
			return usageErrorf("--out %s is an input of this command (%s); write to another file", out, in)
		}
	}
	return nil
}
