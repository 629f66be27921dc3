package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/instructgo/instructgo/model"
)

// TestCheckpointSHA256: a single-file checkpoint's fingerprint is its
// weights file's digest; a sharded one's covers the index and every
// shard, so changing one byte of a shard changes it.
func TestCheckpointSHA256(t *testing.T) {
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 16, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	host := model.InitGPT2(cfg, 3)
	single, sharded := t.TempDir(), t.TempDir()
	if err := model.SaveHost(single, cfg, host); err != nil {
		t.Fatal(err)
	}
	if err := model.SaveHostWith(sharded, cfg, host, model.SaveOptions{MaxShardBytes: 8 << 10}); err != nil {
		t.Fatal(err)
	}
	want, _ := fileSHA256(filepath.Join(single, model.WeightsFile))
	if got, err := checkpointSHA256(single); err != nil || got != want {
		t.Errorf("single file: %s, %v; want %s", got, err, want)
	}
	before, err := checkpointSHA256(sharded)
	if err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(sharded, "model-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("%d shards", len(shards))
	}
	raw, _ := os.ReadFile(shards[len(shards)-1])
	raw[len(raw)-1] ^= 1
	if err := os.WriteFile(shards[len(shards)-1], raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if after, err := checkpointSHA256(sharded); err != nil || after == before {
		t.Errorf("a changed shard kept the fingerprint (%v)", err)
	}
	if _, err := checkpointSHA256(t.TempDir()); err == nil {
		t.Error("an empty directory has a fingerprint")
	}
}
