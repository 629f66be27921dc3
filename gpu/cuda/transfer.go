//go:build cuda

package cuda

import (
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// Allocation checks and the contract's host transfers, shared by both
// builds. Each build has its own upload and download (through the pinned
// staging ring on a GPU, a plain copy in the emulator), called once the
// arguments are checked and no error is recorded.

// allocElems checks an Alloc's dtype and shape and returns its element
// count.
func allocElems(dtype gpu.DType, shape []int) (int, error) {
	if dtype != gpu.Float32 && dtype != gpu.Int32 {
		return 0, fmt.Errorf("cuda alloc: unsupported dtype %v", dtype)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("cuda alloc: negative dimension in %v", shape)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > 1<<40 {
			return 0, fmt.Errorf("cuda alloc: shape %v is too large", shape)
		}
		n = int(lo)
	}
	return n, nil
}

// Upload implements gpu.Backend.
func (b *Backend) Upload(t *gpu.Tensor, src []float32) error {
	return b.checkedUpload(t, gpu.Float32, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

// UploadInt32 implements gpu.Backend.
func (b *Backend) UploadInt32(t *gpu.Tensor, src []int32) error {
	return b.checkedUpload(t, gpu.Int32, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

// Download implements gpu.Backend.
func (b *Backend) Download(dst []float32, t *gpu.Tensor) error {
	return b.checkedDownload(t, gpu.Float32, unsafe.Pointer(unsafe.SliceData(dst)), len(dst))
}

// DownloadInt32 implements gpu.Backend.
func (b *Backend) DownloadInt32(dst []int32, t *gpu.Tensor) error {
	return b.checkedDownload(t, gpu.Int32, unsafe.Pointer(unsafe.SliceData(dst)), len(dst))
}

// checkedUpload checks an upload's arguments and the sticky error, then
// hands it to the build's upload.
func (b *Backend) checkedUpload(t *gpu.Tensor, d gpu.DType, src unsafe.Pointer, n int) error {
	const op = "upload"
	if err := b.checker.Tensor(op, "tensor", t, d); err != nil {
		return err
	}
	if n != t.Len() {
		return fmt.Errorf("%s: %d values into %v", op, n, t)
	}
	if b.err != nil {
		return b.err
	}
	return b.upload(op, t, d, src, n)
}

// checkedDownload checks a download's arguments and the sticky error,
// then hands it to the build's download.
func (b *Backend) checkedDownload(t *gpu.Tensor, d gpu.DType, dst unsafe.Pointer, n int) error {
	const op = "download"
	if err := b.checker.Tensor(op, "tensor", t, d); err != nil {
		return err
	}
	if n != t.Len() {
		return fmt.Errorf("%s: %v into %d values", op, t, n)
	}
	if b.err != nil {
		return b.err
	}
	return b.download(op, t, d, dst, n)
}
