package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// LabelConfig controls LabelFromPolicy.
type LabelConfig struct {
	// KMin and KMax bound the responses per prompt: each prompt's K is
	// drawn uniformly in [KMin, KMax] (InstructGPT: 4 to 9).
	KMin, KMax int
	Seed       uint64
	// Sampling draws the responses; InstructGPT sampled at temperature 1.
	Sampling gpu.Sampling
	MaxNew   int // tokens per response
	// Resamples is how many extra rounds redraw the responses that are
	// empty or identical to an earlier response to the same prompt.
	Resamples int
	Labeler   tasks.Labeler
}

// DefaultLabel samples 4 to 9 responses per prompt at temperature 1, up to
// 32 tokens each, redraws duplicates up to 3 times, and ranks them with
// the default simulated labeler.
func DefaultLabel() LabelConfig {
	return LabelConfig{KMin: 4, KMax: 9, Seed: 1, Sampling: gpu.Sampling{Temperature: 1}, MaxNew: 32, Resamples: 3, Labeler: tasks.DefaultLabeler()}
}

// Validate reports settings LabelFromPolicy cannot use.
func (c LabelConfig) Validate() error {
	switch {
	case c.KMin < data.MinResponses || c.KMax > data.MaxResponses || c.KMin > c.KMax:
		return fmt.Errorf("responses per prompt %d..%d must lie within %d..%d", c.KMin, c.KMax, data.MinResponses, data.MaxResponses)
	case c.MaxNew < 1:
		return fmt.Errorf("max new tokens %d must be positive", c.MaxNew)
	case c.Resamples < 0:
		return fmt.Errorf("resamples %d must not be negative", c.Resamples)
	case !(c.Labeler.Noise >= 0) || !(c.Labeler.StyleWeight >= 0):
		return fmt.Errorf("labeler noise %g and style weight %g must not be negative", c.Labeler.Noise, c.Labeler.StyleWeight)
	}
	return c.Sampling.Validate()
}

// LabelStats describes a labelling run.
type LabelStats struct {
	Prompts     int `json:"prompts"`     // given
	Records     int `json:"records"`     // written
	Skipped     int `json:"skipped"`     // prompts left with fewer than 2 non-empty responses
	Responses   int `json:"responses"`   // in the records written
	Comparisons int `json:"comparisons"` // Σ C(K,2) over the records
	Generated   int `json:"generated"`   // responses sampled, redraws included
	Redrawn     int `json:"redrawn"`     // of which redraws of an empty or duplicate response
	// DuplicatesKept counts responses still identical to an earlier one
	// of the same prompt after the redraws; they stay (see LabelFromPolicy).
	DuplicatesKept int `json:"duplicates_kept"`
	// EmptyDropped counts responses still empty after the redraws; they
	// are left out of their record (the data format refuses empty ones).
	EmptyDropped int `json:"empty_dropped"`
	// MeanScore is the mean task score of the responses written.
	MeanScore float64 `json:"mean_score"`
	// Agreement is measured on the rankings written: with the noise-free
	// order and with a second, independent labeler.
	Agreement tasks.Agreement `json:"agreement"`
}

// LabelFromPolicy collects comparisons the way InstructGPT did, from model
// outputs: for each prompt (which must name a built-in task and carry its
// answer) it draws K in [KMin, KMax], samples K responses from the policy m
// and has the simulated labeler rank them. Every draw is seeded: the same
// model, prompts and config give the same records.
//
// Responses are decoded text with invalid UTF-8 replaced by U+FFFD (the
// JSONL file could not hold it otherwise). Identical responses carry no
// preference, so a response that is empty or
// equal to an earlier one of the same prompt is redrawn, up to Resamples
// rounds. After that an empty response is dropped (a prompt left with
// fewer than 2 responses is skipped) and duplicates are kept: the labeler
// gives them equal utility and orders them at random among themselves
// (Plackett–Luce with Gumbel noise; input order for a noise-free
// labeler), and the reward model's loss on such a pair has no net
// gradient (identical sequences score the same, so the two terms cancel),
// sampleResponses draws K (cfg.KMin..cfg.KMax, seeded) responses of m to
// each prompt, drawing again, up to cfg.Resamples rounds, the empty ones
// and the duplicates of a prompt's earlier ones; st counts the draws.
func sampleResponses(m *model.Model, tok tokenizer.Tokenizer, prompts []data.Prompt, cfg LabelConfig, st *LabelStats) ([][]string, error) {
	kRNG := rand.New(rand.NewPCG(cfg.Seed, 0x1abe1))
	resp := make([][]string, len(prompts))
	type slot struct{ p, k int }
	var pending []slot
	for i := range prompts {
		k := cfg.KMin + kRNG.IntN(cfg.KMax-cfg.KMin+1)
		resp[i] = make([]string, k)
		for j := 0; j < k; j++ {
			pending = append(pending, slot{i, j})
		}
	}
	for round := 0; round <= cfg.Resamples && len(pending) > 0; round++ {
		texts := make([]string, len(pending))
		for i, s := range pending {
			texts[i] = prompts[s.p].Prompt
		}
		out, _, err := GenerateText(m, tok, texts, EvalOptions{MaxNew: cfg.MaxNew, Sampling: cfg.Sampling, Seed: gpu.Mix64(cfg.Seed, uint64(round))})
		if err != nil {
			return nil, fmt.Errorf("sampling round %d: %w", round, err)
		}
		st.Generated += len(out)
		if round > 0 {
			st.Redrawn += len(out)
		}
		touched := map[int]bool{}
		for i, s := range pending {
			// JSON holds only valid UTF-8: a byte-level model's stray
			// bytes become U+FFFD here, so the labeler ranks the very text
			// the file will hold.
			resp[s.p][s.k] = strings.ToValidUTF8(out[i], "\uFFFD")
			touched[s.p] = true
		}
		pending = pending[:0]
		for p := range prompts {
			if !touched[p] {
				continue
			}
			for k, r := range resp[p] {
				if r == "" || indexOf(resp[p][:k], r) >= 0 {
					pending = append(pending, slot{p, k})
				}
			}
		}
	}
	return resp, nil
}

