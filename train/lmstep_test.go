package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// unfusedBackend is the cpu backend with each fused op replaced by the ops
// it fuses, in their order: the arithmetic of a training step before the
// fusions (the log-softmax backward ran later then, in Backward, on the
// same logits, lse and weights). It counts the fused calls it replaced.
type unfusedBackend struct {
	*cpu.Backend
	crossEntropy, addLayerNorm, linear int
}

// The fused linear layers are replaced in float32 only: in bf16 they round
// once where the ops they fuse round twice (docs/PRECISION.md), so there
// the fused op is the definition.

func (u *unfusedBackend) MatMulBias(c, a, w, bias *gpu.Tensor) {
	if c.DType() != gpu.Float32 {
		u.Backend.MatMulBias(c, a, w, bias)
		return
	}
	u.linear++
	u.MatMul(c, a, w, false, false, 1, 0)
	u.AddBias(c, bias)
}

func (u *unfusedBackend) MatMulBiasGELU(out, pre, a, w, bias *gpu.Tensor) {
	if pre.DType() != gpu.Float32 {
		u.Backend.MatMulBiasGELU(out, pre, a, w, bias)
		return
	}
	u.linear++
	u.MatMul(pre, a, w, false, false, 1, 0)
	u.AddBias(pre, bias)
	u.GeluForward(out, pre)
}

func (u *unfusedBackend) MatMulDGELU(dpre, dout, w, pre *gpu.Tensor) {
	if dpre.DType() != gpu.Float32 {
		u.Backend.MatMulDGELU(dpre, dout, w, pre)
		return
	}
	u.linear++
	u.MatMul(dpre, dout, w, false, true, 1, 0)
	u.GeluBackward(dpre, pre, dpre)
}

func (u *unfusedBackend) CrossEntropy(logp, entropy, lse, logits, targets, dlogp *gpu.Tensor) {
	u.crossEntropy++
	u.LogSoftmaxForward(logp, entropy, lse, logits, targets)
	u.LogSoftmaxBackward(logits, lse, nil, targets, dlogp, nil)
}

func (u *unfusedBackend) AddLayerNormForward(resOut, lnOut, mean, rstd, a, b, weight, bias *gpu.Tensor) {
	u.addLayerNorm++
	u.Add(resOut, a, b)
	u.LayerNormForward(lnOut, mean, rstd, resOut, weight, bias)
}

// TestLMStepFusedIsUnfused: LMStep on the cpu backend (the default
// pipeline: fp32) gives bit for bit the losses, gradient norms and weights
// of the same steps run with the unfused ops, over several steps with
// gradient accumulation, dropout and ignored targets; in bf16 too (the
// fused linear layers excepted). It fails if the fused cross-entropy,
// residual-LayerNorm or linear-layer path changes a result.
func TestLMStepFusedIsUnfused(t *testing.T) {
	cfg, _ := model.ConfigByName("tiny")
	cfg.Dropout = 0.1
	const B, T, accum, steps = 3, 24, 2, 4
	for _, prec := range []model.Precision{model.FP32, model.BF16} {
		t.Run(prec.String(), func(t *testing.T) {
			type result struct {
				loss, norm []float64
				weights    []float32
			}
			run := func(b gpu.Backend) result {
				m, err := model.New(b, cfg, model.Options{MaxBatch: B, MaxSeq: T, Train: true, Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				if err := m.SetParams(model.InitGPT2(cfg, 3)); err != nil {
					t.Fatal(err)
				}
				lm, err := NewLMStep(m, DefaultOptim(), 100, accum, 5)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(6, 7))
				next := func() (*model.Batch, error) {
					in := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
					for i := range in.Tokens {
						in.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
						in.Targets[i] = int32(rng.IntN(cfg.VocabSize))
						if rng.IntN(4) == 0 {
							in.Targets[i] = -1 // a prompt or padding position
						}
					}
					return in, nil
				}
				var r result
				for s := 1; s <= steps; s++ {
					loss, _, err := lm.Run(s, next)
					if err != nil {
						t.Fatal(err)
					}
					norm, err := lm.GradNorm()
					if err != nil {
						t.Fatal(err)
					}
					r.loss, r.norm = append(r.loss, loss), append(r.norm, norm)
				}
				r.weights = make([]float32, m.Params.All.Len())
				if err := b.Download(r.weights, m.Params.All); err != nil {
					t.Fatal(err)
				}
				return r
			}
			unfused := &unfusedBackend{Backend: cpu.New(2)}
			want := run(unfused)
			if unfused.crossEntropy != steps*accum || unfused.addLayerNorm != steps*accum*2*cfg.NLayer {
				t.Fatalf("the step made %d cross-entropy and %d add-layernorm calls, want %d and %d",
					unfused.crossEntropy, unfused.addLayerNorm, steps*accum, steps*accum*2*cfg.NLayer)
			}
			// Per micro-batch and block: three MatMulBias and one
			// MatMulBiasGELU forward, one MatMulDGELU backward.
			if wantLinear := steps * accum * 5 * cfg.NLayer; prec == model.FP32 && unfused.linear != wantLinear {
				t.Fatalf("the step made %d fused linear calls, want %d", unfused.linear, wantLinear)
			}
			got := run(cpu.New(2))
			for s := range want.loss {
				if got.loss[s] != want.loss[s] || got.norm[s] != want.norm[s] {
					t.Errorf("step %d: loss %.9g, grad norm %.9g; unfused %.9g, %.9g", s+1, got.loss[s], got.norm[s], want.loss[s], want.norm[s])
				}
			}
			if math.IsNaN(want.loss[0]) || want.loss[0] <= 0 {
				t.Fatalf("loss %v: the steps computed nothing", want.loss[0])
			}
			for i := range want.weights {
				if math.Float32bits(got.weights[i]) != math.Float32bits(want.weights[i]) {
					t.Fatalf("weight %d: %v, unfused %v", i, got.weights[i], want.weights[i])
				}
			}
			t.Logf("losses %v: identical, and %d weights", got.loss, len(got.weights))
		})
	}
}
