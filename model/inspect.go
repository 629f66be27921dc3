package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/instructgo/instructgo/internal/readfile"
	"github.com/instructgo/instructgo/model/safetensors"
)

// WeightsIndexFile lists, for a checkpoint sharded the Hugging Face way,
// which safetensors file holds each tensor.
const WeightsIndexFile = "model.safetensors.index.json"

// TensorStats describes one tensor of a checkpoint and, when its dtype is
// a floating-point one, its values.
type TensorStats struct {
	File     string // base name of the safetensors file that holds it
	Name     string
	DType    string // as stored, e.g. F32 or BF16
	Shape    []int  // empty for a scalar
	Elements int64
	Bytes    int64 // as stored
	// Measured is false for a dtype that does not read as float32
	// (integers, booleans, 8-bit floats); Stats is then not computed.
	Measured bool
	Stats
}

// Inspection is what InspectCheckpoint found.
type Inspection struct {
	// ModelType and Architectures come from config.json when the path is
	// a directory that has one.
	ModelType     string
	Architectures []string
	Files         []string      // the safetensors files read, in order
	Tensors       []TensorStats // by file, then by name
}

// InspectCheckpoint reads the weights at path and computes the Stats of
// each tensor. path is a checkpoint directory (its model.safetensors, or
// else the shards its model.safetensors.index.json lists), a shard index,
// or any safetensors file (an optimizer.safetensors, say). Tensors are read
// one at a time, each into a float32 *tensor.Dense of its shape. keep, when
// not nil, selects tensors by name; the data of the others is not read.
func InspectCheckpoint(path string, keep func(name string) bool) (Inspection, error) {
	var in Inspection
	files, err := weightFiles(path, &in)
	if err != nil {
		return Inspection{}, fmt.Errorf("inspect checkpoint: %w", err)
	}
	for _, sf := range files {
		in.Files = append(in.Files, sf.path)
	}
	defer func() {
		for _, sf := range files {
			sf.f.Close()
		}
	}()
	for _, sf := range files {
		for _, info := range sf.f.Tensors() {
			if keep != nil && !keep(info.Name) {
				continue
			}
			ts, err := inspectTensor(sf.f, info)
			if err != nil {
				return Inspection{}, fmt.Errorf("inspect checkpoint: %w", err)
			}
			ts.File = filepath.Base(sf.path)
			in.Tensors = append(in.Tensors, ts)
		}
	}
	return in, nil
}

// inspectTensor reads one tensor and computes its Stats.
func inspectTensor(f *safetensors.File, info safetensors.Info) (TensorStats, error) {
	ts := TensorStats{
		Name: info.Name, DType: info.DType, Shape: info.Shape,
		Elements: int64(info.NumElements()), Bytes: info.End - info.Begin,
		Measured: safetensors.IsFloat(info.DType),
	}
	switch {
	case !ts.Measured:
		return ts, nil
	case ts.Elements == 0: // a tensor.Dense cannot hold it; nothing to count
		ts.Stats = noValues()
		return ts, nil
	}
	d, err := f.Dense(info.Name)
	if err != nil {
		return TensorStats{}, err
	}
	if ts.Stats, err = DenseStats(d); err != nil {
		return TensorStats{}, fmt.Errorf("tensor %q: %w", info.Name, err)
	}
	return ts, nil
}

// openFile is one opened safetensors file of a checkpoint.
type openFile struct {
	path string
	f    *safetensors.File
}

// weightFiles opens the safetensors files path stands for, recording what
// config.json says in in. On error nothing stays open.
func weightFiles(path string, in *Inspection) ([]openFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if strings.HasSuffix(path, ".index.json") {
			return openShards(path)
		}
		f, err := openWeights(path)
		if err != nil {
			return nil, err
		}
		return []openFile{{path, f}}, nil
	}

	if err := readModelType(filepath.Join(path, ConfigFile), in); err != nil {
		return nil, err
	}
	// transformers prefers the single file when both are present; so do we.
	single := filepath.Join(path, WeightsFile)
	if _, err := os.Lstat(single); err == nil {
		f, err := openWeights(single)
		if err != nil {
			return nil, err
		}
		return []openFile{{single, f}}, nil
	}
	index := filepath.Join(path, WeightsIndexFile)
	if _, err := os.Lstat(index); err == nil {
		return openShards(index)
	}
	return nil, fmt.Errorf("%s has neither %s nor %s", path, WeightsFile, WeightsIndexFile)
}

// openWeights opens a safetensors file, refusing anything but a regular
// file (a pipe would block, a device has no size).
func openWeights(path string) (*safetensors.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%v)", path, st.Mode().Type())
	}
	return safetensors.Open(path)
}

// readModelType records config.json's model_type and architectures; a
// directory without config.json records nothing.
func readModelType(path string, in *Inspection) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	data, err := readfile.Bounded(path, MaxJSONFileSize)
	if err != nil {
		return err
	}
	var c struct {
		ModelType     string   `json:"model_type"`
		Architectures []string `json:"architectures"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	in.ModelType, in.Architectures = c.ModelType, c.Architectures
	return nil
}

// openShards opens the shards a model.safetensors.index.json lists, in
// name order, and checks that the index and the shards agree: every tensor
// of the index is in the shard it names, and every tensor of a shard is
// in the index.
func openShards(indexPath string) (files []openFile, err error) {
	data, err := readfile.Bounded(indexPath, MaxJSONFileSize)
	if err != nil {
		return nil, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: no weight_map, or an empty one", indexPath)
	}
	set := map[string]bool{}
	for name, shard := range index.WeightMap {
		if shard != filepath.Base(shard) || !filepath.IsLocal(shard) {
			return nil, fmt.Errorf("%s: tensor %q: shard %q is not a file name in the index's directory", indexPath, name, shard)
		}
		set[shard] = true
	}

	defer func() {
		if err != nil {
			for _, sf := range files {
				sf.f.Close()
			}
			files = nil
		}
	}()
	dir := filepath.Dir(indexPath)
	byShard := map[string]*safetensors.File{}
	for _, shard := range slices.Sorted(maps.Keys(set)) {
		path := filepath.Join(dir, shard)
		f, err := openWeights(path)
		if err != nil {
			return files, err
		}
		files = append(files, openFile{path, f})
		byShard[shard] = f
		for _, info := range f.Tensors() {
			if index.WeightMap[info.Name] != shard {
				return files, fmt.Errorf("%s: tensor %q of %s is not listed there for that shard", indexPath, info.Name, shard)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(index.WeightMap)) {
		shard := index.WeightMap[name]
		if _, ok := byShard[shard].Info(name); !ok {
			return files, fmt.Errorf("%s: tensor %q is not in %s", indexPath, name, shard)
		}
	}
	return files, nil
}
