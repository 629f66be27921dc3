package model

import (
	"fmt"
	"math"
)

// checkFinite reports weights in host (cfg's layout) that are NaN or
// infinite: how many, and the first by tensor and index. A checkpoint with
// them is refused on load and never written.
func checkFinite(host []float32, cfg Config) error {
	bad, first := 0, ""
	for _, t := range checkpointTensors(cfg) {
		for i, v := range host[t.off : t.off+t.n] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				if bad == 0 {
					first = fmt.Sprintf("%s[%d] = %v", cfg.fileName(t.name), i, v)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d (first: %s)", ErrNonFinite, bad, len(host), first)
	}
	return nil
}
