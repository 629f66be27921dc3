package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/instructgo/instructgo/model"
)

// Files of a run directory besides the checkpoint's own (model.ConfigFile,
// model.WeightsFile), which sit at its top so the directory loads as a
// Hugging Face model.
const (
	RunConfigFile = "run_config.json" // the resolved configuration of the run
	MetricsFile   = "metrics.jsonl"   // one JSON object per logged step
	SummaryFile   = "summary.json"    // the run's final numbers
)

// Metrics appends one JSON object per line to a run's metrics.jsonl.
type Metrics struct {
	f *os.File
}

// OpenMetrics creates dir's metrics file, or with resume keeps the records
// up to step and appends after them.
func OpenMetrics(dir string, resume bool, step int) (*Metrics, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if resume {
		if err := truncateMetrics(dir, step); err != nil {
			return nil, err
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(dir, MetricsFile), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open metrics: %w", err)
	}
	return &Metrics{f: f}, nil
}

// Write appends one record. Each line is written whole, so a reader tailing
// the file sees complete records.
func (m *Metrics) Write(rec any) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := m.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Close flushes the file to disk and closes it.
func (m *Metrics) Close() error {
	if err := m.f.Sync(); err != nil {
		m.f.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	return m.f.Close()
}

// initialLM returns a language model's starting weights: the checkpoint in
// init when it is set, else GPT-2's initialisation of c drawn with seed.
func initialLM(c model.Config, init string, seed uint64) ([]float32, error) {
	if init != "" {
		return model.LoadHost(init, c)
	}
	return model.InitGPT2(c, seed), nil
}
