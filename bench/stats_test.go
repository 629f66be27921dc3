package bench

import (
	"math"
	"slices"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		samples []float64
		want    Stats
	}{
		{"empty", nil, Stats{}},
		{"one", []float64{2}, Stats{N: 1, Median: 2, Min: 2, Max: 2, Q1: 2, Q3: 2, Mean: 2}},
		{"odd, unsorted", []float64{3, 1, 2}, Stats{N: 3, Median: 2, Min: 1, Max: 3, Q1: 1.5, Q3: 2.5, Mean: 2}},
		// Type-7 quartiles: positions 0.75, 1.5 and 2.25 of 0..3.
		{"even", []float64{4, 1, 3, 2}, Stats{N: 4, Median: 2.5, Min: 1, Max: 4, Q1: 1.75, Q3: 3.25, Mean: 2.5}},
		{"outlier moves the mean, not the median", []float64{1, 1, 1, 1, 101}, Stats{N: 5, Median: 1, Min: 1, Max: 101, Q1: 1, Q3: 1, Mean: 21}},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.samples)
		got := Summarize(tt.samples)
		if !statsClose(got, tt.want) {
			t.Errorf("%s: Summarize(%v) = %+v, want %+v", tt.name, in, got, tt.want)
		}
		if !slices.Equal(in, tt.samples) {
			t.Errorf("%s: Summarize reordered its input: %v", tt.name, tt.samples)
		}
	}
}

func statsClose(a, b Stats) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) <= 1e-12*max(1, math.Abs(y)) }
	return a.N == b.N && eq(a.Median, b.Median) && eq(a.Min, b.Min) && eq(a.Max, b.Max) &&
		eq(a.Q1, b.Q1) && eq(a.Q3, b.Q3) && eq(a.Mean, b.Mean)
}

func TestIQRPercent(t *testing.T) {
	if got := Summarize([]float64{1, 2, 3, 4, 5}).IQRPercent(); math.Abs(got-66.666666) > 1e-3 {
		t.Errorf("IQR%% of 1..5 = %v, want 66.67 (Q1 2, Q3 4, median 3)", got)
	}
	if got := Summarize([]float64{7}).IQRPercent(); got != 0 {
		t.Errorf("IQR%% of one sample = %v, want 0", got)
	}
}

func TestRate(t *testing.T) {
	if got := rate(10, 2); got != 5 {
		t.Errorf("rate(10, 2) = %v", got)
	}
	if got := rate(10, 0); got != 0 {
		t.Errorf("rate(10, 0) = %v, want 0", got)
	}
}
