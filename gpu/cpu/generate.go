package cpu

import "github.com/instructgo/instructgo/gpu"

// DecodeAdvance implements gpu.Backend: generation's per-token bookkeeping,
// one sequence after another (B is a batch of prompts, never large enough
// to be worth threads).
func (b *Backend) DecodeAdvance(ids, state, out, live, sampled *gpu.Tensor, eos int32, ctx int) {
	if b.err != nil {
		return
	}
	d, err := checker.DecodeAdvance(ids, state, out, live, sampled, ctx)
	if b.fail(err) {
		return
	}
	if i := decodeAdvance(I32(ids), I32(state), I32(out), I32(live), I32(sampled), d.B, d.M, eos, int32(ctx)); i >= 0 {
		b.fail(gpu.DecodeStateError(i))
	}
}

// decodeAdvance is DecodeAdvance on host slices: ids [4,B], state [3,B]
// (cached length, generated count, stop code), out [B,M]. It returns the
// first sequence whose active state has no room in out (nothing of which is
// changed), else −1.
func decodeAdvance(ids, state, out, live, sampled []int32, B, M int, eos, ctx int32) int {
	n, g, s := state[:B], state[B:2*B], state[2*B:3*B]
	fed, bad := int32(0), -1
	for i, t := range sampled[:B] {
		ids[i], ids[B+i], ids[2*B+i], ids[3*B+i] = 0, 0, -1, 0
		if s[i] != gpu.DecodeActive {
			continue
		}
		if g[i] < 0 || int(g[i]) >= M {
			if bad < 0 {
				bad = i
			}
			continue
		}
		if t == eos {
			s[i] = gpu.DecodeStopEOS
			continue
		}
		out[i*M+int(g[i])] = t
		g[i]++
		switch {
		case int(g[i]) == M:
			s[i] = gpu.DecodeStopMaxNew
		case n[i]+1 == ctx:
			s[i] = gpu.DecodeStopContext
		default:
			ids[i], ids[B+i], ids[2*B+i], ids[3*B+i] = t, n[i], n[i], n[i]+1
			n[i]++
			fed++
		}
	}
	live[0] = fed
	return bad
}
