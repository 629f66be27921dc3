package data

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/instructgo/instructgo/internal/readfile"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// maxTextBytes bounds one plain-text file: the corpus is held in memory as
// 4-byte tokens, up to one per byte, so a larger file is a sharding job.
const maxTextBytes = 2 << 30

// TextCorpus is plain text tokenised into one stream, each document
// followed by EOS, split into a training part and a held-out tail.
type TextCorpus struct {
	Train, Val []int32
	Docs       int   // documents read (a plain file is one, a JSONL line one)
	Bytes      int64 // bytes of text read
}

// LoadText reads plain-text files, JSONL files (ending in .jsonl) of
// {"text": ...} records, and directories (every text file below them, in
// name order; files with NUL bytes or invalid UTF-8 are skipped), and holds
// out the last valFrac of the tokens.
func LoadText(paths []string, enc tokenizer.Tokenizer, valFrac float64) (*TextCorpus, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no text files given")
	}
	paths, err := expandDirs(paths)
	if err != nil {
		return nil, err
	}
	if valFrac < 0 || valFrac >= 1 {
		return nil, fmt.Errorf("held-out fraction %g must be in [0, 1)", valFrac)
	}
	c := &TextCorpus{}
	var stream []int32
	add := func(text string) {
		c.Docs++
		c.Bytes += int64(len(text))
		stream = append(stream, tokenizer.EncodeStart(enc, text)...)
		stream = append(stream, enc.EOS())
	}
	for _, path := range paths {
		if strings.HasSuffix(path, ".jsonl") {
			docs, _, err := readFile(path, "text", ReadOptions{}, parseText)
			if err != nil {
				return nil, err
			}
			for _, d := range docs {
				add(d)
			}
			continue
		}
		data, err := readfile.Bounded(path, maxTextBytes)
		if err != nil {
			return nil, fmt.Errorf("read text: %w", err)
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("read text %s: file is empty", path)
		}
		add(string(data))
	}
	nVal := int(float64(len(stream)) * valFrac)
	c.Train, c.Val = stream[:len(stream)-nVal], stream[len(stream)-nVal:]
	return c, nil
}

// expandDirs replaces each directory by the text files below it.
func expandDirs(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read text: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		n := len(out)
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != p {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() && isText(path) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read text under %s: %w", p, err)
		}
		if len(out) == n {
			return nil, fmt.Errorf("read text: no text files under %s", p)
		}
	}
	return out, nil
}

// isText reports whether a file's first 8 KiB look like UTF-8 text.
func isText(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 8192)
	n, _ := io.ReadFull(f, buf)
	buf = buf[:n]
	if n == 0 || bytes.IndexByte(buf, 0) >= 0 {
		return false
	}
	// A multi-byte rune may be cut at the end of the sample.
	for i := 0; i < 3 && !utf8.Valid(buf) && len(buf) > 0; i++ {
		buf = buf[:len(buf)-1]
	}
	return utf8.Valid(buf)
}

// parseText reads a {"text": ...} record; the text may be empty.
func parseText(line []byte) (string, error) {
	obj, err := object(line)
	if err != nil {
		return "", err
	}
	return str(obj["text"], "text", true)
}

// UnigramEntropy is the cross-entropy, in nats per token, of a unigram model
// fitted on train (add-one smoothing over the vocabulary) evaluated on eval:
// the loss a language model must beat to have learnt anything beyond token
// frequencies.
func UnigramEntropy(train, eval []int32, vocab int) float64 {
	counts := make([]float64, vocab)
	for _, t := range train {
		counts[t]++
	}
	total := float64(len(train) + vocab)
	h := 0.0
	for _, t := range eval {
		h -= math.Log((counts[t] + 1) / total)
	}
	return h / float64(max(len(eval), 1))
}

// WindowSampler cuts a token stream into windows of T+1 tokens (inputs and
// next-token targets) and visits them in a seeded random order, epoch after
// epoch. Its position is two integers, so a run can resume exactly.
type WindowSampler struct {
	stream []int32
	T      int
	seed   uint64
	order  []int
	Epoch  int // epochs completed
	Next   int // next index into the epoch's order
}

// NewWindowSampler returns a sampler over stream; it needs at least one
// window of T+1 tokens.
func NewWindowSampler(stream []int32, T int, seed uint64) (*WindowSampler, error) {
	n := (len(stream) - 1) / T
	if n < 1 {
		return nil, fmt.Errorf("%d tokens are fewer than one sequence of %d", len(stream), T+1)
	}
	s := &WindowSampler{stream: stream, T: T, seed: seed}
	s.shuffle()
	return s, nil
}

// Windows is the number of windows in an epoch.
func (s *WindowSampler) Windows() int { return (len(s.stream) - 1) / s.T }

func (s *WindowSampler) shuffle() {
	rng := rand.New(rand.NewPCG(s.seed, uint64(s.Epoch)))
	s.order = rng.Perm(s.Windows())
}

// Seek moves to a saved position.
func (s *WindowSampler) Seek(epoch, next int) {
	s.Epoch, s.Next = epoch, next
	s.shuffle()
}

// Fill writes B windows into tokens and targets (B·T each).
func (s *WindowSampler) Fill(tokens, targets []int32, B int) {
	T := s.T
	for b := 0; b < B; b++ {
		if s.Next == len(s.order) {
			s.Epoch++
			s.Next = 0
			s.shuffle()
		}
		start := s.order[s.Next] * T
		s.Next++
		copy(tokens[b*T:(b+1)*T], s.stream[start:start+T])
		copy(targets[b*T:(b+1)*T], s.stream[start+1:start+T+1])
	}
}

// SequentialWindows returns the stream's consecutive windows of T+1 tokens
// as (tokens, targets) pairs, at most limit of them (0: all).
func SequentialWindows(stream []int32, T, limit int) (tokens, targets [][]int32) {
	for start := 0; start+T+1 <= len(stream); start += T {
		if limit > 0 && len(tokens) == limit {
			break
		}
		tokens = append(tokens, stream[start:start+T])
		targets = append(targets, stream[start+1:start+T+1])
	}
	return tokens, targets
}
