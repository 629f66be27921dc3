package cpu

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of the ops with bf16 activations (bf16.go). Every op with
// activation-class arguments has cases below, each checked two ways:
//   - the definition (TestBF16OpsAreFloat32OnRoundedInputs): a bf16 call
//     leaves exactly the bits of the float32 op run on the bf16 inputs
//     widened, with its bf16 outputs rounded (gpu.RoundBF16);
//   - a float64 reference (TestBF16OpsMatchFloat64): the op's math in
//     float64 on the bf16-rounded inputs, its bf16 outputs rounded once.
//     A float32 result may then differ from the reference by the float32
//     kernel's error, bounded per argument (tol, relative to the largest
//     expected magnitude), and a bf16 result by that plus one bf16 ulp: a
//     float32 value and the float64 one on either side of a rounding tie
//     round to neighbours.

// argKind is the class of an op argument under test.
type argKind uint8

const (
	actArg argKind = iota // activation class: the dtype under test
	f32Arg                // float32 class
	idArg                 // Int32
)

// bfArg is one tensor argument of an op under test with its contents
// before the call.
type bfArg struct {
	kind  argKind
	shape []int
	vals  []float32 // float arguments: normal draws, never zero
	ids   []int32   // Int32 arguments
	tol   float64   // the reference's bound for the argument (see bfCase)
}

func act(vals []float32, shape ...int) bfArg { return bfArg{kind: actArg, shape: shape, vals: vals} }
func f32(vals []float32, shape ...int) bfArg { return bfArg{kind: f32Arg, shape: shape, vals: vals} }
func ids(v []int32, shape ...int) bfArg      { return bfArg{kind: idArg, shape: shape, ids: v} }

// within returns a with the reference bound tol.
func (a bfArg) within(tol float64) bfArg { a.tol = tol; return a }

// bfCase is one call of Backend method op on its arguments. ref returns,
// per argument, the contents the call must leave in it, computed in
// float64 from x, the arguments' contents as the op reads them
// (activation-class ones rounded to bf16, nil for Int32 ones), or nil for
// an argument it does not check. tol 0 asks for exact equality. def, when
// set, replaces call in the float32 run that defines the bf16 call's bits
// (a fused op whose bf16 semantics round an intermediate result).
type bfCase struct {
	op, variant string
	args        []bfArg
	call        func(b *Backend, t []*gpu.Tensor)
	def         func(b *Backend, t []*gpu.Tensor)
	ref         func(x [][]float32) [][]float64
}

func (c bfCase) String() string { return c.op + "/" + c.variant }

// inputs returns the arguments' contents as the op reads them.
func (c bfCase) inputs() [][]float32 {
	x := make([][]float32, len(c.args))
	for i, a := range c.args {
		switch a.kind {
		case actArg:
			x[i] = roundAll(a.vals)
		case f32Arg:
			x[i] = a.vals
		}
	}
	return x
}

// run allocates the arguments on b (activation-class ones of dtype act)
// holding x (Int32 ones their ids), calls the op and returns every
// argument's contents after the call (Int32 ones converted).
func (c bfCase) run(t *testing.T, b *Backend, act gpu.DType, x [][]float32) [][]float32 {
	t.Helper()
	return c.runWith(t, b, act, x, c.call)
}

// runWith is run with call in place of c.call.
func (c bfCase) runWith(t *testing.T, b *Backend, act gpu.DType, x [][]float32, call func(*Backend, []*gpu.Tensor)) [][]float32 {
	t.Helper()
	ts := make([]*gpu.Tensor, len(c.args))
	for i, a := range c.args {
		dt := map[argKind]gpu.DType{actArg: act, f32Arg: gpu.Float32, idArg: gpu.Int32}[a.kind]
		tt, err := b.Alloc(dt, a.shape...)
		if err != nil {
			t.Fatal(err)
		}
		if a.kind == idArg {
			err = b.UploadInt32(tt, a.ids)
		} else {
			err = b.Upload(tt, x[i])
		}
		if err != nil {
			t.Fatal(err)
		}
		ts[i] = tt
	}
	call(b, ts)
	assertNoErr(t, b)
	got := make([][]float32, len(ts))
	for i, tt := range ts {
		got[i] = make([]float32, tt.Len())
		if tt.DType() != gpu.Int32 {
			if err := b.Download(got[i], tt); err != nil {
				t.Fatal(err)
			}
			continue
		}
		v := make([]int32, tt.Len())
		if err := b.DownloadInt32(v, tt); err != nil {
			t.Fatal(err)
		}
		for j, id := range v {
			got[i][j] = float32(id)
		}
	}
	return got
}

