package pipeline

import "github.com/instructgo/instructgo/train"

// Report is report.json: the headline numbers of every stage.
type Report struct {
	Pretrain struct {
		ValLoss     float64 `json:"val_loss"`
		UnigramLoss float64 `json:"unigram_val_loss"`
		TaskScore   float64 `json:"task_score"`
		// Rating is the labeler's mean 1–7 Likert rating of the responses.
		Rating  train.Rating `json:"rating"`
		Seconds float64      `json:"seconds"`
	} `json:"pretrain"`
	SFT struct {
		TaskScore float64            `json:"task_score"`
		PerTask   map[string]float64 `json:"per_task"`
		// HabitRate is the share of held-out responses that open with the
		// demonstration writers' habit (tasks.HabitPrefix).
		HabitRate float64      `json:"habit_rate"`
		Rating    train.Rating `json:"rating"`
		BestStep  int          `json:"best_step"`
		Seconds   float64      `json:"seconds"`
	} `json:"sft"`
	RM struct {
		Accuracy        float64  `json:"accuracy"`
		TruthAccuracy   *float64 `json:"truth_accuracy,omitempty"`
		LabelerAgrement float64  `json:"labeler_vs_labeler"`
		Pairs           int      `json:"n_pairs"`
		CentredMean     float64  `json:"demonstrations_mean_reward"`
		Seconds         float64  `json:"seconds"`
		// BestOfN is the reward model measured on the SFT policy's own
		// samples of the held-out prompts: what PPO has to work with.
		BestOfN *train.BestOfN `json:"best_of_n_on_sft_samples,omitempty"`
		// SFTSamples describes the rankings of SFT samples the reward
		// model trained on beside rm.jsonl (absent: none).
		SFTSamples *train.LabelStats `json:"sft_sample_rankings,omitempty"`
	} `json:"rm"`
	PPO struct {
		TaskScore    float64            `json:"task_score"`
		PerTask      map[string]float64 `json:"per_task"`
		WinRateVsSFT float64            `json:"win_rate_vs_sft"`
		// WinRateStdErr is the standard error of WinRateVsSFT over the
		// held-out prompts, and ScoreGainStdErr that of the task score's
		// gain over SFT (paired by prompt): how far the numbers would move
		// on another draw of held-out prompts.
		WinRateStdErr   float64 `json:"win_rate_stderr"`
		ScoreGainStdErr float64 `json:"task_score_gain_stderr"`
		// WinRateByTask is the win rate on each task's held-out prompts.
		WinRateByTask map[string]float64 `json:"win_rate_by_task"`
		HabitRate     float64            `json:"habit_rate"`
		// WinRateSFTHabit is the win rate on the prompts where SFT's
		// response opens with the habit, WinRateElsewhere on the others
		// (each absent when it has no prompts): where PPO's preference
		// comes from.
		WinRateSFTHabit  *float64 `json:"win_rate_where_sft_has_habit,omitempty"`
		WinRateElsewhere *float64 `json:"win_rate_elsewhere,omitempty"`
		KLToSFT          float64  `json:"kl_to_sft"`
		PtxLoss          float64  `json:"ptx_loss"`
		FirstScore       float64  `json:"first_rm_score"`
		LastScore        float64  `json:"last_rm_score"`
		// FirstTaskScore and LastTaskScore are the rollouts' ground-truth
		// task score at the first iteration and over the last quarter.
		FirstTaskScore *float64 `json:"first_rollout_task_score,omitempty"`
		LastTaskScore  *float64 `json:"last_rollout_task_score,omitempty"`
		Seconds        float64  `json:"seconds"`
	} `json:"ppo"`
	// DPO is the DPO stage's own numbers when it ran: its implicit
	// reward's held-out accuracy, on the reward model's held-out rankings.
	DPO struct {
		Accuracy      float64  `json:"accuracy"`
		TruthAccuracy *float64 `json:"truth_accuracy,omitempty"`
		Pairs         int      `json:"n_pairs"`
		Steps         int      `json:"steps"`
		Seconds       float64  `json:"seconds"`
	} `json:"dpo"`
	// GRPO, RLOO and RS are those stages' summaries when they ran.
	GRPO *train.GroupSummary `json:"grpo,omitempty"`
	RLOO *train.GroupSummary `json:"rloo,omitempty"`
	RS   *train.RSSummary    `json:"rs,omitempty"`
	// Rounds are the iterated rounds' policies, round 1 first (absent
	// with one round).
	Rounds []RoundResult `json:"rounds,omitempty"`
	// Methods compares the policies of every method the pipeline ran, all
	// measured the same way, in the order they ran.
	Methods    []MethodResult `json:"methods"`
	SFTPtxLoss float64        `json:"sft_ptx_loss"`
	EvalN      int            `json:"eval_n"`
	Seconds    float64        `json:"seconds"`
	Backend    string         `json:"backend"`
	// evals are the evaluations behind the numbers, by model
	// ("pretrained", "sft" and each method's name), for the sizes
	// comparison (sizes.go) to compare across runs.
	evals map[string]train.TaskEval
}

// MethodResult is one method's policy on the held-out prompts.
type MethodResult struct {
	Name      string             `json:"name"`
	TaskScore float64            `json:"task_score"`
	PerTask   map[string]float64 `json:"per_task"`
	// WinRateVsSFT is the labeler's expected preference for the policy's
	// response over SFT's (ties half), with its standard error over the
	// prompts; ScoreGainStdErr is that of TaskScore − SFT's, paired by
	// prompt.
	WinRateVsSFT    float64            `json:"win_rate_vs_sft"`
	WinRateStdErr   float64            `json:"win_rate_stderr"`
	ScoreGainStdErr float64            `json:"task_score_gain_stderr"`
	WinRateByTask   map[string]float64 `json:"win_rate_by_task"`
	HabitRate       float64            `json:"habit_rate"`
	// Rating is the labeler's mean 1–7 Likert rating of the responses.
	Rating train.Rating `json:"rating"`
	// KLToSFT is measured on the policy's own samples of the held-out
	// prompts (train.MeasureKL), the same way for every method.
	KLToSFT train.KLEstimate `json:"kl_to_sft"`
	// PtxLoss is the held-out pretraining loss (the alignment tax is it
	// minus SFT's).
	PtxLoss float64 `json:"ptx_loss"`
	// Seconds is the method's stage's wall time (stage_seconds.json).
	Seconds float64 `json:"seconds"`
}
