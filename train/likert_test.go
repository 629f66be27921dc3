package train

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/train/tasks"
)

// TestRate: the mean of the samples' expected ratings and its standard
// error, computed here directly.
func TestRate(t *testing.T) {
	l := tasks.DefaultLabeler()
	ev := TaskEval{Samples: []TaskSample{
		{Task: "upper", Answer: "HI", Response: "HI"}, {Task: "upper", Answer: "HI", Response: ""},
		{Task: "reverse", Answer: "ab", Response: "ab"}, {Task: "reverse", Answer: "ab", Response: "ba"},
	}}
	var xs []float64
	for _, s := range ev.Samples {
		v, err := l.ExpectedRating(s.Task, s.Answer, s.Response)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, v)
	}
	mean := (xs[0] + xs[1] + xs[2] + xs[3]) / 4
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	got, err := Rate(ev, l)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.Mean-mean) > 1e-12 || math.Abs(got.StdErr-math.Sqrt(ss/3/4)) > 1e-12 || !(got.StdErr > 0) {
		t.Errorf("rating %+v, want mean %v", got, mean)
	}
	if _, err := Rate(TaskEval{Samples: []TaskSample{{Task: "nope"}}}, l); err == nil {
		t.Error("an unknown task was rated")
	}
}
