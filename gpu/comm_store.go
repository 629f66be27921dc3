package gpu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"time"
)

// Store is the rendezvous of a torchrun-style launch: a small key-value
// store over TCP that rank 0 serves at MASTER_ADDR:MASTER_PORT and every
// rank (rank 0 too) uses as a client. It carries what the ranks must
// agree on outside the device collectives: the NCCL unique id, barriers,
// all-gathers of small host values, and the watchdog's heartbeats
// (comm_pulse.go). A value is set once and removed once
// every rank has read it. The server notices a rank whose connection
// drops (a dead process) and fails every wait with an error naming it.
type Store struct {
	mu         sync.Mutex
	conn       net.Conn
	r          *bufio.Reader
	rank, size int
	seq        int // collectives so far, which name their keys
	srv        *storeServer
}

// Store requests (one byte) and replies.
const (
	storeHello = 'H' // rank (uint32)
	storeSet   = 'S' // key, value → storeOK
	storeGet   = 'G' // key → storeOK value, or storeErr message
	storeBeat  = 'B' // rank (uint32), beat → storeOK every rank's beats (comm_pulse.go)
	storeOK    = 'K'
	storeErr   = 'E'
)

// OpenStore joins the store at addr ("host:port") as rank of size: rank 0
// listens there first. Connecting retries until timeout, as the ranks
// start in any order.
func OpenStore(addr string, rank, size int, timeout time.Duration) (*Store, error) {
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("store: rank %d of %d", rank, size)
	}
	s := &Store{rank: rank, size: size}
	if rank == 0 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("store: rank 0 listens at %s: %w", addr, err)
		}
		s.srv = newStoreServer(ln, size)
		addr = ln.Addr().String()
	}
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			s.conn, s.r = conn, bufio.NewReader(conn)
			break
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("store: rank %d reaches no rank 0 at %s within %v: %w", rank, addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var hello [5]byte
	hello[0] = storeHello
	binary.LittleEndian.PutUint32(hello[1:], uint32(rank))
	if _, err := s.conn.Write(hello[:]); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// Addr is the address rank 0 serves at (its chosen port when it asked for
// port 0); "" on other ranks.
func (s *Store) Addr() string {
	if s.srv == nil {
		return ""
	}
	return s.srv.ln.Addr().String()
}

// Set stores val under key.
func (s *Store) Set(key string, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set(key, val)
}

// Get waits for key and returns its value.
func (s *Store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(key)
}

func (s *Store) set(key string, val []byte) error {
	w := bufio.NewWriter(s.conn)
	w.WriteByte(storeSet)
	writeBlob(w, []byte(key))
	writeBlob(w, val)
	if err := w.Flush(); err != nil {
		return fmt.Errorf("store set %s: %w", key, err)
	}
	_, err := s.reply("set " + key)
	return err
}

func (s *Store) get(key string) ([]byte, error) {
	w := bufio.NewWriter(s.conn)
	w.WriteByte(storeGet)
	writeBlob(w, []byte(key))
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("store get %s: %w", key, err)
	}
	return s.reply("get " + key)
}

func (s *Store) reply(what string) ([]byte, error) {
	kind, err := s.r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("store %s: rank 0's store is gone: %w", what, err)
	}
	val, err := readBlob(s.r)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", what, err)
	}
	if kind == storeErr {
		return nil, fmt.Errorf("store %s: %s", what, val)
	}
	return val, nil
}

// AllGather is Comm's AllGather through the store.
func (s *Store) AllGather(local []float64) ([]float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	prefix := "gather/" + strconv.Itoa(s.seq) + "/"
	buf := make([]byte, 8*len(local))
	for i, v := range local {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
	}
	if err := s.set(prefix+strconv.Itoa(s.rank), buf); err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(local)*s.size)
	for r := 0; r < s.size; r++ {
		val, err := s.get(prefix + strconv.Itoa(r))
		if err != nil {
			return nil, err
		}
		if len(val) != len(buf) {
			return nil, fmt.Errorf("store all-gather: rank %d gave %d values, rank %d %d", r, len(val)/8, s.rank, len(local))
		}
		for i := 0; i < len(val); i += 8 {
			out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(val[i:])))
		}
	}
	return out, nil
}

