package model

import (
	"fmt"
	"io"
	"os"
)

// MaxJSONFileSize bounds the JSON files of a checkpoint directory that are
// read whole (config.json, model.safetensors.index.json): 16 MiB, far above
// the few kilobytes of a config or the few hundred of a large model's
// shard index.
const MaxJSONFileSize = 16 << 20

// readSmallFile reads the regular file at path whole, refusing one larger
// than limit bytes, so that a huge file, or a link to a device such as
// /dev/zero or to a pipe, is an error instead of exhausting memory or
// blocking.
func readSmallFile(path string, limit int64) ([]byte, error) {
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
