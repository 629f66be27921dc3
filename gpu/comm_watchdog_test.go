package gpu

import (
	"bufio"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// blockingComm is a fake Comm of rank of size whose collectives return at
// once, except the block-th (counting from 1), which never returns.
type blockingComm struct {
	rank, size int
	n, block   int
	release    chan struct{}
}

func newBlocking(rank, size, block int) *blockingComm {
	return &blockingComm{rank: rank, size: size, block: block, release: make(chan struct{})}
}

func (c *blockingComm) collective() error {
	if c.n++; c.n == c.block {
		<-c.release
	}
	return nil
}

func (c *blockingComm) Rank() int                              { return c.rank }
func (c *blockingComm) Size() int                              { return c.size }
func (c *blockingComm) AllReduceSum(*Tensor) error             { return c.collective() }
func (c *blockingComm) Broadcast(*Tensor, int) error           { return c.collective() }
func (c *blockingComm) Barrier() error                         { return c.collective() }
func (c *blockingComm) AllGather([]float64) ([]float64, error) { return nil, c.collective() }
func (c *blockingComm) Close() error {
	close(c.release)
	return nil
}

// watch wraps c with a watchdog of timeout whose hangs go to the returned
// channel.
func watch(t *testing.T, c Comm, timeout time.Duration, p *Pulse) (*Watchdog, <-chan Hang) {
	t.Helper()
	hangs := make(chan Hang, 1)
	w, err := Watched(c, WatchOptions{Timeout: timeout, Pulse: p, OnHang: func(h Hang) { hangs <- h }})
	if err != nil {
		t.Fatal(err)
	}
	wd, ok := w.(*Watchdog)
	if !ok {
		t.Fatalf("Watched returned a %T", w)
	}
	t.Cleanup(func() { wd.Close() })
	return wd, hangs
}

// waitHang returns the watchdog's Hang and how long after start it came;
// it fails the test when none comes within limit.
func waitHang(t *testing.T, hangs <-chan Hang, start time.Time, limit time.Duration) (Hang, time.Duration) {
	t.Helper()
	select {
	case h := <-hangs:
		return h, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("the watchdog did not fire within %v", limit)
		return Hang{}, 0
	}
}

// A collective that does not return fires the watchdog after the timeout
// (not before), with the collective, its number and the wait; without
// heartbeats it cannot name a rank and says so.
func TestWatchdogFiresOnBlockedCollective(t *testing.T) {
	const timeout = time.Second
	w, hangs := watch(t, newBlocking(1, 2, 4), timeout, nil)
	for i := 0; i < 3; i++ {
		if err := w.Barrier(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	go w.AllGather([]float64{1})
	h, took := waitHang(t, hangs, start, 5*time.Second)
	if took < timeout || took > timeout+timeout/2 {
		t.Errorf("fired %v after the collective began, want just after %v", took, timeout)
	}
	if h.Op != "all-gather" || h.Seq != 4 || h.Rank != 1 || h.Waited <= timeout || h.Suspects != nil {
		t.Errorf("hang %+v", h)
	}
	if msg := h.Error(); !strings.Contains(msg, "all-gather #4") || !strings.Contains(msg, "unknown") {
		t.Errorf("message %q", msg)
	}
}

// Collectives that return, however many and however long the run, do not
// fire it; nor does time spent outside the collectives.
func TestWatchdogQuietWhileCollectivesReturn(t *testing.T) {
	const timeout = 100 * time.Millisecond
	w, hangs := watch(t, newBlocking(0, 2, -1), timeout, nil)
	x := &Tensor{}
	end := time.Now().Add(5 * timeout)
	for time.Now().Before(end) {
		w.AllReduceSum(x)
		w.Broadcast(x, 0)
		time.Sleep(timeout / 2)
	}
	time.Sleep(2 * timeout)
	select {
	case h := <-hangs:
		t.Fatalf("fired: %v", h)
	default:
	}
	if w.seq < 10 {
		t.Errorf("%d collectives counted", w.seq)
	}
}

// Watched is off at timeout 0 and at world size 1, and refuses a negative
// timeout.
func TestWatchedOff(t *testing.T) {
	c := newBlocking(0, 2, -1)
	if w, err := Watched(c, WatchOptions{}); err != nil || w != Comm(c) {
		t.Errorf("timeout 0: %T %v", w, err)
	}
	if w, err := Watched(Single{}, WatchOptions{Timeout: time.Second}); err != nil || w != Comm(Single{}) {
		t.Errorf("one rank: %T %v", w, err)
	}
	if _, err := Watched(c, WatchOptions{Timeout: -time.Second}); err == nil {
		t.Error("a negative timeout: no error")
	}
}

// servePulses starts rank 0's heartbeat server and returns it with the
// other ranks' connections to it.
func servePulses(t *testing.T, size int) []*Pulse {
	t.Helper()
	p0, err := ServePulses("127.0.0.1:0", 0, size)
	if err != nil {
		t.Fatal(err)
	}
	ps := []*Pulse{p0}
	for r := 1; r < size; r++ {
		p, err := DialPulse(p0.Addr(), r, size, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.Close()
		}
	})
	return ps
}

// beatUntil posts p's heartbeat with seq every interval until stop closes.
func beatUntil(p *Pulse, seq int64, interval time.Duration, stop <-chan struct{}) {
	for {
		if _, err := p.Beat(seq, false); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
	}
}

// Three ranks; rank 2 posts heartbeats, then stops (as a SIGSTOPped
// process does) before its 3rd collective. Ranks 0 and 1 wait in that
// collective: both fire after the timeout and name rank 2 alone.
func TestWatchdogNamesTheStoppedRank(t *testing.T) {
	const timeout = 600 * time.Millisecond
	ps := servePulses(t, 3)
	stop := make(chan struct{})
	go beatUntil(ps[2], 2, 20*time.Millisecond, stop)
	var hangs []<-chan Hang
	var ws []*Watchdog
	for r := 0; r < 2; r++ {
		w, h := watch(t, newBlocking(r, 3, 3), timeout, ps[r])
		ws, hangs = append(ws, w), append(hangs, h)
	}
	for _, w := range ws {
		w.Barrier()
		w.Barrier()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	start := time.Now()
	for _, w := range ws {
		go w.AllReduceSum(&Tensor{})
	}
	for r, hc := range hangs {
		h, took := waitHang(t, hc, start, 5*time.Second)
		if took < timeout || took > timeout+time.Second {
			t.Errorf("rank %d fired %v after the collective began, want just after %v", r, took, timeout)
		}
		if !slices.Equal(h.Suspects, []int{2}) || h.Op != "all-reduce" || h.Seq != 3 {
			t.Errorf("rank %d: %+v", r, h)
		}
		if msg := h.Error(); !strings.Contains(msg, "rank 2 has sent no heartbeat") {
			t.Errorf("rank %d: %q", r, msg)
		}
	}
}

// Rank 2 keeps its heartbeat but never reaches collective 3 (deadlocked
// outside the collectives): rank 1 fires after the timeout and names it
// as alive but behind.
func TestWatchdogNamesTheLaggingRank(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ps := servePulses(t, 3)
	stop := make(chan struct{})
	defer close(stop)
	go beatUntil(ps[2], 2, 20*time.Millisecond, stop)
	go beatUntil(ps[0], 3, 20*time.Millisecond, stop)
	w, hangs := watch(t, newBlocking(1, 3, 3), timeout, ps[1])
	w.Barrier()
	w.Barrier()
	start := time.Now()
	go w.Barrier()
	h, took := waitHang(t, hangs, start, 5*time.Second)
	if took < timeout {
		t.Errorf("fired %v after the collective began, before the timeout %v", took, timeout)
	}
	if !slices.Equal(h.Suspects, []int{2}) || !strings.Contains(h.Error(), "rank 2 is alive but has not reached collective #3") {
		t.Errorf("%+v: %v", h, h.Error())
	}
}

// A peer whose heartbeat stops fires the watchdog even while this rank is
// outside any collective (it may wait elsewhere, e.g. on a device stream
// behind an asynchronous collective).
func TestWatchdogFiresOnSilentPeerOutsideCollectives(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ps := servePulses(t, 2)
	stop := make(chan struct{})
	go beatUntil(ps[1], 0, 20*time.Millisecond, stop)
	_, hangs := watch(t, newBlocking(0, 2, -1), timeout, ps[0])
	time.Sleep(150 * time.Millisecond)
	close(stop)
	start := time.Now()
	h, took := waitHang(t, hangs, start, 5*time.Second)
	if took < timeout-50*time.Millisecond || h.Op != "" || !slices.Equal(h.Suspects, []int{1}) {
		t.Errorf("after %v: %+v", took, h)
	}
}

// The server (rank 0's process) stops answering: rank 1, waiting in a
// collective, names rank 0. A server that closes (rank 0 ended) is no
// hang: rank 1 outside a collective stays quiet.
func TestWatchdogServerSilentOrGone(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // answer the first heartbeat, then stop, as a stopped process
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var beat [14]byte
		if _, err := io.ReadFull(c, beat[:]); err != nil {
			return
		}
		w := bufio.NewWriter(c)
		w.WriteByte(storeOK)
		writeBlob(w, make([]byte, 2*beatBytes))
		w.Flush()
		io.Copy(io.Discard, c)
	}()
	p, err := DialPulse(ln.Addr().String(), 1, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w, hangs := watch(t, newBlocking(1, 2, 1), timeout, p)
	start := time.Now()
	go w.AllGather(nil)
	h, _ := waitHang(t, hangs, start, 5*time.Second)
	if !slices.Equal(h.Suspects, []int{0}) || !strings.Contains(h.Error(), "rank 0 serves the heartbeats and has not answered") {
		t.Errorf("%+v: %v", h, h.Error())
	}

	ps := servePulses(t, 2)
	_, quiet := watch(t, newBlocking(1, 2, -1), timeout, ps[1])
	time.Sleep(100 * time.Millisecond)
	ps[0].Close()
	time.Sleep(3 * timeout)
	select {
	case h := <-quiet:
		t.Fatalf("fired after rank 0's server closed: %v", h)
	default:
	}
}

// A rank that was itself stopped (a gap between the watchdog's checks)
// restarts its clocks when continued: a collective that began before the
// gap fires only a timeout after it, and a peer's heartbeat silence counts
// from it too. Without the gap the same times fire a timeout after the
// collective began.
func TestWatchdogThaw(t *testing.T) {
	const timeout = 10 * time.Second
	t0 := time.Now()
	// firstFire checks every tick from..to and returns when w fired.
	firstFire := func(w *Watchdog, from, to time.Time) (time.Duration, Hang) {
		for at := from; !at.After(to); at = at.Add(w.tick) {
			if h, ok := w.tickAt(at); ok {
				return at.Sub(t0), h
			}
		}
		return -1, Hang{}
	}
	for _, stopped := range []bool{false, true} {
		w := newWatchdog(newBlocking(1, 2, -1), WatchOptions{Timeout: timeout, Pulse: &Pulse{}})
		w.op, w.seq, w.since = "barrier", 5, t0
		w.beats, w.beatsAt = []PeerBeat{{Rank: 0, Heard: true, Seq: 4}, {Rank: 1, Heard: true, Seq: 5, Busy: true}}, t0
		resume, want := t0, timeout
		if stopped { // checks for 2 s, then none for a minute
			if at, h := firstFire(w, t0, t0.Add(2*time.Second)); at >= 0 {
				t.Fatalf("fired %v into the collective: %v", at, h)
			}
			resume, want = t0.Add(time.Minute), time.Minute+timeout
		}
		at, h := firstFire(w, resume, resume.Add(2*timeout))
		if at <= want || at > want+w.tick || h.Op != "barrier" || !slices.Equal(h.Suspects, []int{0}) {
			t.Errorf("stopped %v: fired %v after the collective began (want just after %v): %+v", stopped, at, want, h)
		}
		if said := strings.Contains(h.Error(), "this rank itself was stopped for 58s"); said != stopped || stopped != (h.Stopped == 58*time.Second) {
			t.Errorf("stopped %v: %v (stopped %v)", stopped, h.Error(), h.Stopped)
		}
	}
}

// A rank whose process ended (its heartbeat connection closed) is named
// as ended, not as alive and behind, although its last count lags; and
// a rank whose heartbeat server (rank 0's) has ended names rank 0.
func TestWatchdogNamesTheEndedRank(t *testing.T) {
	const timeout = 400 * time.Millisecond
	ps := servePulses(t, 3)
	stop := make(chan struct{})
	defer close(stop)
	go beatUntil(ps[1], 1, 20*time.Millisecond, stop)
	ps[2].Close() // rank 2 ends after its first heartbeat (count 0)
	w, hangs := watch(t, newBlocking(0, 3, 1), timeout, ps[0])
	start := time.Now()
	go w.Barrier()
	h, _ := waitHang(t, hangs, start, 5*time.Second)
	if !slices.Equal(h.Suspects, []int{2}) || !strings.Contains(h.Error(), "rank 2's heartbeat connection closed (its process ended)") {
		t.Errorf("%+v: %v", h, h.Error())
	}

	ps = servePulses(t, 2)
	w, hangs = watch(t, newBlocking(1, 2, 1), timeout, ps[1])
	ps[0].Close() // rank 0 ends, and its server with it
	start = time.Now()
	go w.AllReduceSum(&Tensor{})
	h, _ = waitHang(t, hangs, start, 5*time.Second)
	if !slices.Equal(h.Suspects, []int{0}) || !strings.Contains(h.Error(), "rank 0 has ended") {
		t.Errorf("%+v: %v", h, h.Error())
	}
}
