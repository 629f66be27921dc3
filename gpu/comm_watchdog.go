package gpu

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// A rank that hangs (deadlocked, stuck in a kernel, stopped, its machine
// paused) would leave every other rank blocked in a collective for ever:
// a blocked MPI or NCCL call cannot be cancelled. Watched wraps any Comm
// with a watchdog that ends the process instead, so the launcher (mpirun,
// instructgo launch) ends the others. It fires when
//
//   - a collective of this rank has not returned within the timeout, or
//   - another rank's heartbeat has been silent for longer than the
//     timeout (its process is stopped or its machine gone; this also
//     catches a hang this rank waits for outside a collective, such as a
//     stream synchronisation after an asynchronous NCCL all-reduce).
//
// The heartbeats (comm_pulse.go) name the ranks to blame: the one whose
// heartbeat stopped, else those that have not reached the collective. A
// rank that was itself stopped and continued (mpirun sends SIGCONT
// before SIGTERM) does not blame the others for the time it was stopped:
// its clocks restart when it notices the gap.

// Hang is what a watchdog saw when it fired.
type Hang struct {
	Rank, Size int
	// Op is the collective this rank waits in ("all-reduce", "broadcast",
	// "barrier", "all-gather"); "" when it fired outside one.
	Op string
	// Seq is the collective's number on this rank (the first is 1); the
	// number of collectives started when Op is "".
	Seq int64
	// Waited is how long Op has waited (0 outside one).
	Waited, Timeout time.Duration
	// Suspects are the ranks named, Why what each was seen doing.
	Suspects []int
	Why      []string
	// Beats is the last heartbeat of every rank; nil without a side
	// channel.
	Beats []PeerBeat
	// Stopped is how long this rank was itself stopped (its last thaw),
	// 0 if it never was: a rank continued after a stop is likely the one
	// that hung, being ended by its launcher.
	Stopped time.Duration
}

func (h Hang) Error() string {
	var b strings.Builder
	if h.Op != "" {
		fmt.Fprintf(&b, "rank %d of %d: %s #%d has not returned after %v (--dist-timeout %v)", h.Rank, h.Size, h.Op, h.Seq, h.Waited.Round(time.Millisecond), h.Timeout)
	} else {
		fmt.Fprintf(&b, "rank %d of %d (after %d collectives): a rank has been silent longer than --dist-timeout %v", h.Rank, h.Size, h.Seq, h.Timeout)
	}
	if h.Stopped > 0 {
		fmt.Fprintf(&b, "; this rank itself was stopped for %v before (SIGSTOP or a paused machine)", h.Stopped.Round(time.Millisecond))
	}
	switch {
	case len(h.Suspects) > 0:
		b.WriteString(": ")
		b.WriteString(strings.Join(h.Why, "; "))
	case h.Beats == nil:
		b.WriteString("; which rank hangs is unknown (no heartbeats)")
	default:
		b.WriteString("; every rank's heartbeat is current and every rank has reached this collective: the communication engine itself is stuck")
	}
	return b.String()
}

// WatchOptions configure Watched.
type WatchOptions struct {
	// Timeout is the longest a collective may wait, and a rank's
	// heartbeat be silent. 0 turns the watchdog off.
	Timeout time.Duration
	// Pulse is this rank's heartbeat connection; nil runs without one
	// (the watchdog fires, but cannot name the rank that hangs).
	Pulse *Pulse
	// OnHang is called once, from the watchdog's goroutine, when it
	// fires, and must end the process (log, then os.Exit). nil prints the
	// Hang to stderr and exits with status 1.
	OnHang func(Hang)
}

