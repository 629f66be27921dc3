package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
)

// TestOutsideInputs: a run directory may not be the checkpoint the run
// starts from (under any name), nor hold an input under a name the run
// writes; a data file beside the run's files is fine.
func TestOutsideInputs(t *testing.T) {
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	os.MkdirAll(ckpt, 0o755)
	os.Symlink(ckpt, filepath.Join(dir, "alias"))
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	for _, name := range []string{"sft.jsonl", MetricsFile, model.WeightsFile} {
		os.WriteFile(filepath.Join(data, name), []byte("{}\n"), 0o644)
	}
	cases := []struct {
		dir         string
		checkpoints []string
		inputs      []string
		err         string
	}{
		{filepath.Join(dir, "run"), []string{ckpt}, []string{filepath.Join(data, "sft.jsonl")}, ""},
		{ckpt, []string{"", ckpt}, nil, "is the checkpoint the run starts from"},
		{filepath.Join(dir, "alias"), []string{ckpt}, nil, "is the checkpoint the run starts from"},
		{ckpt + "/", []string{ckpt}, nil, "is the checkpoint the run starts from"},
		{data, nil, []string{filepath.Join(data, "sft.jsonl")}, ""},
		{data, nil, []string{filepath.Join(data, MetricsFile)}, "would overwrite the input"},
		{data, nil, []string{filepath.Join(data, model.WeightsFile)}, "would overwrite the input"},
		{data, nil, []string{data}, "would overwrite the input"},
	}
	for i, c := range cases {
		err := outsideInputs(c.dir, c.checkpoints, c.inputs)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("case %d (%s): %v, want %q", i, c.dir, err, c.err)
		}
	}
}
