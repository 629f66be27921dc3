//go:build mpi

package mpi

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// pulseMsg is the size of rank 0's broadcast of where it serves the
// heartbeats: its host name, port and addresses, one per line.
const pulseMsg = 4096

// OpenPulse gives the ranks the heartbeats of gpu.Watched, which MPI has no
// side channel for: rank 0 serves them on a free port of every interface
// and broadcasts its host name, the port and its addresses; every rank
// connects (through the loopback when it runs on rank 0's host). Every
// rank must call it. It fails on a rank that cannot connect, which then
// runs without heartbeats; the others are not held up.
func (c *Comm) OpenPulse() (*gpu.Pulse, error) {
	var (
		p   *gpu.Pulse
		err error
		msg = make([]byte, pulseMsg)
	)
	if c.rank == 0 {
		if p, err = gpu.ServePulses(":0", 0, c.size); err == nil {
			copy(msg, pulseWhere(p.Addr()))
		}
	}
	if berr := c.BroadcastBytes(msg, 0); berr != nil {
		if p != nil {
			p.Close()
		}
		return nil, fmt.Errorf("mpi heartbeats: %w", berr)
	}
	if c.rank == 0 {
		return p, err
	}
	lines := strings.Split(string(bytes.TrimRight(msg, "\x00")), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("mpi heartbeats: rank 0 serves none")
	}
	host, port, addrs := lines[0], lines[1], lines[2:]
	if me, _ := os.Hostname(); me == host {
		addrs = []string{"127.0.0.1"}
	}
	for _, a := range append(addrs, host) {
		if a == "" {
			continue
		}
		if p, err = gpu.DialPulse(net.JoinHostPort(a, port), c.rank, c.size, 2*time.Second); err == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("mpi heartbeats: rank %d reaches rank 0 (%s, port %s) at none of %q: %w", c.rank, host, port, addrs, err)
}

// pulseWhere is rank 0's message: host name, port, then its addresses
// other than loopback and link-local ones.
func pulseWhere(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	host, _ := os.Hostname()
	lines := []string{host, port}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || ipnet.IP.IsLinkLocalUnicast() {
			continue
		}
		lines = append(lines, ipnet.IP.String())
	}
	msg := strings.Join(lines, "\n")
	for len(msg) > pulseMsg {
		lines = lines[:len(lines)-1]
		msg = strings.Join(lines, "\n")
	}
	return msg
}
