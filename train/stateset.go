package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/internal/crashpoint"
	"github.com/instructgo/instructgo/internal/readfile"
)

// The resume state is saved as a set, so that a kill at any moment leaves
// either the previous complete state or the new one, never a mix:
//
//  1. every file goes into a new directory, resume-<step>-<n>.tmp;
//  2. manifest.json, written last, lists each file with its size and
//     SHA-256;
//  3. the directory is renamed to resume-<step>-<n> (complete);
//  4. the link "resume" is switched to it by one rename of a new symlink
//     over the old one;
//  5. older state directories are removed.
//
// openState follows the link and verifies the manifest; if the link is
// missing (a kill during the first save, or a directory of an older
// version being replaced) it takes the newest complete state directory.
// cleanStates removes what killed saves left behind.

// ManifestFile lists a state directory's files; it is written last.
const ManifestFile = "manifest.json"

// manifest is what ManifestFile holds.
type manifest struct {
	Step  int                     `json:"step"`
	Files map[string]manifestFile `json:"files"`
}

type manifestFile struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// stateDirName is the name of a state directory of step, made unique by n.
func stateDirName(step, n int) string { return fmt.Sprintf("%s-%09d-%d", ResumeDir, step, n) }

// parseStateDirName reads step and n back; ok is false for other names
// (temporary directories included).
func parseStateDirName(name string) (step, n int, ok bool) {
	rest, found := strings.CutPrefix(name, ResumeDir+"-")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	step, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return step, n, err1 == nil && err2 == nil && step >= 0 && n >= 0
}

// writeState saves a state set of step into run directory dir: write fills
// the new state directory it is given.
func writeState(dir string, step int, write func(stateDir string) error) error {
	n := 0
	for {
		if _, err := os.Lstat(filepath.Join(dir, stateDirName(step, n))); errors.Is(err, fs.ErrNotExist) {
			break
		}
		n++
	}
	name := stateDirName(step, n)
	tmp := filepath.Join(dir, name+".tmp")
	crashpoint.Hit("mkdir " + tmp)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		return err
	}
	m, err := manifestOf(tmp, step)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, ManifestFile), m); err != nil {
		return err
	}
	crashpoint.Hit("rename " + tmp)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if err := switchLink(dir, name); err != nil {
		return err
	}
	return cleanStates(dir)
}

// switchLink points dir/resume at the state directory name: a new symlink
// renamed over the old one. A real directory there (a run of an older
// version) is first moved aside, to a name openState still finds.
func switchLink(dir, name string) error {
	link := filepath.Join(dir, ResumeDir)
	if fi, err := os.Lstat(link); err == nil && fi.IsDir() {
		crashpoint.Hit("rename legacy " + link)
		if err := os.Rename(link, filepath.Join(dir, stateDirName(0, 0)+"-legacy")); err != nil {
			return err
		}
	}
	tmpLink := link + ".link.tmp"
	crashpoint.Hit("symlink " + tmpLink)
	os.Remove(tmpLink)
	if err := os.Symlink(name, tmpLink); err != nil {
		return err
	}
	crashpoint.Hit("rename " + tmpLink)
	if err := os.Rename(tmpLink, link); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// openState returns the state directory to resume dir's run from, its
// manifest verified.
func openState(dir string) (string, error) {
	link := filepath.Join(dir, ResumeDir)
	target, err := os.Readlink(link)
	switch {
	case err == nil:
		state := filepath.Join(dir, target)
		return state, verifyManifest(state)
	case errors.Is(err, fs.ErrNotExist):
	default:
		// A real directory: a run saved by a version before state sets.
		if fi, statErr := os.Stat(link); statErr == nil && fi.IsDir() {
			return link, nil
		}
		return "", err
	}
	names, err := completeStates(dir)
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", fmt.Errorf("%s holds no saved state (no %s, no complete %s-* directory)", dir, ResumeDir, ResumeDir)
	}
	state := filepath.Join(dir, names[len(names)-1])
	return state, verifyManifest(state)
}

// HasState reports whether run directory dir holds a saved state to resume
// from (verified or not).
func HasState(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, ResumeDir)); err == nil {
		return true
	}
	names, _ := completeStates(dir)
	return len(names) > 0
}

// completeStates lists dir's complete state directories, oldest first.
func completeStates(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if _, _, ok := parseStateDirName(e.Name()); ok && e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool {
		si, ni, _ := parseStateDirName(names[i])
		sj, nj, _ := parseStateDirName(names[j])
		return si < sj || (si == sj && ni < nj)
	})
	return names, nil
}

// cleanStates removes what killed saves left in dir: temporary state
// directories and links, state directories the link does not point at, and
// atomicfile's temporary files. Without a link (a kill before the first
// switch) the newest complete state is kept.
func cleanStates(dir string) error {
	keep := ""
	if target, err := os.Readlink(filepath.Join(dir, ResumeDir)); err == nil {
		keep = target
	} else if names, err := completeStates(dir); err == nil && len(names) > 0 {
		keep = names[len(names)-1]
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		_, _, isState := parseStateDirName(name)
		stale := (isState && name != keep) ||
			(strings.HasPrefix(name, ResumeDir+"-") && strings.HasSuffix(name, ".tmp")) ||
			name == ResumeDir+".link.tmp" ||
			(strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"))
		if !stale {
			continue
		}
		crashpoint.Hit("remove " + name)
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// manifestOf lists the files under stateDir with their sizes and hashes.
func manifestOf(stateDir string, step int) (manifest, error) {
	m := manifest{Step: step, Files: map[string]manifestFile{}}
	err := filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(stateDir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return err
		}
		m.Files[filepath.ToSlash(rel)] = manifestFile{Size: info.Size(), SHA256: sum}
		return nil
	})
	return m, err
}

// verifyManifest checks every file a state directory's manifest lists.
func verifyManifest(stateDir string) error {
	var m manifest
	raw, err := readfile.Bounded(filepath.Join(stateDir, ManifestFile), readfile.JSONLimit)
	if err != nil {
		return fmt.Errorf("saved state %s: %w", stateDir, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("saved state %s: %s: %w", stateDir, ManifestFile, err)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Files)) {
		want := m.Files[name]
		path := filepath.Join(stateDir, filepath.FromSlash(name))
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("saved state %s is damaged: %w", stateDir, err)
		}
		if info.Size() != want.Size {
			return fmt.Errorf("saved state %s is damaged: %s has %d bytes, the manifest says %d", stateDir, name, info.Size(), want.Size)
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return err
		}
		if sum != want.SHA256 {
			return fmt.Errorf("saved state %s is damaged: %s does not match its checksum in %s", stateDir, name, ManifestFile)
		}
	}
	return nil
}
