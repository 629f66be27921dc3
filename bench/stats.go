package bench

import (
	"math"
	"slices"
)

// Stats summarises the timed samples of one benchmark, in seconds per call.
type Stats struct {
	N      int     `json:"n"` // timed samples
	Median float64 `json:"median_s"`
	Min    float64 `json:"min_s"`
	Max    float64 `json:"max_s"`
	Q1     float64 `json:"q1_s"` // first quartile
	Q3     float64 `json:"q3_s"` // third quartile
	Mean   float64 `json:"mean_s"`
}

// Summarize computes Stats of samples (seconds). Quartiles interpolate
// linearly between order statistics (the definition of R's type 7 and
// NumPy's default): the median of an even count is the mean of the two
// middle samples. No samples give the zero Stats.
func Summarize(samples []float64) Stats {
	if len(samples) == 0 {
		return Stats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Stats{
		N:      len(s),
		Median: quantile(s, 0.5),
		Min:    s[0],
		Max:    s[len(s)-1],
		Q1:     quantile(s, 0.25),
		Q3:     quantile(s, 0.75),
		Mean:   sum / float64(len(s)),
	}
}

// quantile is the q-quantile of sorted (non-empty), interpolating between
// the two nearest order statistics.
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[hi]-sorted[lo])
}

// IQRPercent is the interquartile range as a percentage of the median: the
// spread of the middle half of the samples. 0 for fewer than two samples.
func (s Stats) IQRPercent() float64 {
	if s.N < 2 || s.Median <= 0 {
		return 0
	}
	return 100 * (s.Q3 - s.Q1) / s.Median
}

// rate converts seconds per call into work per second (0 for no time).
func rate(work, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return work / seconds
}
