package data

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model/tokenizer"
)

var byteTok, _ = tokenizer.New("byte")

func TestUnigramEntropy(t *testing.T) {
	// Two symbols, equally frequent, in a vocabulary of 2: add-one
	// smoothing keeps them equal, so the cross-entropy is log 2.
	train := []int32{0, 1, 0, 1, 1, 0}
	got := UnigramEntropy(train, []int32{0, 1}, 2)
	if math.Abs(got-math.Log(2)) > 1e-12 {
		t.Fatalf("entropy %v, want log 2", got)
	}
	// A skewed train set makes the rare symbol expensive.
	got = UnigramEntropy([]int32{0, 0, 0, 0, 0, 0}, []int32{1}, 2)
	if want := -math.Log(1.0 / 8); math.Abs(got-want) > 1e-12 {
		t.Fatalf("entropy %v, want %v", got, want)
	}
}

func TestWindowSamplerCoversEpochAndSeeks(t *testing.T) {
	stream := make([]int32, 101)
	for i := range stream {
		stream[i] = int32(i)
	}
	s, err := NewWindowSampler(stream, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Windows() != 10 {
		t.Fatalf("%d windows, want 10", s.Windows())
	}
	tok, tgt := make([]int32, 10*10), make([]int32, 10*10)
	s.Fill(tok, tgt, 10)
	seen := map[int32]bool{}
	for b := 0; b < 10; b++ {
		first := tok[b*10]
		if first%10 != 0 || seen[first] {
			t.Fatalf("window %d starts at %d", b, first)
		}
		seen[first] = true
		for i := 0; i < 10; i++ {
			if tgt[b*10+i] != tok[b*10+i]+1 {
				t.Fatalf("targets are not the next tokens")
			}
		}
	}
	// Resume: a sampler sought to (epoch 1, 3) continues identically.
	s.Fill(tok[:30], tgt[:30], 3)
	want := make([]int32, 20)
	s.Fill(want, make([]int32, 20), 2)
	r, _ := NewWindowSampler(stream, 10, 3)
	r.Seek(1, 3)
	got := make([]int32, 20)
	r.Fill(got, make([]int32, 20), 2)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("resumed sampler differs at %d: %d vs %d", i, got[i], want[i])
		}
	}
}

func TestLoadTextErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n"), 0o644)
	_, err := LoadText([]string{bad}, byteTok, 0.1)
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") || !strings.Contains(err.Error(), "text") {
		t.Errorf("missing field: %v", err)
	}
	os.WriteFile(bad, []byte("{\"text\": \"ok\"}\n{\"text\": 3\n"), 0o644)
	if _, err := LoadText([]string{bad}, byteTok, 0.1); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := LoadText([]string{filepath.Join(dir, "none.txt")}, byteTok, 0.1); err == nil {
		t.Error("missing file accepted")
	}
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "bin"), []byte{0, 1, 2}, 0o644)
	if _, err := LoadText([]string{empty}, byteTok, 0.1); err == nil || !strings.Contains(err.Error(), "no text files") {
		t.Errorf("directory without text: %v", err)
	}
	// A directory: text files in name order, binary ones skipped.
	os.WriteFile(filepath.Join(empty, "a.txt"), []byte("ab"), 0o644)
	os.WriteFile(filepath.Join(empty, "b.txt"), []byte("cd"), 0o644)
	c, err := LoadText([]string{empty}, byteTok, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{'a', 'b', 256, 'c', 'd', 256}; len(c.Train) != len(want) || c.Train[2] != 256 || c.Train[3] != 'c' {
		t.Errorf("stream %v, want %v", c.Train, want)
	}
}
