//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// The contract's host transfers, shared by both builds; each build has its
// own upload and download (through the pinned staging ring on a GPU, a
// plain copy in the emulator), called once the arguments are checked
// and no error is recorded.

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
