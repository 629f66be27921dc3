//go:build cuda

package cuda

import (
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// The contract's host transfers, shared by both builds; each build has its
// own upload and download (through the pinned staging ring on a GPU, a
// plain copy in the emulator).

// Upload implements gpu.Backend.
func (b *Backend) Upload(t *gpu.Tensor, src []float32) error {
	return b.upload("upload", t, gpu.Float32, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

// UploadInt32 implements gpu.Backend.
func (b *Backend) UploadInt32(t *gpu.Tensor, src []int32) error {
	return b.upload("upload", t, gpu.Int32, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

// Download implements gpu.Backend.
func (b *Backend) Download(dst []float32, t *gpu.Tensor) error {
	return b.download("download", t, gpu.Float32, unsafe.Pointer(unsafe.SliceData(dst)), len(dst))
}

// DownloadInt32 implements gpu.Backend.
func (b *Backend) DownloadInt32(dst []int32, t *gpu.Tensor) error {
	return b.download("download", t, gpu.Int32, unsafe.Pointer(unsafe.SliceData(dst)), len(dst))
}
