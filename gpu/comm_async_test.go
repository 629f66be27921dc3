package gpu

import (
	"strings"
	"testing"
	"time"
)

// asyncComm is a fake asynchronous Comm: its started all-reduces complete
// when their channel is closed.
type asyncComm struct {
	blockingComm
	done []chan struct{}
}

type fakePending struct{ done chan struct{} }

func (p fakePending) Test() (bool, error) {
	select {
	case <-p.done:
		return true, nil
	default:
		return false, nil
	}
}

func (p fakePending) Wait() error { <-p.done; return nil }

func (c *asyncComm) StartAllReduceSum(*Tensor) (Pending, error) {
	ch := make(chan struct{})
	c.done = append(c.done, ch)
	return fakePending{ch}, nil
}

// A comm without StartAllReduceSum runs the blocking all-reduce and hands
// back a completed request; Overlaps sees through the watchdog.
func TestStartAllReduceFallsBack(t *testing.T) {
	c := newBlocking(0, 2, -1)
	p, err := StartAllReduceSum(c, &Tensor{})
	if err != nil || c.n != 1 {
		t.Fatalf("blocking comm: %v, %d collectives", err, c.n)
	}
	if done, err := p.Test(); !done || err != nil || p.Wait() != nil {
		t.Fatalf("the fallback's request is not complete: %v %v", done, err)
	}
	w, _ := watch(t, c, time.Second, nil)
	if Overlaps(c) || Overlaps(w) || Overlaps(Single{}) {
		t.Error("a blocking comm overlaps")
	}
	if _, err := StartAllReduceSum(w, &Tensor{}); err != nil || c.n != 2 || w.seq != 1 {
		t.Errorf("through the watchdog: %v, %d collectives, %d counted", err, c.n, w.seq)
	}
	a := &asyncComm{blockingComm: *newBlocking(0, 2, -1)}
	wa, _ := watch(t, a, time.Second, nil)
	if !Overlaps(a) || !Overlaps(wa) {
		t.Error("an asynchronous comm does not overlap")
	}
}

// A started all-reduce that never completes fires the watchdog after the
// timeout, naming the oldest request; requests waited for in time do not.
func TestWatchdogTimesStartedAllReduce(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a := &asyncComm{blockingComm: *newBlocking(1, 2, -1)}
	w, hangs := watch(t, a, timeout, nil)
	for i := 0; i < 3; i++ {
		p, err := w.StartAllReduceSum(&Tensor{})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(timeout / 3)
		close(a.done[i])
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(timeout)
	select {
	case h := <-hangs:
		t.Fatalf("fired while requests completed: %v", h)
	default:
	}
	if err := w.Barrier(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stuck, _ := w.StartAllReduceSum(&Tensor{}) // #5, never completes
	next, _ := w.StartAllReduceSum(&Tensor{})  // #6
	close(a.done[4])
	if done, _ := next.Test(); !done {
		t.Fatal("request #6 did not complete")
	}
	go stuck.Wait()
	h, took := waitHang(t, hangs, start, 5*time.Second)
	if took < timeout || took > 2*timeout {
		t.Errorf("fired %v after the request started, want just after %v", took, timeout)
	}
	if h.Op != "started all-reduce" || h.Seq != 5 || h.Rank != 1 || h.Waited <= timeout {
		t.Errorf("hang %+v", h)
	}
	if msg := h.Error(); !strings.Contains(msg, "started all-reduce #5") {
		t.Errorf("message %q", msg)
	}
	close(a.done[3])
}
