// Package atomicfile replaces files so that a reader (or a crash) sees the
// old content or the new, never a mix: the content goes to a temporary file
// in the same directory, which is synced and renamed over the target, and
// then the directory is synced.
//
// Every step is marked for the crash tests (internal/crashpoint).
//
// It imports the standard library and internal/crashpoint.
package atomicfile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/instructgo/instructgo/internal/crashpoint"
)

// Write replaces path with what write produces. On any error the temporary
// file is removed and an existing file at path is left as it was.
func Write(path string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	crashpoint.Hit("create " + path)
	tmp, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	crashpoint.Hit("sync " + path)
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	crashpoint.Hit("rename " + path)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: file written, but %w", path, err)
	}
	return nil
}

// TempPrefix is the name prefix of the temporary files Write makes for
// path, in path's directory: a file left by a killed Write starts with it.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// SyncDir syncs a directory, so that the renames and creations in it
// survive a crash.
func SyncDir(dir string) error {
	crashpoint.Hit("sync dir " + dir)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s to sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// WriteJSON replaces path with v as indented JSON and a final newline.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}