// roundAll returns x rounded to bf16.
func roundAll(x []float32) []float32 {
	r := make([]float32, len(x))
	for i, v := range x {
		r[i] = gpu.RoundBF16(v)
	}
	return r
}

// bf16ULP is the spacing of bf16 values at magnitude a (8 significant
// bits), 0 at 0.
func bf16ULP(a float64) float64 {
	if a == 0 {
		return 0
	}
	_, e := math.Frexp(a) // a = f·2^e, f in [0.5, 1)
	return math.Ldexp(1, e-8)
}

// TestBF16OpsAreFloat32OnRoundedInputs checks the definition of a bf16
// call, bit for bit, on one and on two threads (a reduction's order
// depends on the thread count, so both runs use the same backend). The
// backend is shared by all cases so that stale scratch from earlier ops
// would show.
func TestBF16OpsAreFloat32OnRoundedInputs(t *testing.T) {
	for _, threads := range []int{1, 2} {
		b := New(threads)
		for _, c := range bf16Cases() {
			t.Run(fmt.Sprintf("%v/threads=%d", c, threads), func(t *testing.T) {
				x := c.inputs()
				got := c.run(t, b, gpu.BF16, x)
				def := c.call
				if c.def != nil {
					def = c.def
				}
				want := c.runWith(t, b, gpu.Float32, x, def)
				for i, a := range c.args {
					for j := range got[i] {
						w := want[i][j]
						if a.kind == actArg {
							w = gpu.RoundBF16(w)
						}
						if math.Float32bits(got[i][j]) != math.Float32bits(w) {
							t.Fatalf("argument %d element %d: bf16 op gives %g, the float32 op rounded %g", i, j, got[i][j], w)
						}
					}
				}
			})
		}
	}
}

// TestBF16OpsMatchFloat64 checks each case against its float64 reference.
func TestBF16OpsMatchFloat64(t *testing.T) {
	b := New(2)
	for _, c := range bf16Cases() {
		t.Run(c.String(), func(t *testing.T) {
			x := c.inputs()
			got := c.run(t, b, gpu.BF16, x)
			want := c.ref(x)
			if len(want) != len(c.args) {
				t.Fatalf("reference gives %d arguments, want %d", len(want), len(c.args))
			}
			checked := 0
			for i, a := range c.args {
				if want[i] == nil {
					continue
				}
				checked++
				checkBF16Ref(t, fmt.Sprintf("argument %d", i), a, got[i], want[i])
			}
			if checked == 0 {
				t.Fatal("the reference checks nothing")
			}
		})
	}
}

// checkBF16Ref compares an argument's contents got after the call with the
// float64 reference want, within the bounds bfCase states, and logs the
// largest difference as a share of its bound.
func checkBF16Ref(t *testing.T, what string, a bfArg, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, reference %d", what, len(got), len(want))
	}
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	var used float64
	for i, w := range want {
		g := float64(got[i])
		bound := a.tol * scale
		if a.kind == actArg {
			w = float64(gpu.RoundBF16(float32(w)))
			if a.tol > 0 {
				bound += bf16ULP(math.Max(math.Abs(g), math.Abs(w)))
			}
		}
		d := math.Abs(g - w)
		if !(d <= bound) {
			t.Fatalf("%s: element %d is %g, reference %g (difference %.3g > bound %.3g)", what, i, g, w, d, bound)
		}
		if bound > 0 {
			used = math.Max(used, d/bound)
		}
	}
	t.Logf("%s: largest difference %.3g of its bound", what, used)
}

