package bench

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// measureCeilings measures the compute and memory ceilings and records
// them as results of the group "ceiling" (each the fraction of the best of
// its kind). The published peak, if any, is already in e.ceil.
func (e *env) measureCeilings() error {
	if e.isCPU {
		return e.cpuCeilings()
	}
	return e.deviceCeilings()
}

// cpuCeilings: cpu.PeakFMA and MeasureMemBandwidth with the backend's
// thread count. Both are the best of several rounds, timed by the host.
// The FMA peak is the compute ceiling of every precision: the cpu backend
// multiplies bf16 operands in float32, after widening them.
func (e *env) cpuCeilings() error {
	threads := e.b.(*cpu.Backend).Threads()
	d := e.opt.CeilingTime
	peak := cpu.PeakFMA(threads, d)
	memBytes := e.opt.MemBytes
	if memBytes <= 0 {
		memBytes = max(4*LastLevelCache(), 128<<20)
	}
	mb := MeasureMemBandwidth(threads, memBytes, d)
	if err := e.ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted: %w", err)
	}
	e.ceil.ComputeGFLOPs = peak
	e.ceil.ComputeMethod = fmt.Sprintf("cpu.PeakFMA, %d threads: independent float32 FMA chains, best round", threads)
	e.ceil.MemoryGBs = mb.Best()
	e.ceil.MemoryMethod = fmt.Sprintf("best of copy %s and read %s GB/s, %d threads over %d MiB buffers, best round",
		formatValue(mb.Copy), formatValue(mb.Read), threads, mb.Bytes>>20)
	e.rep.Ceilings = e.ceil
	// These are the best rounds of their own measurements: no per-call
	// time (Time stays zero), Min = Max = Value.
	e.add(Result{Group: "ceiling", Name: "fma peak", Shape: fmt.Sprintf("%d threads", threads), Unit: "GFLOP/s",
		Value: peak, Min: peak, Max: peak, Ceiling: CeilCompute, OfMeasured: 1})
	best := mb.Best()
	e.add(Result{Group: "ceiling", Name: "memory copy", Shape: fmt.Sprintf("%d threads, 2×%d MiB", threads, mb.Bytes>>20), Unit: "GB/s",
		Value: mb.Copy, Min: mb.Copy, Max: mb.Copy, Ceiling: CeilMemory, OfMeasured: mb.Copy / best})
	e.add(Result{Group: "ceiling", Name: "memory read", Shape: fmt.Sprintf("%d threads, %d MiB", threads, mb.Bytes>>20), Unit: "GB/s",
		Value: mb.Read, Min: mb.Read, Max: mb.Read, Ceiling: CeilMemory, OfMeasured: mb.Read / best})
	return nil
}

// deviceCeilings measures a backend other than the cpu through the
// contract: the GEMM rate of a large square MatMul in the run's precision
// (A, B and C in the activation dtype; cuBLAS on cuda, TF32 where the
// caller switched it on) and the copy bandwidth of Copy between two large
// tensors (one read and one write of every byte).
func (e *env) deviceCeilings() error {
	timing := e.opt.Timing
	timing.MinTime = e.opt.CeilingTime
	best := 0.0
	var gemm []Result
	for _, n := range []int{4096, 8192} {
		A, err := e.alloc(e.act, n, n)
		if err != nil {
			return fmt.Errorf("bench: gemm ceiling: %w", err)
		}
		B, err := e.alloc(e.act, n, n)
		if err != nil {
			return fmt.Errorf("bench: gemm ceiling: %w", err)
		}
		C, err := e.b.Alloc(e.act, n, n)
		if err != nil {
			return fmt.Errorf("bench: gemm ceiling: %w", err)
		}
		m, err := measure(e.ctx, e.b, timing, func(int) error {
			e.b.MatMul(C, A, B, false, false, 1, 0)
			return nil
		})
		if err != nil {
			return fmt.Errorf("bench: gemm ceiling %d³: %w", n, err)
		}
		flops := MatMulFLOPs(n, n, n)
		r := Result{Group: "ceiling", Name: fmt.Sprintf("gemm %d", n), Shape: fmt.Sprintf("%d×%d×%d MatMul, %s", n, n, n, e.opt.Precision), Unit: "GFLOP/s",
			Value: rate(flops, m.stats.Median) / 1e9, Min: rate(flops, m.stats.Max) / 1e9, Max: rate(flops, m.stats.Min) / 1e9,
			Work: flops, Ceiling: CeilCompute, Time: m.stats, PerSample: m.perSample}
		best = max(best, r.Value)
		gemm = append(gemm, r)
	}
	n := int(max(e.rotate, 256<<20) / 4)
	src, err := e.alloc(gpu.Float32, n)
	if err != nil {
		return fmt.Errorf("bench: copy ceiling: %w", err)
	}
	dst, err := e.b.Alloc(gpu.Float32, n)
	if err != nil {
		return fmt.Errorf("bench: copy ceiling: %w", err)
	}
	m, err := measure(e.ctx, e.b, timing, func(int) error {
		e.b.Copy(dst, src)
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: copy ceiling: %w", err)
	}
	bytes := 8 * float64(n)
	cp := Result{Group: "ceiling", Name: "device copy", Shape: fmt.Sprintf("Copy of %d MiB", n*4>>20), Unit: "GB/s",
		Value: rate(bytes, m.stats.Median) / 1e9, Min: rate(bytes, m.stats.Max) / 1e9, Max: rate(bytes, m.stats.Min) / 1e9,
		Work: bytes, Ceiling: CeilMemory, OfMeasured: 1, Time: m.stats, PerSample: m.perSample}
	e.ceil.ComputeGFLOPs = best
	e.ceil.ComputeMethod = fmt.Sprintf("best median of MatMul 4096³ and 8192³ in %s through the backend (%s)", e.opt.Precision, e.b.Name())
	e.ceil.MemoryGBs = cp.Value
	e.ceil.MemoryMethod = fmt.Sprintf("median of Copy between two %d MiB tensors, read and write counted", n*4>>20)
	e.rep.Ceilings = e.ceil
	for _, r := range gemm {
		r.OfMeasured = r.Value / best
		if e.ceil.PublishedGFLOPs > 0 {
			r.OfPublished = r.Value / e.ceil.PublishedGFLOPs
		}
		e.add(r)
	}
	e.add(cp)
	return nil
}
