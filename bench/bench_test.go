package bench

import (
	"context"
	"runtime"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
)

// The harness's own benchmarks as Go benchmarks, for quick local work:
//
//	go test -run '^$' -bench Ops/matmul -cpu 1,2 ./bench/
//
// They run the very cases `instructgo bench` runs (tiny config, default
// shapes) on a cpu backend with -cpu's thread count, and report the rate
// alone: the ceiling fractions need the ceilings, which only the command
// measures.

func benchEnv(b *testing.B) *env {
	return newEnv(context.Background(), cpu.New(runtime.GOMAXPROCS(0)), Options{Configs: []string{"tiny"}, Seed: 1})
}

func BenchmarkOps(b *testing.B) {
	e := benchEnv(b)
	for _, c := range e.opCases() {
		b.Run(c.group+"/"+c.name, func(b *testing.B) {
			run, err := c.setup()
			if err != nil {
				b.Fatal(err)
			}
			if err := run(0); err != nil { // warm-up
				b.Fatal(err)
			}
			i := 1
			for b.Loop() {
				if err := run(i); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := e.b.Sync(); err != nil {
				b.Fatal(err)
			}
			unit, scale := c.rateUnit()
			b.ReportMetric(c.work*float64(b.N)/b.Elapsed().Seconds()/scale, unit)
		})
	}
}

func BenchmarkSteps(b *testing.B) {
	e := benchEnv(b)
	for _, nc := range e.configs() {
		for _, c := range []stepCase{e.sftCase(nc), e.rmCase(nc)} {
			b.Run(c.group+"/"+c.name, func(b *testing.B) {
				run, err := c.setup()
				if err != nil {
					b.Fatal(err)
				}
				if err := run(0); err != nil {
					b.Fatal(err)
				}
				i := 1
				for b.Loop() {
					if err := run(i); err != nil {
						b.Fatal(err)
					}
					i++
				}
				secs := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(c.work/secs, c.unit)
				b.ReportMetric(c.flops/secs/1e9, "model-GFLOP/s")
			})
		}
		b.Run("ppo/"+nc.name+" iteration", func(b *testing.B) {
			p, err := e.newPPOBench(nc)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.iteration(0); err != nil {
				b.Fatal(err)
			}
			i := 1
			for b.Loop() {
				if _, err := p.iteration(i); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(p.E)*float64(b.N)/b.Elapsed().Seconds(), "episodes/s")
		})
	}
}
