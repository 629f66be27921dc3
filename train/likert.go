package train

import (
	"fmt"

	"github.com/instructgo/instructgo/train/tasks"
)

// Rating is the simulated labeler's mean 1–7 Likert rating of a model's
// responses (tasks.Labeler.ExpectedRating of each) with its standard error
// over the prompts, as the paper reports its labelers' ratings.
type Rating struct {
	Mean   float64 `json:"mean"`
	StdErr float64 `json:"stderr"`
}

// Rate rates every sample of e with l.
func Rate(e TaskEval, l tasks.Labeler) (Rating, error) {
	if len(e.Samples) == 0 {
		return Rating{}, fmt.Errorf("rate: no samples")
	}
	rs := make([]float64, len(e.Samples))
	var r Rating
	for i, s := range e.Samples {
		v, err := l.ExpectedRating(s.Task, s.Answer, s.Response)
		if err != nil {
			return Rating{}, fmt.Errorf("rate sample %d: %w", i, err)
		}
		rs[i] = v
		r.Mean += v / float64(len(rs))
	}
	r.StdErr = stdErr(rs)
	return r, nil
}
