package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"

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
// the file sees complete records. A NaN or infinite number, which JSON
// cannot hold, is written as null.
func (m *Metrics) Write(rec any) error {
	line, err := json.Marshal(rec)
	var unsupported *json.UnsupportedValueError
	if errors.As(err, &unsupported) {
		line, err = json.Marshal(nonFiniteAsNull(reflect.ValueOf(rec)))
	}
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
func initialLM(c model.Config, init string, seed uint64, lo model.LoadOptions) ([]float32, error) {
	if init != "" {
		return model.LoadHostWith(init, c, lo)
	}
	return model.InitGPT2(c, seed), nil
}

// nonFiniteAsNull rebuilds a record as the JSON values encoding/json would
// write for it (struct fields by their json names, omitempty and embedded
// structs honoured), with every NaN or infinite float as nil.
func nonFiniteAsNull(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return nonFiniteAsNull(v.Elem())
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return v.Interface()
	case reflect.Struct:
		out := map[string]any{}
		addStructFields(out, v)
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = nonFiniteAsNull(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for it := v.MapRange(); it.Next(); {
			out[fmt.Sprint(it.Key().Interface())] = nonFiniteAsNull(it.Value())
		}
		return out
	}
	return v.Interface()
}

// addStructFields adds v's exported fields to out as encoding/json names
// them.
func addStructFields(out map[string]any, v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" && fv.Kind() == reflect.Struct {
			addStructFields(out, fv) // promoted, exported or not
			continue
		}
		if !f.IsExported() || (name == "-" && opts == "") {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(","+opts+",", ",omitempty,") && fv.IsZero() {
			continue
		}
		out[name] = nonFiniteAsNull(fv)
	}
}
