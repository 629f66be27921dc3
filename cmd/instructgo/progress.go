package main

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/train"
)

// barProgress draws a training loop's progress as a bar on a terminal:
// step count, the loop's status (loss, tokens/s) and the time left. Log
// lines written meanwhile go through Writer, which lifts the bar off the
// line, writes the log line, and puts the bar back underneath.
type barProgress struct {
	mu   sync.Mutex
	out  io.Writer
	bar  *progressbar.ProgressBar
	name string
}

func newBarProgress(out io.Writer) *barProgress { return &barProgress{out: out} }

// Start implements train.Progress.
func (p *barProgress) Start(name string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name = name
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.out),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(24),
		progressbar.OptionClearOnFinish(),
	)
	p.bar.Set(done)
}

// Step implements train.Progress.
func (p *barProgress) Step(step int, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		return
	}
	p.bar.Describe(p.name + "  " + status)
	p.bar.Set(step)
}

// Finish implements train.Progress.
func (p *barProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// Writer returns a writer for log lines that keeps the bar intact.
func (p *barProgress) Writer(w io.Writer) io.Writer { return barLogWriter{p: p, w: w} }

type barLogWriter struct {
	p *barProgress
	w io.Writer
}

func (l barLogWriter) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	if l.p.bar == nil {
		return l.w.Write(b)
	}
	l.p.bar.Clear()
	n, err := l.w.Write(b)
	l.p.bar.RenderBlank()
	return n, err
}

const progressKey = "progress"

// progress is the train.Progress of this command line: a bar when logs go
// to a terminal in console format, nothing otherwise (the log lines carry
// the same numbers).
func progress(c *cli.Context) train.Progress {
	if p, ok := c.App.Metadata[progressKey].(*barProgress); ok {
		return p
	}
	return train.NoProgress{}
}
