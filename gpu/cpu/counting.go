package cpu

import "github.com/instructgo/instructgo/gpu"

// Counting is the cpu backend posing as a gpu.Device: callers take the
// paths they take on a GPU (reading results back rarely), and HostSyncs
// counts the reads back (Download, DownloadInt32, Sync), so that tests on a
// machine without a GPU hold callers to a device's discipline. Results are
// the cpu backend's.
type Counting struct {
	*Backend
	syncs int64
}

// NewCounting returns a Counting backend on threads threads (see New).
func NewCounting(threads int) *Counting { return &Counting{Backend: New(threads)} }

// HostSyncs implements gpu.Device.
func (c *Counting) HostSyncs() int64 { return c.syncs }

// Sync implements gpu.Backend.
func (c *Counting) Sync() error {
	c.syncs++
	return c.Backend.Sync()
}

// Download implements gpu.Backend.
func (c *Counting) Download(dst []float32, t *gpu.Tensor) error {
	c.syncs++
	return c.Backend.Download(dst, t)
}

// DownloadInt32 implements gpu.Backend.
func (c *Counting) DownloadInt32(dst []int32, t *gpu.Tensor) error {
	c.syncs++
	return c.Backend.DownloadInt32(dst, t)
}

var _ gpu.Device = (*Counting)(nil)