// Watchdog is a Comm whose collectives are timed and whose rank posts
// heartbeats. The hot path takes a mutex twice per collective and does no
// I/O.
type Watchdog struct {
	Comm
	opt         WatchOptions
	tick, every time.Duration

	mu    sync.Mutex
	seq   int64     // collectives started
	op    string    // the blocking one under way, "" when none
	since time.Time // when it started
	// started are the asynchronous all-reduces started and not yet
	// waited for (comm_async.go), by number: when each started.
	started map[int64]time.Time
	// The heartbeats' last answer, when it came, and since when the
	// heartbeat under way has waited for its answer (zero: none waits).
	beats   []PeerBeat
	beatsAt time.Time
	askedAt time.Time
	closed  bool // the heartbeats ended: silence is no hang
	fired   bool
	// lastTick is the watchdog's last check, and thawed the end of the
	// last gap between checks long enough to say that this process itself
	// was stopped (thawed): the clocks restart there, since what it saw
	// before the gap says nothing of the others after it.
	lastTick, thawed time.Time
	stopped          time.Duration // the last thaw's gap

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Watched returns c with a watchdog (c itself when the timeout is 0 or
// c has one rank). Close stops it, closes the Pulse and then c.
func Watched(c Comm, opt WatchOptions) (Comm, error) {
	if opt.Timeout < 0 {
		return nil, fmt.Errorf("watchdog: a negative timeout %v", opt.Timeout)
	}
	if opt.Timeout == 0 || c.Size() < 2 {
		if opt.Pulse != nil {
			opt.Pulse.Close()
		}
		return c, nil
	}
	w := newWatchdog(c, opt)
	w.wg.Add(1)
	go w.watch()
	if opt.Pulse != nil {
		w.wg.Add(1)
		go w.pulse()
	}
	return w, nil
}

func newWatchdog(c Comm, opt WatchOptions) *Watchdog {
	if opt.OnHang == nil {
		opt.OnHang = func(h Hang) {
			fmt.Fprintln(os.Stderr, "instructgo: "+h.Error())
			os.Exit(1)
		}
	}
	return &Watchdog{Comm: c, opt: opt, stop: make(chan struct{}),
		tick:  clampDur(opt.Timeout/10, 10*time.Millisecond, time.Second),
		every: clampDur(opt.Timeout/5, 20*time.Millisecond, 5*time.Second)}
}

func clampDur(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }

// begin marks the start of collective op and returns its end.
func (w *Watchdog) begin(op string) func() {
	w.mu.Lock()
	w.seq++
	w.op, w.since = op, time.Now()
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.op = ""
		w.mu.Unlock()
	}
}

func (w *Watchdog) AllReduceSum(t *Tensor) error {
	defer w.begin("all-reduce")()
	return w.Comm.AllReduceSum(t)
}

func (w *Watchdog) Broadcast(t *Tensor, root int) error {
	defer w.begin("broadcast")()
	return w.Comm.Broadcast(t, root)
}

func (w *Watchdog) Barrier() error {
	defer w.begin("barrier")()
	return w.Comm.Barrier()
}

func (w *Watchdog) AllGather(local []float64) ([]float64, error) {
	defer w.begin("all-gather")()
	return w.Comm.AllGather(local)
}

// Close stops the watchdog and its heartbeats (closing the Pulse ends a
// heartbeat that waits), then closes the Comm; once.
func (w *Watchdog) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		var errs []error
		if w.opt.Pulse != nil {
			errs = append(errs, w.opt.Pulse.Close())
		}
		w.wg.Wait()
		w.closeErr = errors.Join(append(errs, w.Comm.Close())...)
	})
	return w.closeErr
}

// watch checks every tick whether to fire.
func (w *Watchdog) watch() {
	defer w.wg.Done()
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			if h, ok := w.tickAt(now); ok {
				w.opt.OnHang(h)
				return
			}
		}
	}
}

