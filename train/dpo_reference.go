package train

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/internal/readfile"
	"github.com/instructgo/instructgo/train/data"
)

// ReferenceFile holds, in a DPO run directory, the frozen reference's
// sequence log-probs of every training and held-out response. They are
// computed once when the run starts (the reference is the starting policy
// and need not stay in memory) and read back on resume, where the resume
// state's SHA-256 of the file makes sure they are the ones the run used.
// JSON keeps the float64 sums exact, so a resumed run computes what the
// uninterrupted one did.
const ReferenceFile = "reference_logps.json"

// referenceLogProbs is ReferenceFile: log π_ref(y|x) by comparison and
// response, for the split's training and held-out comparisons.
type referenceLogProbs struct {
	Init  string      `json:"init"` // the checkpoint they were computed with
	Train [][]float64 `json:"train"`
	Val   [][]float64 `json:"val"`
}

// writeReference writes ref into the run directory dir and returns the
// file's SHA-256.
func writeReference(dir string, ref *referenceLogProbs) (string, error) {
	path := filepath.Join(dir, ReferenceFile)
	raw, err := json.Marshal(ref) // compact: one number per response
	if err != nil {
		return "", fmt.Errorf("reference log-probs: %w", err)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reference log-probs: %w", err)
	}
	return fileSHA256(path)
}

// readReference reads the reference log-probs of run directory dir,
// refusing a file whose SHA-256 is not sum or whose shape is not the
// comparisons'.
func readReference(dir, sum string, train, val []data.ComparisonTokens) (*referenceLogProbs, error) {
	path := filepath.Join(dir, ReferenceFile)
	got, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("reference log-probs: %w", err)
	}
	if got != sum {
		return nil, fmt.Errorf("%s is not the file the run wrote (SHA-256 %.12s…, saved %.12s…)", path, got, sum)
	}
	raw, err := readfile.Bounded(path, referenceLimit(train, val))
	if err != nil {
		return nil, fmt.Errorf("reference log-probs: %w", err)
	}
	var ref referenceLogProbs
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, part := range []struct {
		name string
		cs   []data.ComparisonTokens
		ref  [][]float64
	}{{"training", train, ref.Train}, {"held-out", val, ref.Val}} {
		if len(part.ref) != len(part.cs) {
			return nil, fmt.Errorf("%s: %d %s comparisons, the data has %d", path, len(part.ref), part.name, len(part.cs))
		}
		for i, c := range part.cs {
			if len(part.ref[i]) != len(c.Responses) {
				return nil, fmt.Errorf("%s: %s comparison %d has %d log-probs for %d responses", path, part.name, i, len(part.ref[i]), len(c.Responses))
			}
		}
	}
	return &ref, nil
}

// referenceLimit bounds the file's size by the comparisons it describes:
// a float64 takes at most 24 characters in JSON and its comma one more, a
// comparison's brackets and comma 3.
func referenceLimit(train, val []data.ComparisonTokens) int64 {
	n := int64(1 << 16) // the names, the init path
	for _, set := range [][]data.ComparisonTokens{train, val} {
		for _, c := range set {
			n += 3 + 26*int64(len(c.Responses))
		}
	}
	return n
}