// so they only dilute their prompt's weight.
func LabelFromPolicy(m *model.Model, tok tokenizer.Tokenizer, prompts []data.Prompt, cfg LabelConfig) ([]tasks.Group, LabelStats, error) {
	st := LabelStats{Prompts: len(prompts)}
	if err := cfg.Validate(); err != nil {
		return nil, st, fmt.Errorf("label: %w", err)
	}
	for _, p := range prompts {
		if p.Task == "" {
			return nil, st, fmt.Errorf("label: prompt at %s has no \"task\": labelling needs the built-in tasks (%v)", p.Where(), tasks.Names())
		}
		if _, err := tasks.ByName(p.Task); err != nil {
			return nil, st, fmt.Errorf("label: prompt at %s: %w", p.Where(), err)
		}
		if p.Answer == "" {
			return nil, st, fmt.Errorf("label: prompt at %s has no \"answer\" for the labeler to judge by", p.Where())
		}
	}
	resp, err := sampleResponses(m, tok, prompts, cfg, &st)
	if err != nil {
		return nil, st, fmt.Errorf("label: %w", err)
	}
	rankRNG := rand.New(rand.NewPCG(cfg.Seed, 0x1abe2))
	groups := make([]tasks.Group, 0, len(prompts))
	var scoreSum float64
	for i, p := range prompts {
		var kept []string
		for k, r := range resp[i] {
			switch {
			case r == "":
				st.EmptyDropped++
				continue
			case indexOf(resp[i][:k], r) >= 0:
				st.DuplicatesKept++
			}
			kept = append(kept, r)
		}
		if len(kept) < data.MinResponses {
			st.Skipped++
			continue
		}
		ranking, err := cfg.Labeler.Rank(p.Task, p.Answer, kept, rankRNG)
		if err != nil {
			return nil, st, fmt.Errorf("label: prompt at %s: %w", p.Where(), err)
		}
		for _, r := range kept {
			s, err := tasks.ScoreRecord(p.Task, p.Answer, r)
			if err != nil {
				return nil, st, fmt.Errorf("label: prompt at %s: %w", p.Where(), err)
			}
			scoreSum += s
		}
		groups = append(groups, tasks.Group{Prompt: p.Prompt, Responses: kept, Ranking: ranking, Task: p.Task, Answer: p.Answer})
		st.Responses += len(kept)
		st.Comparisons += len(kept) * (len(kept) - 1) / 2
	}
	st.Records = len(groups)
	if st.Responses > 0 {
		st.MeanScore = scoreSum / float64(st.Responses)
	}
	if st.Agreement, err = cfg.Labeler.MeasureAgreement(groups, rand.New(rand.NewPCG(cfg.Seed, 0x1abe3))); err != nil {
		return nil, st, fmt.Errorf("label: %w", err)
	}
	return groups, st, nil
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// WriteComparisons writes ranked groups to path as rm.jsonl records
// ({"prompt", "responses", "ranking", "task", "answer"}), replacing the file
// atomically.
func WriteComparisons(path string, groups []tasks.Group) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return EncodeComparisons(w, groups) }); err != nil {
		return fmt.Errorf("write comparisons: %w", err)
	}
	return nil
}

// EncodeComparisons writes groups to w, one rm.jsonl record per line.
func EncodeComparisons(w io.Writer, groups []tasks.Group) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, g := range groups {
		if err := enc.Encode(g); err != nil {
			return err
		}
	}
	return nil
}

// LoadSampler loads the language model in dir (with base's precision and
// loading policy) to sample responses to prompts (LabelFromPolicy,
// GenerateText) in batches of batch rows: the
// model's own buffers hold the longest prompt (Prefill), the KV cache the
// rest of the context.
func LoadSampler(b gpu.Backend, dir string, tok tokenizer.Tokenizer, prompts []data.Prompt, batch int, base model.Options) (*model.Model, error) {
	c, err := model.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	longest := 1
	for _, p := range prompts {
		longest = max(longest, len(tokenizer.EncodeStart(tok, p.Prompt)))
	}
	base.MaxBatch, base.MaxSeq = batch, min(c.MaxSeqLen, longest+1)
	return model.Load(b, dir, base)
}
