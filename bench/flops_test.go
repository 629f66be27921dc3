package bench

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/model"
)

// tinyParamsByHand counts the tiny config's parameters from GPT-2's
// layout: V = 258, maxT = 256, C = 128, L = 4.
func tinyParamsByHand() float64 {
	const V, maxT, C, L = 258, 256, 128, 4
	wte := V * C        // 33,024
	wpe := maxT * C     // 32,768
	ln := 2 * C         // weight and bias
	attn := C*3*C + 3*C // c_attn: 49,536
	proj := C*C + C     // c_proj: 16,512
	fc := C*4*C + 4*C   // c_fc: 66,048
	fcProj := 4*C*C + C // mlp.c_proj: 65,664
	block := 2*ln + attn + proj + fc + fcProj
	return float64(wte + wpe + L*block + ln) // 859,136 with ln_f
}

func TestTrainFLOPsTinyByHand(t *testing.T) {
	cfg, err := model.ConfigByName("tiny")
	if err != nil {
		t.Fatal(err)
	}
	N := tinyParamsByHand()
	if N != 859136 || float64(cfg.NumParams()) != N {
		t.Fatalf("tiny has %d parameters, hand count %v (want 859,136)", cfg.NumParams(), N)
	}
	// 6·N + 6·L·C·T at T = 128: 5,154,816 + 393,216.
	const want = 5548032.0
	if got := TrainFLOPsPerToken(cfg, 128); got != want {
		t.Errorf("TrainFLOPsPerToken(tiny, 128) = %v, want %v", got, want)
	}
	if got := cfg.FLOPsPerToken(128); got != want {
		t.Errorf("model's FLOPsPerToken(tiny, 128) = %v, want %v (the same count)", got, want)
	}
	if got := ForwardFLOPsPerToken(cfg, 128); got != want/3 {
		t.Errorf("ForwardFLOPsPerToken(tiny, 128) = %v, want a third of the training count, %v", got, want/3)
	}
	// The reward model: a [C,1] score head instead of the tied LM head,
	// whose token table is then only looked up: N = 859,136 + 128 − 33,024.
	rm := cfg
	rm.ScalarHead = true
	if got, want := TrainFLOPsPerToken(rm, 128), 6*(N+128-258*128)+6*4*128*128; got != want {
		t.Errorf("TrainFLOPsPerToken(tiny reward model, 128) = %v, want %v", got, want)
	}
}

func TestOpFLOPs(t *testing.T) {
	if got := MatMulFLOPs(2, 3, 4); got != 48 {
		t.Errorf("MatMulFLOPs(2,3,4) = %v, want 48", got)
	}
	// One head of size 8 over 4 tokens: 16/2 = 8 score pairs, each 2·8
	// FLOPs for the score and 2·8 for the value: 256; backward 2.5×.
	if got := AttentionFLOPs(1, 4, 1, 8, false); got != 256 {
		t.Errorf("AttentionFLOPs forward = %v, want 256", got)
	}
	if got := AttentionFLOPs(2, 4, 3, 8, true); got != 2*3*256*2.5 {
		t.Errorf("AttentionFLOPs backward = %v, want %v", got, 2*3*256*2.5)
	}
	if got := DecodeAttentionFLOPs(2, 10, 3, 8); got != 4*2*3*10*8 {
		t.Errorf("DecodeAttentionFLOPs = %v", got)
	}
}

// TestAttentionFLOPsFlashConvention counts the benchmark's shapes by hand
// in FlashAttention's convention: 4·B·H·T²·hs for the two T×T×hs
// products of every head, halved for causal, and 2.5 times that backward.
func TestAttentionFLOPsFlashConvention(t *testing.T) {
	for _, tc := range []struct {
		B, T, H, hs int
		fwd         float64
	}{
		// Head sizes 32, 64 and 128 at 768 wide, B4 T512: 4·4·H·512²·hs/2
		// = 8·768·262,144 whatever the split: 1,610,612,736.
		{4, 512, 24, 32, 1610612736},
		{4, 512, 12, 64, 1610612736},
		{4, 512, 6, 128, 1610612736},
		// The tiny model's training shape: 4·16·4·128²·32/2 = 67,108,864.
		{16, 128, 4, 32, 67108864},
		// One sequence of 2 tokens, one head of 1: 4·1·1·4·1/2 = 8.
		{1, 2, 1, 1, 8},
	} {
		if got := AttentionFLOPs(tc.B, tc.T, tc.H, tc.hs, false); got != tc.fwd {
			t.Errorf("AttentionFLOPs(B%d T%d H%d hs%d) forward = %v, want %v", tc.B, tc.T, tc.H, tc.hs, got, tc.fwd)
		}
		if got := AttentionFLOPs(tc.B, tc.T, tc.H, tc.hs, true); got != 2.5*tc.fwd {
			t.Errorf("AttentionFLOPs(B%d T%d H%d hs%d) backward = %v, want %v", tc.B, tc.T, tc.H, tc.hs, got, 2.5*tc.fwd)
		}
	}
}

// TestCrossEntropyBytes: the logits read once and their gradient written
// once, in the activation dtype: GPT-2's 8192×50257 moves 3.29 GB in
// float32 and 1.65 GB in bf16.
func TestCrossEntropyBytes(t *testing.T) {
	if got := CrossEntropyBytes(8192, 50257, 4); got != 3293642752 {
		t.Errorf("CrossEntropyBytes(8192, 50257, float32) = %v, want 3,293,642,752", got)
	}
	if got := CrossEntropyBytes(8192, 50257, 2); got != 1646821376 {
		t.Errorf("CrossEntropyBytes(8192, 50257, bf16) = %v, want 1,646,821,376", got)
	}
	if got := CrossEntropyBytes(3, 5, 2); got != 60 {
		t.Errorf("CrossEntropyBytes(3, 5, bf16) = %v, want 60", got)
	}
}

func TestGenerateFLOPsByHand(t *testing.T) {
	cfg, _ := model.ConfigByName("tiny")
	N, L, C, V := tinyParamsByHand(), 4.0, 128.0, 258.0
	// A prompt of 2 tokens and 3 new ones: the prefill runs the body over
	// both prompt tokens and the LM head once; then 2 decoding steps
	// attend over 3 and 4 cached positions.
	prefill := 2*(2*(N-V*C)+2*L*C*2) + 2*V*C
	decode := (2*N + 4*L*C*3) + (2*N + 4*L*C*4)
	if got, want := GenerateFLOPs(cfg, 2, 3), prefill+decode; math.Abs(got-want) > 1e-6*want {
		t.Errorf("GenerateFLOPs(tiny, 2, 3) = %v, want %v", got, want)
	}
	if got, want := GenerateFLOPs(cfg, 5, 1), 5*(2*(N-V*C)+2*L*C*5)+2*V*C; got != want {
		t.Errorf("GenerateFLOPs with one new token = %v, want the prefill alone, %v", got, want)
	}
}