// Barrier returns when every rank has called it.
func (s *Store) Barrier() error {
	_, err := s.AllGather(nil)
	return err
}

// Close leaves the store; rank 0 stops serving it.
func (s *Store) Close() error {
	var err error
	if s.conn != nil {
		err = s.conn.Close()
	}
	if s.srv != nil {
		s.srv.close()
	}
	return err
}

func writeBlob(w *bufio.Writer, b []byte) {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
	w.Write(n[:])
	w.Write(b)
}

// maxBlob bounds a key or value, so a stray connection cannot make the
// server allocate without limit.
const maxBlob = 1 << 20

func readBlob(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > maxBlob {
		return nil, fmt.Errorf("store: a message of %d bytes (at most %d)", size, maxBlob)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return b, err
}

// storeServer is rank 0's side: the values, how many ranks have read each,
// which ranks have left, and every rank's last heartbeat.
type storeServer struct {
	ln    net.Listener
	size  int
	mu    sync.Mutex
	cond  *sync.Cond
	vals  map[string][]byte
	reads map[string]int
	left  []int // ranks whose connection dropped, in order
	done  bool
	conns []net.Conn
	beats []beatRecord // by rank
}

func newStoreServer(ln net.Listener, size int) *storeServer {
	s := &storeServer{ln: ln, size: size, vals: map[string][]byte{}, reads: map[string]int{}, beats: make([]beatRecord, size)}
	s.cond = sync.NewCond(&s.mu)
	go s.accept()
	return s
}

func (s *storeServer) accept() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.mu.Unlock()
		go s.serve(conn)
	}
}

func (s *storeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.done = true
	for _, c := range s.conns {
		c.Close()
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// serve answers one rank's requests until its connection drops; a rank
// that said hello and drops has left the run.
func (s *storeServer) serve(conn net.Conn) {
	defer conn.Close()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	rank, beating := -1, -1
	defer func() {
		s.mu.Lock()
		if rank >= 0 {
			s.left = append(s.left, rank)
			s.cond.Broadcast()
		}
		if beating >= 0 {
			s.beats[beating].gone = true
		}
		s.mu.Unlock()
	}()
	for {
		op, err := r.ReadByte()
		if err != nil {
			return
		}
		switch op {
		case storeHello:
			var n [4]byte
			if _, err := io.ReadFull(r, n[:]); err != nil {
				return
			}
			rank = int(binary.LittleEndian.Uint32(n[:]))
			continue
		case storeSet:
			key, err1 := readBlob(r)
			val, err2 := readBlob(r)
			if err := errors.Join(err1, err2); err != nil {
				return
			}
			s.mu.Lock()
			s.vals[string(key)] = val
			s.cond.Broadcast()
			s.mu.Unlock()
			w.WriteByte(storeOK)
			writeBlob(w, nil)
		case storeGet:
			key, err := readBlob(r)
			if err != nil {
				return
			}
			val, err := s.wait(string(key))
			if err != nil {
				w.WriteByte(storeErr)
				writeBlob(w, []byte(err.Error()))
			} else {
				w.WriteByte(storeOK)
				writeBlob(w, val)
			}
		case storeBeat:
			from, reply, err := s.beat(r)
			if err != nil {
				return
			}
			beating = from
			w.WriteByte(storeOK)
			writeBlob(w, reply)
		default:
			return
		}
		if w.Flush() != nil {
			return
		}
	}
}

// wait returns key's value once it is set, and forgets it once every rank
// has read it; it fails when a rank has left or the server closes.
func (s *storeServer) wait(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if val, ok := s.vals[key]; ok {
			if s.reads[key]++; s.reads[key] == s.size {
				delete(s.vals, key)
				delete(s.reads, key)
			}
			return val, nil
		}
		if len(s.left) > 0 {
			return nil, fmt.Errorf("rank %d left the run", s.left[0])
		}
		if s.done {
			return nil, fmt.Errorf("the store closed")
		}
		s.cond.Wait()
	}
}
