package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/instructgo/instructgo/internal/atomicfile"
)

// StageClockFile records, in a pipeline run's directory, the wall time of
// each stage summed over every invocation that worked on it (the time of an
// interrupted stage counts too), so that report.json's total is the run's
// and not that of the last invocation, which may have found every stage
// done. The evaluation, which every invocation repeats, counts once: its
// latest time.
const StageClockFile = "stage_seconds.json"

const stageEvaluation = "evaluation"

// stageClock times the pipeline's stages into StageClockFile.
type stageClock struct {
	path    string // "" for a clock that is not saved
	seconds map[string]float64
	stage   string // the stage being timed, "" for none
	since   time.Time
}

func openStageClock(path string) (*stageClock, error) {
	c := &stageClock{path: path, seconds: map[string]float64{}}
	if _, err := readJSONIfExists(path, &c.seconds); err != nil {
		return nil, err
	}
	return c, nil
}

// readJSONIfExists decodes the JSON file at path into v and reports
// whether there was one; a missing file is no error.
func readJSONIfExists(path string, v any) (bool, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// enter ends the interval of the stage being timed and starts name's.
func (c *stageClock) enter(name string) error {
	err := c.leave()
	if name == stageEvaluation {
		c.seconds[name] = 0
	}
	c.stage, c.since = name, time.Now()
	return err
}

// leave ends the interval of the stage being timed, if any, and saves.
func (c *stageClock) leave() error {
	if c.stage == "" {
		return nil
	}
	c.seconds[c.stage] += time.Since(c.since).Seconds()
	c.stage = ""
	if c.path == "" { // a clock that is not saved: a data-parallel rank other than 0
		return nil
	}
	return atomicfile.WriteJSON(c.path, c.seconds)
}

// total is the recorded time of all stages.
func (c *stageClock) total() float64 {
	var t float64
	for _, s := range c.seconds {
		t += s
	}
	return t
}
