package gpu

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// Heartbeats are the watchdog's side channel (comm_watchdog.go): every
// rank's watchdog posts, every few seconds from a goroutine, how many
// collectives its rank has started and whether it is inside one, to the
// rank 0's store server, which answers with every rank's last post and
// its age. A collective itself sends nothing, so the hot path has no
// network round trip. A rank that is stopped (SIGSTOP, a paused machine)
// posts nothing, and its age grows; a rank that is deadlocked outside the
// collectives keeps posting, and its count lags.

// beatRecord is the server's record of one rank's last heartbeat.
type beatRecord struct {
	heard, gone, busy bool
	seq               int64
	at                time.Time
}

// PeerBeat is what the heartbeats say of one rank.
type PeerBeat struct {
	Rank int
	// Heard is false until the rank's first heartbeat arrived.
	Heard bool
	// Gone is set when the rank's heartbeat connection closed: its
	// process ended.
	Gone bool
	// Seq is the number of collectives the rank had started at its last
	// heartbeat, and Busy whether it was inside the last of them.
	Seq  int64
	Busy bool
	// Silent is how long ago its last heartbeat reached the store.
	Silent time.Duration
}

// beatBytes is one rank's record in the server's reply.
const beatBytes = 3 + 8 + 8

// beat reads one heartbeat (rank, sequence number, busy) from r, records
// it and returns the encoded records of every rank.
func (s *storeServer) beat(r *bufio.Reader) (rank int, reply []byte, err error) {
	var msg [4 + 8 + 1]byte
	if _, err := io.ReadFull(r, msg[:]); err != nil {
		return -1, nil, err
	}
	rank = int(binary.LittleEndian.Uint32(msg[:4]))
	if rank >= s.size {
		return -1, nil, fmt.Errorf("store: a heartbeat from rank %d of %d", rank, s.size)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beats[rank] = beatRecord{heard: true, busy: msg[12] != 0, seq: int64(binary.LittleEndian.Uint64(msg[4:12])), at: now}
	reply = make([]byte, beatBytes*s.size)
	for i, b := range s.beats {
		out := reply[i*beatBytes:]
		out[0], out[1], out[2] = flag(b.heard), flag(b.gone), flag(b.busy)
		binary.LittleEndian.PutUint64(out[3:], uint64(b.seq))
		if b.heard {
			binary.LittleEndian.PutUint64(out[11:], uint64(now.Sub(b.at)))
		}
	}
	return rank, reply, nil
}

func flag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// Pulse is one rank's heartbeat connection to the store server. It is
// used by one goroutine (the watchdog's).
type Pulse struct {
	conn       net.Conn
	r          *bufio.Reader
	rank, size int
	srv        *storeServer // the server, on the rank that serves it
}

// DialPulse connects rank of size to the store served at addr and posts a
// first heartbeat, retrying until timeout as the ranks start in any order.
func DialPulse(addr string, rank, size int, timeout time.Duration) (*Pulse, error) {
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("heartbeats: rank %d of %d", rank, size)
	}
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			// The first heartbeat says the rank is there, so that its
			// silence counts from now even if it never beats again.
			p := &Pulse{conn: conn, r: bufio.NewReader(conn), rank: rank, size: size}
			conn.SetDeadline(time.Now().Add(timeout))
			_, err = p.Beat(0, false)
			conn.SetDeadline(time.Time{})
			if err == nil {
				return p, nil
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("heartbeats: rank %d reaches no store at %s within %v: %w", rank, addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ServePulses starts a store server at addr (port 0: a free one) for
// size ranks' heartbeats and connects rank to it, for engines that have
// no store of their own (MPI): the server lives until the Pulse closes.
// Its address, for the other ranks' DialPulse, is Addr.
func ServePulses(addr string, rank, size int) (*Pulse, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("heartbeats: listen at %s: %w", addr, err)
	}
	srv := newStoreServer(ln, size)
	p, err := DialPulse(ln.Addr().String(), rank, size, 5*time.Second)
	if err != nil {
		srv.close()
		return nil, err
	}
	p.srv = srv
	return p, nil
}

// Addr is the address of the server this rank serves ("" when it serves
// none).
func (p *Pulse) Addr() string {
	if p.srv == nil {
		return ""
	}
	return p.srv.ln.Addr().String()
}

// Beat posts this rank's sequence number and whether it is in a
// collective, and returns every rank's last heartbeat. It waits for the
// server as long as it takes (the watchdog measures how long); an error
// means the connection is over: the server's process ended, or Close.
func (p *Pulse) Beat(seq int64, busy bool) ([]PeerBeat, error) {
	var msg [1 + 4 + 8 + 1]byte
	msg[0] = storeBeat
	binary.LittleEndian.PutUint32(msg[1:], uint32(p.rank))
	binary.LittleEndian.PutUint64(msg[5:], uint64(seq))
	msg[13] = flag(busy)
	if _, err := p.conn.Write(msg[:]); err != nil {
		return nil, fmt.Errorf("heartbeats: %w", err)
	}
	kind, err := p.r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("heartbeats: %w", err)
	}
	body, err := readBlob(p.r)
	if err != nil {
		return nil, fmt.Errorf("heartbeats: %w", err)
	}
	if kind != storeOK || len(body) != beatBytes*p.size {
		return nil, fmt.Errorf("heartbeats: a reply of %d bytes for %d ranks", len(body), p.size)
	}
	beats := make([]PeerBeat, p.size)
	for i := range beats {
		in := body[i*beatBytes:]
		beats[i] = PeerBeat{Rank: i, Heard: in[0] != 0, Gone: in[1] != 0, Busy: in[2] != 0,
			Seq: int64(binary.LittleEndian.Uint64(in[3:])), Silent: time.Duration(binary.LittleEndian.Uint64(in[11:]))}
	}
	return beats, nil
}

// Close ends the connection and, on the rank that serves them, the server.
func (p *Pulse) Close() error {
	err := p.conn.Close()
	if p.srv != nil {
		p.srv.close()
	}
	return err
}
