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

// freeMemory is the cpu backend reporting a fixed amount of free device
// memory, for DecodeBatch.
type freeMemory struct {
	*cpu.Backend
	free int64
}

func (f freeMemory) FreeMemory() (int64, error) { return f.free, nil }

// TestKVCacheBytesCountsAllocations: the estimate DecodeBatch sizes a
// decoding batch with is what NewKVCache allocates, for GPT-2 and the
// Llama family in fp32 and bf16; DecodeBatch takes every sequence when
// half the free memory holds them, else whole multiples of MaxBatch.
func TestKVCacheBytesCountsAllocations(t *testing.T) {
	tiny, _ := ConfigByName("tiny")
	llama, _ := ConfigByName("llama-tiny")
	for _, cfg := range []Config{tiny, llama} {
		for _, prec := range []Precision{FP32, BF16} {
			m, err := New(cpu.New(1), cfg, Options{MaxBatch: 4, MaxSeq: 40, Precision: prec})
			if err != nil {
				t.Fatal(err)
			}
			kv, err := m.NewKVCache(6, 50)
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			for _, x := range append(append([]*gpu.Tensor{kv.ids, kv.sampled, kv.gen, kv.x, kv.ln, kv.att, kv.proj, kv.hid, kv.qkv, kv.fc, kv.logits, kv.act}, kv.k...), kv.v...) {
				if x != nil {
					got += int64(x.Len() * x.DType().Size())
				}
			}
			if want := kvCacheBytes(cfg, prec, 6, 50); got != want {
				t.Errorf("%s %v: allocated %d bytes, kvCacheBytes %d", cfg.Arch, prec, got, want)
			}
		}
	}
	per := kvCacheBytes(tiny, FP32, 4, 50)
	for _, c := range []struct {
		free      int64
		want, got int
	}{{1 << 40, 64, 64}, {2*per*5 + 1, 64, 20}, {per, 64, 4}, {1 << 40, 3, 3}} {
		m, err := New(freeMemory{cpu.New(1), c.free}, tiny, Options{MaxBatch: 4, MaxSeq: 40})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.DecodeBatch(c.want, 50); got != c.got {
			t.Errorf("free %d, want %d: DecodeBatch %d, expected %d", c.free, c.want, got, c.got)
		}
	}
	m, _ := New(cpu.New(1), tiny, Options{MaxBatch: 4, MaxSeq: 40})
	if got := m.DecodeBatch(64, 50); got != 4 {
		t.Errorf("a backend that reports no memory: DecodeBatch %d, want MaxBatch 4", got)
	}
}
