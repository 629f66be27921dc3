package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/instructgo/instructgo/internal/readfile"
	"github.com/instructgo/instructgo/model"
)

// A run records what it reads: the digest of each data file, or of a
// directory's files (names and contents, in name order), by absolute path.
// A resume compares them with the files as they are, so that data replaced
// between two invocations is not used silently.

// outsideInputs refuses a run directory that would overwrite what the run
// reads: one of its checkpoint directories, or a directory holding an input
// file under a name the run writes (model.safetensors, metrics.jsonl, ...).
func outsideInputs(dir string, checkpoints, inputs []string) error {
	for _, c := range checkpoints {
		if c != "" && samePath(c, dir) {
			return fmt.Errorf("the run directory %s is the checkpoint the run starts from; choose another --out", dir)
		}
	}
	for _, in := range inputs {
		if in == "" {
			continue
		}
		if samePath(in, dir) || (samePath(filepath.Dir(in), dir) && runWrites(filepath.Base(in))) {
			return fmt.Errorf("the run directory %s would overwrite the input %s; choose another --out", dir, in)
		}
	}
	return nil
}

// runWrites tells whether a run directory's top holds a file of this name.
func runWrites(name string) bool {
	switch name {
	case model.ConfigFile, model.WeightsFile, RunConfigFile, MetricsFile, SummaryFile, ReferenceFile:
		return true
	}
	return strings.HasPrefix(name, ResumeDir)
}

// samePath tells whether a and b name the same file: the same absolute
// path, or the same file under two names.
func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	ba, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == ba {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// digestInputs returns the digests of paths (empty ones are skipped).
func digestInputs(paths []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		d, err := digestPath(abs)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", p, err)
		}
		out[abs] = d
	}
	return out, nil
}

// digestPath is a file's SHA-256, or for a directory the SHA-256 of its
// regular files' relative names and digests.
func digestPath(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return fileSHA256(path)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		sum, err := fileSHA256(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(path, f)
		fmt.Fprintf(h, "%s\x00%s\n", rel, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkInputs refuses a resume whose inputs differ from the recorded ones
// (a run saved before inputs were recorded has none to compare).
func checkInputs(saved, now map[string]string, allowChanged bool) error {
	if allowChanged || len(saved) == 0 {
		return nil
	}
	names := make([]string, 0, len(saved))
	for p := range saved {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		cur, ok := now[p]
		switch {
		case !ok:
			return fmt.Errorf("the run read %s, which this configuration no longer names", p)
		case cur != saved[p]:
			return fmt.Errorf("%s changed since the run started (SHA-256 %.12s…, was %.12s…); resume with the data it started with, or pass --allow-changed-data", p, cur, saved[p])
		}
	}
	return nil
}

// finished reports whether the run directory holds the summary of a run
// that ran to its end.
func finished(dir string) bool {
	raw, err := readfile.Bounded(filepath.Join(dir, SummaryFile), readfile.JSONLimit)
	if err != nil {
		return false
	}
	var sum struct {
		Interrupted *bool `json:"interrupted"`
	}
	return json.Unmarshal(raw, &sum) == nil && sum.Interrupted != nil && !*sum.Interrupted
}

// absPath makes p absolute (empty stays empty), so that a run's recorded
// configuration resumes from any working directory.
func absPath(p string) string {
	if p == "" {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// absPaths is absPath of each path.
func absPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = absPath(p)
	}
	return out
}
