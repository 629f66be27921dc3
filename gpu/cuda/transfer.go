//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// The contract's host transfers, shared by both builds. Each build has its
// own upload and download (through the pinned staging ring on a GPU, a
// plain copy in the emulator), called once the shared Checker has accepted
// the arguments and no error is recorded.

// Upload implements gpu.Backend. Values for a bf16 tensor are rounded on
// the host (gpu.BF16Bits) and uploaded as bf16.
func (b *Backend) Upload(t *gpu.Tensor, src []float32) error {
	if t != nil && t.DType() == gpu.BF16 {
		if err := b.checker.Upload(t, gpu.Float32, len(src)); err != nil {
			return err
		}
		bits := make([]uint16, len(src))
		for i, x := range src {
			bits[i] = gpu.BF16Bits(x)
		}
		return b.checkedUpload(t, gpu.BF16, unsafe.Pointer(unsafe.SliceData(bits)), len(bits))
	}
	return b.checkedUpload(t, gpu.Float32, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

// UploadInt32 implements gpu.Backend.
func (b *Backend) UploadInt32(t *gpu.Tensor, src []int32) error {
	return b.checkedUpload(t, gpu.Int32, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

// Download implements gpu.Backend. A bf16 tensor is downloaded as bf16 and
// widened on the host.
func (b *Backend) Download(dst []float32, t *gpu.Tensor) error {
	if t != nil && t.DType() == gpu.BF16 {
		if err := b.checker.Download(t, gpu.Float32, len(dst)); err != nil {
			return err
		}
		bits := make([]uint16, len(dst))
		if err := b.checkedDownload(t, gpu.BF16, unsafe.Pointer(unsafe.SliceData(bits)), len(bits)); err != nil {
			return err
		}
		for i, x := range bits {
			dst[i] = gpu.BF16Float(x)
		}
		return nil
	}
	return b.checkedDownload(t, gpu.Float32, unsafe.Pointer(unsafe.SliceData(dst)), len(dst))
}

// DownloadInt32 implements gpu.Backend.
func (b *Backend) DownloadInt32(dst []int32, t *gpu.Tensor) error {
	return b.checkedDownload(t, gpu.Int32, unsafe.Pointer(unsafe.SliceData(dst)), len(dst))
}

// checkedUpload checks an upload's arguments and the sticky error, then
// hands it to the build's upload.
func (b *Backend) checkedUpload(t *gpu.Tensor, d gpu.DType, src unsafe.Pointer, n int) error {
	if err := b.checker.Upload(t, d, n); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	if b.capturing {
		b.fail(errCapturing("upload"))
		return b.err
	}
	return b.upload("upload", t, d, src, n)
}

// checkedDownload checks a download's arguments and the sticky error,
// then hands it to the build's download.
func (b *Backend) checkedDownload(t *gpu.Tensor, d gpu.DType, dst unsafe.Pointer, n int) error {
	if err := b.checker.Download(t, d, n); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	if b.capturing {
		b.fail(errCapturing("download"))
		return b.err
	}
	return b.download("download", t, d, dst, n)
}

// HostSyncs implements gpu.Device: the Sync and Download calls so far, each
// of which waits for the stream to drain.
func (b *Backend) HostSyncs() int64 { return b.syncs }

var _ gpu.Device = (*Backend)(nil)

// errCapturing is the error of a transfer or sync during a graph capture,
// which would read or write memory at capture time rather than at replay.
func errCapturing(op string) error {
	return fmt.Errorf("cuda %s: not allowed while a graph is being captured", op)
}
