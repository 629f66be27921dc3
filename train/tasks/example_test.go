package tasks_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/instructgo/instructgo/train/tasks"
)

func ExampleScoreRecord() {
	for _, r := range []string{"elppa", "elppa\n", "elpa", "elppa ok", "apple"} {
		s, _ := tasks.ScoreRecord("reverse", "elppa", r)
		fmt.Printf("%-11q %.3f\n", r, s)
	}
	// Output:
	// "elppa"     1.000
	// "elppa\n"   1.000
	// "elpa"      0.800
	// "elppa ok"  0.625
	// "apple"     0.200
}

func ExampleLabeler_PreferProbability() {
	l := tasks.DefaultLabeler()
	for _, pair := range [][2]string{{"elppa", "elpa"}, {"elppa", "elppa\n"}, {"elppa", "apple"}} {
		p, _ := l.PreferProbability("reverse", "elppa", pair[0], pair[1])
		fmt.Printf("%q over %q: %.2f\n", pair[0], pair[1], p)
	}
	// Output:
	// "elppa" over "elpa": 0.84
	// "elppa" over "elppa\n": 0.69
	// "elppa" over "apple": 1.00
}

func ExampleTask_Generate() {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, t := range tasks.Tasks() {
		inst := t.Generate(rng)
		fmt.Printf("%-7s %-36q → %q\n", t.Name(), inst.Prompt, inst.Answer)
	}
}
