package cpu

import (
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// TestDecodeAdvanceCases checks every branch of the bookkeeping on one
// batch whose expected outcome is written out by hand: B = 6 sequences, at
// most M = 3 tokens, context 8, EOS 7.
func TestDecodeAdvanceCases(t *testing.T) {
	const B, M, eos, ctx = 6, 3, 7, 8
	b := New(1)
	const A = gpu.DecodeActive
	// Sequences: 0 goes on; 1 samples EOS; 2 reaches M; 3 fills the
	// context; 4 has stopped before; 5 goes on from a longer prompt.
	state := []int32{
		4, 5, 6, 7, 3, 2, // cached lengths
		0, 1, 2, 1, 3, 1, // generated counts
		A, A, A, A, gpu.DecodeStopEOS, A,
	}
	out0 := []int32{9, 9, 9, 41, 9, 9, 42, 43, 9, 44, 9, 9, 45, 46, 47, 48, 9, 9}
	sampled := []int32{11, eos, 13, 14, 15, 16}
	ids := int32Of(t, b, slices.Repeat([]int32{99}, 4*B), 4, B)
	st := int32Of(t, b, slices.Clone(state), 3, B)
	out := int32Of(t, b, slices.Clone(out0), B, M)
	live := int32Of(t, b, []int32{99}, 1)
	b.DecodeAdvance(ids, st, out, live, int32Of(t, b, sampled, B), eos, ctx)
	assertNoErr(t, b)

	wantIDs := []int32{
		11, 0, 0, 0, 0, 16, // tokens fed
		4, 0, 0, 0, 0, 2, // positions
		4, -1, -1, -1, -1, 2, // write starts
		5, 0, 0, 0, 0, 3, // lengths
	}
	wantState := []int32{
		5, 5, 6, 7, 3, 3,
		1, 1, 3, 2, 3, 2,
		A, gpu.DecodeStopEOS, gpu.DecodeStopMaxNew, gpu.DecodeStopContext, gpu.DecodeStopEOS, A,
	}
	wantOut := []int32{11, 9, 9, 41, 9, 9, 42, 43, 13, 44, 14, 9, 45, 46, 47, 48, 16, 9}
	for _, c := range []struct {
		name      string
		got, want []int32
	}{{"ids", I32(ids), wantIDs}, {"state", I32(st), wantState}, {"out", I32(out), wantOut}, {"live", I32(live), []int32{2}}} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestDecodeAdvanceRejects checks the shape rules and an active state with
// no room left in out.
func TestDecodeAdvanceRejects(t *testing.T) {
	b := New(1)
	ids, st := int32Of(t, b, make([]int32, 8), 4, 2), int32Of(t, b, []int32{3, 3, 2, 0, -1, -1}, 3, 2)
	out, live, smp := int32Of(t, b, make([]int32, 4), 2, 2), int32Of(t, b, []int32{0}, 1), int32Of(t, b, []int32{5, 6}, 2)
	b.DecodeAdvance(ids, st, out, live, smp, -1, 8)
	if err := b.Err(); err == nil || !strings.Contains(err.Error(), "sequence 0") {
		t.Fatalf("a generated count of 2 with room for 2: %v", err)
	}
	for _, c := range []struct {
		name string
		run  func(b *Backend)
		want string
	}{
		{"ctx 0", func(b *Backend) {
			b.DecodeAdvance(int32Of(t, b, make([]int32, 8), 4, 2), int32Of(t, b, make([]int32, 6), 3, 2), int32Of(t, b, make([]int32, 4), 2, 2),
				int32Of(t, b, []int32{0}, 1), int32Of(t, b, []int32{1, 2}, 2), -1, 0)
		}, "context 0"},
		{"ids shape", func(b *Backend) {
			b.DecodeAdvance(int32Of(t, b, make([]int32, 6), 3, 2), int32Of(t, b, make([]int32, 6), 3, 2), int32Of(t, b, make([]int32, 4), 2, 2),
				int32Of(t, b, []int32{0}, 1), int32Of(t, b, []int32{1, 2}, 2), -1, 4)
		}, "ids"},
		{"out rows", func(b *Backend) {
			b.DecodeAdvance(int32Of(t, b, make([]int32, 8), 4, 2), int32Of(t, b, make([]int32, 6), 3, 2), int32Of(t, b, make([]int32, 6), 3, 2),
				int32Of(t, b, []int32{0}, 1), int32Of(t, b, []int32{1, 2}, 2), -1, 4)
		}, "out"},
		{"aliased", func(b *Backend) {
			x := int32Of(t, b, make([]int32, 8), 4, 2)
			b.DecodeAdvance(x, int32Of(t, b, make([]int32, 6), 3, 2), int32Of(t, b, make([]int32, 4), 2, 2),
				int32Of(t, b, []int32{0}, 1), x.MustView(0, 2), -1, 4)
		}, "overlaps"},
	} {
		b := New(1)
		c.run(b)
		if err := b.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
}
