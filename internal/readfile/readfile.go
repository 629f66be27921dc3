// Package readfile reads small files whole with a bound: a huge file, or a
// path that is a device (a link to /dev/zero) or a pipe, is an error
// instead of exhausting memory or blocking. Every configuration, state and
// summary file instructgo reads whole goes through it.
//
// It imports only the standard library.
package readfile

import (
	"fmt"
	"io"
	"os"
)

// Bounded reads the regular file at path whole, refusing one larger than
// limit bytes.
func Bounded(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%v)", path, st.Mode().Type())
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d", path, st.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have grown since Stat.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is more than the limit of %d bytes", path, limit)
	}
	return data, nil
}

// JSONLimit bounds the JSON files read whole (configurations, states,
// summaries, manifests): 16 MiB, far above any of them.
const JSONLimit = 16 << 20
