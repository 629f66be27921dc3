package train

import (
	"fmt"
	"math"
)

// The group methods' advantages: each prompt's G responses are sampled
// together (episodes g·G … g·G+G−1 of a rollout) and each response's
// advantage is its reward against the others of its group, so no value
// model is needed. The math is per episode, on the host, in float64.

// groupStdEps keeps GRPO's normalisation finite for a group whose rewards
// barely differ (TRL adds 1e-4 to the standard deviation too).
const groupStdEps = 1e-4

// grpoAdvantages returns GRPO's advantages (Shao et al. 2024): the reward
// minus the group's mean, divided by the group's standard deviation (the
// unbiased one, as TRL's GRPOTrainer) plus groupStdEps; with dr (Dr. GRPO,
// Liu et al. 2025) the reward minus the mean, without the division. A group
// whose rewards are all equal gets advantages 0: it teaches nothing.
func grpoAdvantages(rewards []float64, G int, dr bool) ([]float64, error) {
	if G < 2 || len(rewards)%G != 0 {
		return nil, fmt.Errorf("%d rewards in groups of %d", len(rewards), G)
	}
	adv := make([]float64, len(rewards))
	for g := 0; g < len(rewards); g += G {
		rs := rewards[g : g+G]
		mean, sd := meanStd(rs)
		for i, r := range rs {
			adv[g+i] = r - mean
			if !dr {
				adv[g+i] /= sd + groupStdEps
			}
		}
	}
	return adv, nil
}

// rlooAdvantages returns RLOO's advantages (Ahmadian et al. 2024): each
// reward minus the mean of the other K−1 rewards of its group, the
// leave-one-out baseline.
func rlooAdvantages(rewards []float64, K int) ([]float64, error) {
	if K < 2 || len(rewards)%K != 0 {
		return nil, fmt.Errorf("%d rewards in groups of %d", len(rewards), K)
	}
	adv := make([]float64, len(rewards))
	for g := 0; g < len(rewards); g += K {
		sum := 0.0
		for _, r := range rewards[g : g+K] {
			sum += r
		}
		for i, r := range rewards[g : g+K] {
			adv[g+i] = r - (sum-r)/float64(K-1)
		}
	}
	return adv, nil
}

// meanStd returns the mean and the unbiased standard deviation of xs (at
// least two values).
func meanStd(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

// flatGroups counts the groups whose rewards are all equal (advantage 0
// for every member under any of the methods).
func flatGroups(rewards []float64, G int) int {
	n := 0
	for g := 0; g+G <= len(rewards); g += G {
		flat := true
		for _, r := range rewards[g+1 : g+G] {
			flat = flat && r == rewards[g]
		}
		if flat {
			n++
		}
	}
	return n
}
