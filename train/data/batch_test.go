package data

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/model"
)

func TestSFTBatchLayout(t *testing.T) {
	ex := []SFTTokens{
		{Tokens: []int32{1, 2, 3, 4, 5}, PromptLen: 2},
		{Tokens: []int32{7, 8, 9}, PromptLen: 1},
		{Tokens: []int32{10, 11}, PromptLen: 1},
	}
	b := NewSFTBatch(ex, []int{0, 1, 2}, 99)
	want := &SFTBatch{
		Batch: model.Batch{
			B: 3, T: 5,
			Tokens: []int32{
				1, 2, 3, 4, 5,
				7, 8, 9, 99, 99,
				10, 11, 99, 99, 99,
			},
			Targets: []int32{
				-1, 3, 4, 5, -1, // position 1 holds the last prompt token and predicts the first completion token
				8, 9, -1, -1, -1,
				11, -1, -1, -1, -1,
			},
			ValidLen: []int32{5, 3, 2},
		},
		Examples:   []int{0, 1, 2},
		LossTokens: 6,
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
	// A subset, in the order given.
	b = NewSFTBatch(ex, []int{2, 1}, 0)
	if !slices.Equal(b.Tokens, []int32{10, 11, 0, 7, 8, 9}) || !slices.Equal(b.Targets, []int32{11, -1, -1, 8, 9, -1}) ||
		!slices.Equal(b.ValidLen, []int32{2, 3}) || b.B != 2 || b.T != 3 {
		t.Errorf("subset: %+v", b)
	}
}

func TestComparisonBatchLayout(t *testing.T) {
	cs := []ComparisonTokens{
		{Responses: [][]int32{{1, 2, 3}, {1, 2, 4, 5}}, PromptLen: 2, Ranking: []int{1, 0}},
		{Responses: [][]int32{{6, 7}, {6, 8}, {6}}, PromptLen: 1, Ranking: []int{2, 0, 1}, Margin: 0.5},
	}
	b := NewComparisonBatch(cs, []int{1, 0}, 99)
	want := &ComparisonBatch{
		Batch: model.Batch{
			B: 5, T: 4,
			Tokens: []int32{
				6, 7, 99, 99,
				6, 8, 99, 99,
				6, 99, 99, 99,
				1, 2, 3, 99,
				1, 2, 4, 5,
			},
			ValidLen: []int32{2, 2, 1, 3, 4},
		},
		Groups: []ComparisonGroup{
			{Start: 0, K: 3, Ranking: []int{2, 0, 1}, Margin: 0.5},
			{Start: 3, K: 2, Ranking: []int{1, 0}},
		},
		Examples: []int{1, 0},
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("got  %+v\nwant %+v", b, want)
	}
	if got := b.Groups[0].Pairs(); !reflect.DeepEqual(got, [][2]int{{2, 0}, {2, 1}, {0, 1}}) {
		t.Errorf("pairs of group 0: %v", got)
	}
	if got := b.Groups[1].Pairs(); !reflect.DeepEqual(got, [][2]int{{4, 3}}) {
		t.Errorf("pairs of group 1: %v", got)
	}
}

func randomItems(rng *rand.Rand, n, maxRows, maxLen int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Rows: 1 + rng.IntN(maxRows), Len: 1 + rng.IntN(maxLen)}
	}
	return items
}

// run draws batches until the batcher has finished the given number of
// epochs, checking each against the options; it returns the batches.
func run(t *testing.T, b *Batcher, items []Item, opt BatchOptions, epochs int) [][]int {
	t.Helper()
	var out [][]int
	for b.Pos().Epoch < epochs {
		pos := b.Pos()
		idx := b.Next()
		if len(idx) == 0 {
			t.Fatal("empty batch")
		}
		rows, T := 0, 0
		for _, i := range idx {
			rows += items[i].Rows
			T = max(T, items[i].Len)
		}
		if opt.TokenBudget > 0 && rows*T > opt.TokenBudget || opt.MaxBatch > 0 && rows > opt.MaxBatch {
			t.Fatalf("batch of %d rows × %d over budget %d / %d", rows, T, opt.TokenBudget, opt.MaxBatch)
		}
		// Greedy: the example after the batch, in the same epoch, would not fit.
		if after := pos.Next + len(idx); after < b.Len() && b.Pos().Epoch == pos.Epoch {
			nx := items[b.order[after]]
			r, tt := rows+nx.Rows, max(T, nx.Len)
			if !(opt.TokenBudget > 0 && r*tt > opt.TokenBudget || opt.MaxBatch > 0 && r > opt.MaxBatch) {
				t.Fatalf("batch ended although the next example fits")
			}
		}
		out = append(out, idx)
	}
	return out
}