// nonActMethods are the Backend methods without activation-class
// arguments, or (Fill, Copy, Convert, AdamW) whose bf16 storage side
// TestBF16Storage covers.
var nonActMethods = map[string]bool{
	"Name": true, "Alloc": true, "Upload": true, "UploadInt32": true, "Download": true,
	"DownloadInt32": true, "Sync": true, "Err": true, "Close": true,
	"Fill": true, "Copy": true, "Convert": true, "AdamW": true,
	"Scale": true, "Axpy": true, "Lerp": true, "SumSquares": true, "Dot": true,
	"GatherRows": true, "ScatterAddRows": true, "DecodeAdvance": true,
	"PPOPolicyLoss": true, "PPOValueLoss": true, "KLPenalizedRewards": true, "GAE": true, "MaskedWhiten": true,
}

// TestBF16EveryOpRuns: the cpu checker refuses bf16 for no op, and every
// Backend method with activation-class arguments has a case above (which
// runs it with bf16 activations and checks that no error is recorded).
func TestBF16EveryOpRuns(t *testing.T) {
	if checker.BF16Ops != nil {
		t.Fatal("the cpu checker still gates ops on bf16")
	}
	covered := map[string]bool{}
	for _, c := range bf16Cases() {
		covered[c.op] = true
	}
	bt := reflect.TypeFor[gpu.Backend]()
	for i := 0; i < bt.NumMethod(); i++ {
		if m := bt.Method(i).Name; !nonActMethods[m] && !covered[m] {
			t.Errorf("Backend.%s has activation-class arguments and no bf16 case", m)
		}
	}
	for op := range covered {
		if _, ok := bt.MethodByName(op); !ok {
			t.Errorf("case for %s, which is no Backend method", op)
		}
	}
}

// TestBF16ScratchReused: after a warm-up call, a bf16 MatMul and
// LayerNormForward take their scratch from the pool, the same buffers
// every call, and allocate exactly what the float32 op does (at these
// sizes the conversions run on the calling goroutine; larger ones add the
// closures of their parallel passes).
func TestBF16ScratchReused(t *testing.T) {
	const m, n, k = 256, 384, 128 // the tiny GPT's qkv product, 256 rows
	r := testRNG(40)
	av, bv, cv := randn(r, m*k, 1), randn(r, k*n, 1), randn(r, m*n, 1)
	xv, wv, biasv := randn(r, m*k, 1), randn(r, k, 1), randn(r, k, 1)
	for _, threads := range []int{1, 2} {
		b := New(threads)
		calls := map[gpu.DType][]func(){}
		for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
			alloc := func(vals []float32, shape ...int) *gpu.Tensor { return benchTensor(t, b, dt, vals, shape...) }
			A, B, C := alloc(av, m, k), alloc(bv, k, n), alloc(cv, m, n)
			x, w, bias, out := alloc(xv, m, k), alloc(wv, k), alloc(biasv, k), alloc(xv, m, k)
			mean, _ := b.Alloc(gpu.Float32, m)
			rstd, _ := b.Alloc(gpu.Float32, m)
			calls[dt] = []func(){
				func() { b.MatMul(C, A, B, false, false, 1, 1) },
				func() { b.LayerNormForward(out, mean, rstd, x, w, bias) },
			}
		}
		// pool lists the first element of each pooled buffer.
		pool := func() map[*float32]bool {
			p := map[*float32]bool{}
			for _, f := range b.act.free {
				p[&f[:1][0]] = true
			}
			return p
		}
		for i, name := range []string{"matmul", "layernorm forward"} {
			run32, run16 := calls[gpu.Float32][i], calls[gpu.BF16][i]
			run32()
			run16() // warm-up: the pool gets its buffers
			warm := pool()
			a32, a16 := testing.AllocsPerRun(20, run32), testing.AllocsPerRun(20, run16)
			t.Logf("%s, %d threads: %v allocations per float32 call, %v per bf16 call", name, threads, a32, a16)
			if a16 != a32 {
				t.Errorf("%s, %d threads: %v allocations per bf16 call, %v per float32 call", name, threads, a16, a32)
			}
			if got := pool(); !maps.Equal(got, warm) || len(b.act.staged) != 0 {
				t.Errorf("%s, %d threads: the pool changed from %d buffers to %d (%d still staged)", name, threads, len(warm), len(got), len(b.act.staged))
			}
		}
		assertNoErr(t, b)
	}
}
