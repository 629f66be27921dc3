package gpu

import (
	"math"
	"testing"
)

func TestCheckerPPO(t *testing.T) {
	const nb, nt = 2, 5
	const n = nb * nt
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	mask := func() *Tensor { return f32(t, nb, nt) }
	grid := func() *Tensor { return f32(t, nb, nt) }
	shared := f32(t, n)

	if got, err := k.PPOPolicyLoss(f32(t, n), f32(t, 4), f32(t, n), f32(t, n), f32(t, n), mask(), 0.2, 1); err != nil || got != n {
		t.Errorf("policy: %d %v", got, err)
	}
	if got, err := k.PPOValueLoss(f32(t, n), f32(t, 3), f32(t, n), f32(t, n), f32(t, n), mask(), 0.2, 1); err != nil || got != n {
		t.Errorf("value: %d %v", got, err)
	}
	b, tt, checks, err := k.KLPenalizedRewards(grid(), grid(), grid(), grid(), mask(), f32(t, nb), i32(t, nb), 0.1, KLK3)
	if err != nil || b != nb || tt != nt || len(checks) != 1 {
		t.Fatalf("kl: %d %d %d %v", b, tt, len(checks), err)
	}
	noErr(t, "lastIdx 0 and T−1", checks[0].Host([]int32{0, nt - 1}))
	wantErr(t, "lastIdx = T", checks[0].Host([]int32{1, nt}), "lastIdx[1] = 5 outside [0,5)")
	wantErr(t, "lastIdx negative", checks[0].Host([]int32{-1, 2}), "lastIdx[0] = -1")
	if b, tt, err := k.GAE(grid(), grid(), grid(), grid(), mask(), 1, 0.95); err != nil || b != nb || tt != nt {
		t.Errorf("gae: %d %d %v", b, tt, err)
	}
	if got, err := k.MaskedWhiten(f32(t, n), f32(t, n)); err != nil || got != n {
		t.Errorf("whiten: %d %v", got, err)
	}

	errOf := func(_ int, err error) error { return err }
	klErr := func(_, _ int, _ []IndexCheck, err error) error { return err }
	gaeErr := func(_, _ int, err error) error { return err }
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"policy: adv too short", errOf(k.PPOPolicyLoss(f32(t, n), f32(t, 4), f32(t, n), f32(t, n), f32(t, n-1), mask(), 0.2, 1)), "adv is float32[9] (9 elements), want 10 elements"},
		{"policy: stats [3]", errOf(k.PPOPolicyLoss(f32(t, n), f32(t, 3), f32(t, n), f32(t, n), f32(t, n), mask(), 0.2, 1)), "stats is float32[3] (3 elements), want 4"},
		{"policy: dlogp is logp", errOf(k.PPOPolicyLoss(shared, f32(t, 4), shared, f32(t, n), f32(t, n), mask(), 0.2, 1)), "dlogp float32[10] overlaps logp"},
		{"policy: NaN clipEps", errOf(k.PPOPolicyLoss(f32(t, n), f32(t, 4), f32(t, n), f32(t, n), f32(t, n), mask(), nan, 1)), "clipEps = NaN"},
		{"policy: infinite scale", errOf(k.PPOPolicyLoss(f32(t, n), f32(t, 4), f32(t, n), f32(t, n), f32(t, n), mask(), 0.2, inf)), "scale = +Inf"},
		{"policy: nil mask", errOf(k.PPOPolicyLoss(f32(t, n), f32(t, 4), f32(t, n), f32(t, n), f32(t, n), nil, 0.2, 1)), "mask is nil"},
		{"policy: Int32 adv", errOf(k.PPOPolicyLoss(f32(t, n), f32(t, 4), f32(t, n), f32(t, n), i32(t, n), mask(), 0.2, 1)), "adv is int32"},
		{"value: returns too long", errOf(k.PPOValueLoss(f32(t, n), f32(t, 3), f32(t, n), f32(t, n), f32(t, n+1), mask(), 0.2, 1)), "returns is float32[11]"},
		{"value: stats overlap values", errOf(k.PPOValueLoss(f32(t, n), shared.MustView(0, 3), shared, f32(t, n), f32(t, n), mask(), 0.2, 1)), "stats float32[3] overlaps values"},
		{"kl: lastIdx wrong length", klErr(k.KLPenalizedRewards(grid(), nil, grid(), grid(), mask(), f32(t, nb), i32(t, 3), 0.1, KLK1)), "lastIdx is int32[3]"},
		{"kl: mask rank 1", klErr(k.KLPenalizedRewards(grid(), nil, grid(), grid(), f32(t, n), f32(t, nb), i32(t, nb), 0.1, KLK1)), "want [B,T]"},
		{"kl: score too long", klErr(k.KLPenalizedRewards(grid(), nil, grid(), grid(), mask(), f32(t, nb+1), i32(t, nb), 0.1, KLK1)), "score is float32[3]"},
		{"kl: unknown estimator", klErr(k.KLPenalizedRewards(grid(), nil, grid(), grid(), mask(), f32(t, nb), i32(t, nb), 0.1, 2)), "unknown KL estimator 2"},
		{"kl: rewards is kl", klErr(k.KLPenalizedRewards(shared, shared, grid(), grid(), mask(), f32(t, nb), i32(t, nb), 0.1, KLK1)), "kl float32[10] overlaps rewards"},
		{"kl: NaN beta", klErr(k.KLPenalizedRewards(grid(), nil, grid(), grid(), mask(), f32(t, nb), i32(t, nb), nan, KLK1)), "beta = NaN"},
		{"gae: values too short", gaeErr(k.GAE(grid(), grid(), grid(), f32(t, n-1), mask(), 1, 0.95)), "values is float32[9]"},
		{"gae: adv is returns", gaeErr(k.GAE(shared, shared, grid(), grid(), mask(), 1, 0.95)), "adv float32[10] overlaps returns"},
		{"gae: returns is rewards", gaeErr(k.GAE(grid(), shared, shared, grid(), mask(), 1, 0.95)), "returns float32[10] overlaps rewards"},
		{"gae: mask rank 3", gaeErr(k.GAE(grid(), grid(), grid(), grid(), f32(t, 1, nb, nt), 1, 0.95)), "mask is float32[1,2,5], want [B,T]"},
		{"gae: NaN lambda", gaeErr(k.GAE(grid(), grid(), grid(), grid(), mask(), 1, nan)), "lambda = NaN"},
		{"whiten: mask too short", errOf(k.MaskedWhiten(f32(t, n), f32(t, n-1))), "mask is float32[9]"},
		{"whiten: x is mask", errOf(k.MaskedWhiten(shared, shared)), "x float32[10] overlaps mask"},
	} {
		wantErr(t, c.name, c.err, c.want)
	}
	wantErr(t, "mask error", KLLastIdxMaskError(1, 3), "lastIdx[1] = 3 is not a response token")
}