func TestBatcherBudgetAndEpochs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		rows int
		opt  BatchOptions
	}{
		{1, BatchOptions{TokenBudget: 256, MaxBatch: 8, Seed: 1}},
		{1, BatchOptions{TokenBudget: 256, Seed: 2}},
		{1, BatchOptions{MaxBatch: 5, Seed: 3}},
		{9, BatchOptions{TokenBudget: 9 * 64, MaxBatch: 16, Seed: 4}},
	} {
		items := randomItems(rng, 101, tc.rows, 64)
		b, err := NewBatcher(items, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		wantBatches := []int{b.EpochBatches(0), b.EpochBatches(1), b.EpochBatches(2)}
		batches := run(t, b, items, tc.opt, 3)
		// Each epoch visits every example once, and epochs differ in order.
		var orders [][]int
		var counts []int
		var cur []int
		n := 0
		for _, idx := range batches {
			cur = append(cur, idx...)
			n++
			if len(cur) == len(items) {
				orders, counts, cur, n = append(orders, cur), append(counts, n), nil, 0
			}
		}
		if len(orders) != 3 || cur != nil {
			t.Fatalf("%+v: batches do not split into 3 epochs", tc.opt)
		}
		for e, o := range orders {
			s := slices.Sorted(slices.Values(o))
			for i, v := range s {
				if v != i {
					t.Fatalf("%+v: epoch %d is not a permutation", tc.opt, e)
				}
			}
		}
		if slices.Equal(orders[0], orders[1]) || slices.Equal(orders[1], orders[2]) {
			t.Errorf("%+v: epochs not reshuffled", tc.opt)
		}
		if !slices.Equal(counts, wantBatches) {
			t.Errorf("%+v: epochs had %v batches, EpochBatches said %v", tc.opt, counts, wantBatches)
		}
		if p := b.Pos(); p != (Position{Epoch: 3}) {
			t.Errorf("position after 3 epochs %+v", p)
		}
	}
}

func TestBatcherDeterministicAndResumable(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	items := randomItems(rng, 57, 1, 100)
	opt := BatchOptions{TokenBudget: 400, MaxBatch: 12, Seed: 42}
	a, _ := NewBatcher(items, opt)
	b, _ := NewBatcher(items, opt)
	first := run(t, a, items, opt, 2)
	if !reflect.DeepEqual(first, run(t, b, items, opt, 2)) {
		t.Fatal("same seed, different batches")
	}
	opt2 := opt
	opt2.Seed = 43
	c, _ := NewBatcher(items, opt2)
	if reflect.DeepEqual(first, run(t, c, items, opt2, 2)) {
		t.Fatal("different seeds, same batches")
	}

	// Resume from every position reached during the first two epochs, in
	// a fresh batcher and in the used one, through a JSON round trip.
	a, _ = NewBatcher(items, opt)
	var positions []Position
	for a.Pos().Epoch < 2 {
		positions = append(positions, a.Pos())
		a.Next()
	}
	for i, p := range positions {
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Position
		if err := json.Unmarshal(raw, &q); err != nil {
			t.Fatal(err)
		}
		fresh, _ := NewBatcher(items, opt)
		for _, r := range []*Batcher{fresh, a} {
			if err := r.Seek(q); err != nil {
				t.Fatal(err)
			}
			for j := i; j < min(i+15, len(first)); j++ {
				if got := r.Next(); !slices.Equal(got, first[j]) {
					t.Fatalf("resumed at %+v: batch %d is %v, want %v", p, j, got, first[j])
				}
			}
		}
	}
}

func TestBatcherSeek(t *testing.T) {
	items := []Item{{1, 3}, {1, 3}, {1, 3}}
	b, _ := NewBatcher(items, BatchOptions{MaxBatch: 2, Seed: 9})
	if err := b.Seek(Position{Epoch: 4, Next: 3}); err != nil || b.Pos() != (Position{Epoch: 5}) {
		t.Errorf("seek to the end of an epoch: %+v, %v", b.Pos(), err)
	}
	for _, p := range []Position{{-1, 0}, {0, -1}, {0, 4}} {
		if err := b.Seek(p); err == nil {
			t.Errorf("seek to %+v accepted", p)
		}
	}
	if b.Pos() != (Position{Epoch: 5}) {
		t.Errorf("a refused seek moved the batcher to %+v", b.Pos())
	}
	// Mid-epoch and at its last batch.
	b.Seek(Position{Epoch: 1, Next: 1})
	if got := b.Next(); len(got) != 2 || b.Pos() != (Position{Epoch: 2}) {
		t.Errorf("last batch of epoch 1: %v, then %+v", got, b.Pos())
	}
}