// pulse posts a heartbeat every w.every and keeps the answer. While a
// heartbeat waits for its answer, askedAt says since when; a Beat error
// ends the heartbeats (the server's process ended, or Close).
func (w *Watchdog) pulse() {
	defer w.wg.Done()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.mu.Lock()
		seq, busy := w.seq, w.op != "" || len(w.started) > 0
		w.askedAt = time.Now()
		w.mu.Unlock()
		beats, err := w.opt.Pulse.Beat(seq, busy)
		w.mu.Lock()
		w.askedAt = time.Time{}
		if err != nil {
			w.closed = true
		} else {
			w.beats, w.beatsAt = beats, time.Now()
		}
		w.mu.Unlock()
		if err != nil {
			return
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// thawGap is the gap between two checks that says this process was
// stopped (SIGSTOP then SIGCONT, a paused machine) rather than slow.
func (w *Watchdog) thawGap() time.Duration { return max(5*w.tick, w.opt.Timeout/4) }

// tickAt is the check at now: it notes a thaw, then decides whether the
// watchdog fires, and what it reports.
func (w *Watchdog) tickAt(now time.Time) (Hang, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lastTick.IsZero() && now.Sub(w.lastTick) > w.thawGap() {
		w.thawed, w.stopped = now, now.Sub(w.lastTick)
	}
	w.lastTick = now
	if w.fired {
		return Hang{}, false
	}
	h := Hang{Rank: w.Rank(), Size: w.Size(), Op: w.op, Seq: w.seq, Timeout: w.opt.Timeout, Stopped: w.stopped}
	if h.Op != "" {
		h.Waited = w.sinceThaw(now, w.since)
	}
	if seq, since, ok := w.oldestStarted(); ok && (h.Op == "" || since.Before(w.since)) {
		h.Op, h.Seq, h.Waited = "started all-reduce", seq, w.sinceThaw(now, since)
	}
	silent := w.silences(now)
	fire := h.Waited > w.opt.Timeout
	for _, d := range silent {
		fire = fire || d > w.opt.Timeout
	}
	if !fire {
		return Hang{}, false
	}
	w.fired = true
	if w.opt.Pulse != nil {
		h.Beats = append([]PeerBeat(nil), w.beats...)
		h.Suspects, h.Why = w.blame(now, silent)
	}
	return h, true
}

// sinceThaw is the time from t, or from the last thaw if later, to now.
func (w *Watchdog) sinceThaw(now, t time.Time) time.Duration {
	if w.thawed.After(t) {
		t = w.thawed
	}
	return now.Sub(t)
}

// stale is how long a heartbeat may be silent before the rank is named.
func (w *Watchdog) stale() time.Duration { return 3 * w.every }

// serverSilent is how long the server (rank 0) has not answered, when
// that is longer than stale.
func (w *Watchdog) serverSilent(now time.Time) (time.Duration, bool) {
	if w.askedAt.IsZero() || w.Rank() == 0 {
		return 0, false
	}
	d := w.sinceThaw(now, w.askedAt)
	return d, d > w.stale()
}

// silences is, for each other rank whose heartbeats have stopped for
// longer than stale, how long: when the server (rank 0) does not answer,
// the others' are unknown and only rank 0 is silent.
func (w *Watchdog) silences(now time.Time) map[int]time.Duration {
	if w.opt.Pulse == nil || w.closed {
		return nil
	}
	if d, ok := w.serverSilent(now); ok {
		return map[int]time.Duration{0: d}
	}
	out := map[int]time.Duration{}
	for _, b := range w.beats {
		if b.Rank != w.Rank() && b.Heard && !b.Gone {
			d := b.Silent + now.Sub(w.beatsAt)
			if !w.thawed.IsZero() {
				d = min(d, now.Sub(w.thawed))
			}
			if d > w.stale() {
				out[b.Rank] = d
			}
		}
	}
	return out
}

// blame names the ranks that hang: those whose heartbeats stopped, else
// rank 0 when its server has ended, else those whose process ended, else
// those that have not reached this rank's collective, else those never
// heard from.
func (w *Watchdog) blame(now time.Time, silent map[int]time.Duration) (ranks []int, why []string) {
	for r := range w.Size() {
		if d, ok := silent[r]; ok {
			what := "has sent no heartbeat"
			if _, ok := w.serverSilent(now); ok {
				what = "serves the heartbeats and has not answered"
			}
			ranks = append(ranks, r)
			why = append(why, fmt.Sprintf("rank %d %s for %v (stopped, or its machine paused or unreachable)", r, what, d.Round(time.Millisecond)))
		}
	}
	if len(ranks) > 0 {
		return ranks, why
	}
	if w.closed && w.Rank() != 0 {
		return []int{0}, []string{"rank 0 has ended (the heartbeat server it ran closed; the other ranks' last heartbeats are older)"}
	}
	for _, b := range w.beats {
		if b.Rank != w.Rank() && b.Gone {
			ranks = append(ranks, b.Rank)
			why = append(why, fmt.Sprintf("rank %d's heartbeat connection closed (its process ended)", b.Rank))
		}
	}
	if len(ranks) > 0 {
		return ranks, why
	}
	for _, b := range w.beats {
		if b.Rank == w.Rank() || !b.Heard {
			continue
		}
		if b.Seq < w.seq {
			ranks = append(ranks, b.Rank)
			where := fmt.Sprintf("has finished collective #%d and not started the next", b.Seq)
			if b.Busy {
				where = fmt.Sprintf("is still in collective #%d", b.Seq)
			}
			why = append(why, fmt.Sprintf("rank %d is alive but has not reached collective #%d: it %s (deadlocked, or working longer than the timeout)", b.Rank, w.seq, where))
		}
	}
	if len(ranks) > 0 {
		return ranks, why
	}
	for _, b := range w.beats {
		if b.Rank != w.Rank() && !b.Heard {
			ranks = append(ranks, b.Rank)
			why = append(why, fmt.Sprintf("rank %d never connected to the heartbeats", b.Rank))
		}
	}
	return ranks, why
}

// StartAllReduceSum starts an all-reduce of t on the Comm (blocking when
// it cannot start one, see gpu.StartAllReduceSum) and times the request
// from now until its Wait returns, or its Test reports it complete.
func (w *Watchdog) StartAllReduceSum(t *Tensor) (Pending, error) {
	a, ok := w.Comm.(AsyncAllReducer)
	if !ok {
		if err := w.AllReduceSum(t); err != nil {
			return nil, err
		}
		return Completed{}, nil
	}
	w.mu.Lock()
	w.seq++
	seq := w.seq
	if w.started == nil {
		w.started = map[int64]time.Time{}
	}
	w.started[seq] = time.Now()
	w.mu.Unlock()
	p, err := a.StartAllReduceSum(t)
	if err != nil {
		w.finish(seq)
		return nil, err
	}
	return &watchedPending{Pending: p, w: w, seq: seq}, nil
}

// finish ends the timing of started request seq.
func (w *Watchdog) finish(seq int64) {
	w.mu.Lock()
	delete(w.started, seq)
	w.mu.Unlock()
}

// oldestStarted is the started request that has waited longest.
func (w *Watchdog) oldestStarted() (seq int64, since time.Time, ok bool) {
	for s, t := range w.started {
		if !ok || s < seq {
			seq, since, ok = s, t, true
		}
	}
	return seq, since, ok
}

// watchedPending is a request the watchdog times.
type watchedPending struct {
	Pending
	w   *Watchdog
	seq int64
}

func (p *watchedPending) Test() (bool, error) {
	done, err := p.Pending.Test()
	if done || err != nil {
		p.w.finish(p.seq)
	}
	return done, err
}

func (p *watchedPending) Wait() error {
	defer p.w.finish(p.seq)
	return p.Pending.Wait()
}
