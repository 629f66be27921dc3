package model

import (
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// TestFootprintCountsAllocations: the estimate checked against the
// machine's memory before a model is allocated is what New allocates.
func TestFootprintCountsAllocations(t *testing.T) {
	base, _ := ConfigByName("tiny")
	rm := base
	rm.ScalarHead = true
	for _, c := range []struct {
		cfg   Config
		prec  Precision
		train bool
	}{{base, FP32, false}, {base, FP32, true}, {base, BF16, true}, {rm, FP32, true}} {
		m, err := New(cpu.New(1), c.cfg, Options{MaxBatch: 3, MaxSeq: 40, Train: c.train, Precision: c.prec})
		if err != nil {
			t.Fatal(err)
		}
		size := func(ts ...*gpu.Tensor) (n int64) {
			for _, x := range ts {
				if x != nil {
					n += int64(x.Len() * x.DType().Size())
				}
			}
			return n
		}
		got := size(m.Params.All, m.bufs.tokens, m.bufs.targets, m.bufs.validLen)
		if m.Grads != nil {
			got += size(m.Grads.All)
		}
		if c.prec == BF16 {
			got += size(m.w.All)
		}
		for _, x := range m.bufs.named {
			got += size(x)
		}
		if want := footprint(c.cfg, c.prec, 3, 40, c.train); got != want {
			t.Errorf("%v train=%v scalar=%v: allocated %d bytes, footprint %d", c.prec, c.train, c.cfg.ScalarHead, got, want)
		}
	}
}

// TestNewRefusesWhatDoesNotFit: a batch far beyond the machine's memory is
// an error naming the need, not an out-of-memory crash.
func TestNewRefusesWhatDoesNotFit(t *testing.T) {
	if _, ok := hostMemAvailable(); !ok {
		t.Skip("no MemAvailable on this system: New would really try")
	}
	cfg, _ := ConfigByName("gpt2")
	_, err := New(cpu.New(1), cfg, Options{MaxBatch: 1 << 16, MaxSeq: 1024, Train: true})
	if err == nil || !strings.Contains(err.Error(), "GiB of memory") {
		t.Fatalf("a 64k×1024 gpt2 batch: %v", err)
	}
}
