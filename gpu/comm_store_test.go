package gpu

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// openStores opens a store of size ranks on a free local port.
func openStores(t *testing.T, size int) []*Store {
	t.Helper()
	s0, err := OpenStore("127.0.0.1:0", 0, size, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stores := []*Store{s0}
	for r := 1; r < size; r++ {
		s, err := OpenStore(s0.Addr(), r, size, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	t.Cleanup(func() {
		for _, s := range stores {
			s.Close()
		}
	})
	return stores
}

// onRanks runs f as every rank at once and returns their errors.
func onRanks(stores []*Store, f func(r int, s *Store) error) []error {
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for r, s := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = f(r, s) }()
	}
	wg.Wait()
	return errs
}

// Three ranks all-gather random values many times (each key forgotten
// once read, the next gathers reusing nothing), set and get a blob, and
// pass barriers.
func TestStoreCollectives(t *testing.T) {
	stores := openStores(t, 3)
	vals := func(r, round int) []float64 {
		rng := rand.New(rand.NewPCG(uint64(r), uint64(round)))
		return []float64{rng.NormFloat64(), rng.NormFloat64()}
	}
	errs := onRanks(stores, func(r int, s *Store) error {
		for round := 0; round < 50; round++ {
			all, err := s.AllGather(vals(r, round))
			if err != nil {
				return err
			}
			for q := 0; q < 3; q++ {
				if want := vals(q, round); all[2*q] != want[0] || all[2*q+1] != want[1] {
					t.Errorf("rank %d round %d: rank %d's values %v, want %v", r, round, q, all[2*q:2*q+2], want)
				}
			}
			if err := s.Barrier(); err != nil {
				return err
			}
		}
		if r == 0 {
			return s.Set("nccl-id", []byte("0123456789"))
		}
		id, err := s.Get("nccl-id")
		if err == nil && string(id) != "0123456789" {
			t.Errorf("rank %d: id %q", r, id)
		}
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	srv := stores[0].srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.vals) != 1 { // only the id, which rank 0 did not read
		t.Errorf("the server still holds %d values after every rank read them", len(srv.vals))
	}
}

// A rank that dies (its connection drops) fails the others' waits with an
// error naming it, instead of leaving them blocked.
func TestStoreNamesADeadRank(t *testing.T) {
	stores := openStores(t, 3)
	errs := onRanks(stores, func(r int, s *Store) error {
		if r == 2 {
			return s.conn.Close()
		}
		_, err := s.AllGather([]float64{1})
		return err
	})
	for r := 0; r < 2; r++ {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "rank 2 left") {
			t.Errorf("rank %d: %v, want rank 2 named", r, errs[r])
		}
	}
}
