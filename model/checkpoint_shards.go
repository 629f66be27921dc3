package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model/safetensors"
)

// A checkpoint's weights are one model.safetensors, or shards listed by
// model.safetensors.index.json (Hugging Face's layout for large models:
// {"metadata": {"total_size": bytes}, "weight_map": {tensor: shard file}}).

// MaxShards bounds the shards instructgo writes for one checkpoint.
const MaxShards = 1 << 12

type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// weightRef is one tensor of a checkpoint and the file that holds it.
type weightRef struct {
	f    *safetensors.File
	path string
	info safetensors.Info
}

// weightSet is a checkpoint's open weight files.
type weightSet struct {
	files   []openFile
	tensors []weightRef
}

func (ws *weightSet) Close() {
	for _, f := range ws.files {
		f.f.Close()
	}
}

// openCheckpointWeights opens dir's model.safetensors or, without one, the
// shards its index lists (which openShards checks against the index).
func openCheckpointWeights(dir string) (*weightSet, error) {
	single := filepath.Join(dir, WeightsFile)
	var files []openFile
	if _, err := os.Lstat(single); err == nil {
		f, err := openWeights(single)
		if err != nil {
			return nil, err
		}
		files = []openFile{{single, f}}
	} else if index := filepath.Join(dir, WeightsIndexFile); fileExists(index) {
		if files, err = openShards(index); err != nil {
			return nil, err
		}
	} else {
		return nil, fmt.Errorf("%s has neither %s nor %s", dir, WeightsFile, WeightsIndexFile)
	}
	ws := &weightSet{files: files}
	for _, of := range files {
		for _, info := range of.f.Tensors() {
			ws.tensors = append(ws.tensors, weightRef{f: of.f, path: of.path, info: info})
		}
	}
	return ws, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writeWeights writes tensors into dir as one model.safetensors
// (maxShardBytes 0) or as shards of at most maxShardBytes with their
// index, in order, and removes the other layout's files, so that a loader
// sees only what was written last.
func writeWeights(dir string, tensors []safetensors.Tensor, maxShardBytes int64) error {
	meta := map[string]string{"format": "pt"}
	if maxShardBytes == 0 {
		if err := safetensors.Write(filepath.Join(dir, WeightsFile), tensors, meta); err != nil {
			return err
		}
		return removeIfExists(filepath.Join(dir, WeightsIndexFile))
	}
	var groups [][]safetensors.Tensor
	var size, total int64
	for _, t := range tensors {
		n := int64(len(t.Data)) * 4
		if t.DType == safetensors.BF16 {
			n = int64(len(t.Data)) * 2
		}
		if len(groups) == 0 || size+n > maxShardBytes && size > 0 {
			groups, size = append(groups, nil), 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += n
		total += n
	}
	if len(groups) > MaxShards {
		return fmt.Errorf("%d shards of at most %d bytes exceed the limit of %d", len(groups), maxShardBytes, MaxShards)
	}
	idx := shardIndex{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, g := range groups {
		shard := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		if err := safetensors.Write(filepath.Join(dir, shard), g, meta); err != nil {
			return err
		}
		for _, t := range g {
			idx.WeightMap[t.Name] = shard
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, WeightsIndexFile), idx); err != nil {
		return err
	}
	return removeIfExists(filepath.Join(dir, WeightsFile))
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