func TestBatcherSequential(t *testing.T) {
	items := []Item{{1, 4}, {1, 4}, {1, 4}, {1, 4}, {1, 4}}
	b, err := NewBatcher(items, BatchOptions{TokenBudget: 8, Sequential: true})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]int
	for range 6 {
		got = append(got, b.Next())
	}
	want := [][]int{{0, 1}, {2, 3}, {4}, {0, 1}, {2, 3}, {4}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sequential batches %v, want %v", got, want)
	}
}

func TestNewBatcherErrors(t *testing.T) {
	for _, tc := range []struct {
		items []Item
		opt   BatchOptions
		want  string
	}{
		{nil, BatchOptions{MaxBatch: 1}, "batcher: no examples"},
		{[]Item{{1, 1}}, BatchOptions{}, "batcher: neither a token budget nor a batch size set"},
		{[]Item{{1, 1}}, BatchOptions{TokenBudget: -1}, "batcher: negative token budget -1 or batch size 0"},
		{[]Item{{1, 8}, {2, 5}}, BatchOptions{TokenBudget: 9}, "batcher: example 1 (2 sequences × 5 tokens) exceeds the token budget 9"},
		{[]Item{{4, 1}}, BatchOptions{MaxBatch: 3}, "batcher: example 0 has 4 sequences, more than the batch size 3"},
		{[]Item{{1, 0}}, BatchOptions{MaxBatch: 3}, "batcher: example 0 has 1 sequences of up to 0 tokens"},
	} {
		if _, err := NewBatcher(tc.items, tc.opt); err == nil || err.Error() != tc.want {
			t.Errorf("%v %+v: error %v, want %s", tc.items, tc.opt, err, tc.want)
		}
	}
}

// TestPermutationGolden pins the shuffle: a saved data position must mean
// the same batches in every build.
func TestPermutationGolden(t *testing.T) {
	if got, want := permutation(10, 1, 0), []int{7, 6, 1, 3, 2, 4, 8, 9, 0, 5}; !slices.Equal(got, want) {
		t.Errorf("permutation(10, 1, 0) = %v, want %v", got, want)
	}
	if got, want := permutation(10, 1, 1), []int{2, 5, 8, 3, 4, 1, 7, 6, 0, 9}; !slices.Equal(got, want) {
		t.Errorf("permutation(10, 1, 1) = %v, want %v", got, want)
	}
	for n := range 40 {
		p := permutation(n, 7, uint64(n))
		if s := slices.Sorted(slices.Values(p)); len(s) != n || (n > 0 && (s[0] != 0 || s[n-1] != n-1)) || len(slices.Compact(s)) != n {
			t.Fatalf("permutation(%d) = %v", n, p)
		}
	}
}

// TestPermutationUniform checks that every element lands in every place
// about equally often.
func TestPermutationUniform(t *testing.T) {
	const n, trials = 5, 50000
	var counts [n][n]int
	for s := range uint64(trials) {
		for place, v := range permutation(n, s, 0) {
			counts[v][place]++
		}
	}
	for v := range n {
		for place := range n {
			if c := counts[v][place]; c < trials/n*9/10 || c > trials/n*11/10 {
				t.Errorf("element %d at place %d %d times of %d", v, place, c, trials)
			}
		}
	}
}

func TestSFTBatcherBudget(t *testing.T) {
	var ex []SFTExample
	for i := range 40 {
		ex = append(ex, SFTExample{Prompt: string(rune('a'+i%26)) + "?", Completion: string(make([]byte, i))})
	}
	toks, _ := TokenizeSFT(ex, testEnc{}, 32)
	sb, err := NewSFTBatcher(toks, testPad, BatchOptions{TokenBudget: 128, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for sb.Pos().Epoch == 0 {
		b := sb.Next()
		if b.B*b.T > 128 || b.T > 32 || len(b.Tokens) != b.B*b.T || len(b.Targets) != b.B*b.T || len(b.ValidLen) != b.B {
			t.Fatalf("batch %d×%d", b.B, b.T)
		}
		seen += b.B
	}
	if seen != len(toks) {
		t.Errorf("epoch saw %d examples of %d", seen, len(toks))
	}
}
