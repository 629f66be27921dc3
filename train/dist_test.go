package train

import (
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// twoRanks is rank 0 of a made-up pair whose other rank reports what
// other makes of this rank's values.
type twoRanks struct {
	gpu.Single
	other func([]float64) []float64
}

func (twoRanks) Size() int { return 2 }
func (c twoRanks) AllGather(local []float64) ([]float64, error) {
	return append(append([]float64(nil), local...), c.other(local)...), nil
}

// The replica check passes equal guard values and names a rank whose
// weight norm differs in the last bit.
func TestCheckReplicas(t *testing.T) {
	res := stepResult{finite: []namedValue{{"the model gradient norm", 1.5}, {"the model weight norm", 0.1234567}}}
	same := &loop{loopSpec: loopSpec{name: "pretrain", unit: "step"}, comm: twoRanks{other: func(x []float64) []float64 { return x }}}
	if err := same.checkReplicas(3, res); err != nil {
		t.Fatal(err)
	}
	off := &loop{loopSpec: loopSpec{name: "pretrain", unit: "step"}, comm: twoRanks{other: func(x []float64) []float64 {
		y := append([]float64(nil), x...)
		y[1] = 0.12345670000000001 // the next float64 after 0.1234567
		return y
	}}}
	err := off.checkReplicas(3, res)
	if err == nil || !strings.Contains(err.Error(), "replicas diverged: the model weight norm") || !strings.Contains(err.Error(), "rank 1") {
		t.Fatalf("error %v, want the weight norm and rank 1 named", err)
	}
}
