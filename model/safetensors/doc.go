// Package safetensors reads and writes checkpoint tensors in the safetensors
// format used by Hugging Face: an 8-byte little-endian header length N, N
// bytes of UTF-8 JSON mapping each tensor name to its dtype, shape and
// data_offsets (relative to the byte buffer that follows the header), an
// optional "__metadata__" object of string values, then the tensor bytes.
//
// The reader is strict. Before any tensor data is used it checks everything
// the reference implementation checks — the header length against a
// MaxHeaderSize bound and the file size, well-formed UTF-8 JSON starting
// with '{', a known dtype for every tensor, shapes whose size matches the
// byte span, offsets inside the data buffer, and tensors that tile the buffer
// exactly (no overlaps, no gaps, no trailing bytes) — and also rejects
// duplicate keys at any level and unknown fields, which encoding/json would
// silently accept. Each failure is an error naming the tensor; malformed
// input never panics. Tensor bytes are read on demand through an
// io.ReaderAt, so opening a 500 MB checkpoint costs only its header.
//
// Metadata is reported for every byte-sized dtype of the format (BOOL, U8,
// I8, U16, I16, U32, I32, U64, I64, F8_E4M3, F8_E5M2, F16, BF16, F32, F64);
// F32, F16, BF16 and F64 tensors can be read as float32. The sub-byte dtypes
// (F4, F6_*) and complex types are rejected as unknown.
//
// The writer stores F32 or BF16 tensors, keys in sorted order, the data
// in the same order, and the header padded with spaces to a multiple of
// 8 bytes as the reference writer does. Write replaces a file atomically.
//
// Host-side tensors in this project are gorgonia.org/tensor values, so
// Dense reads a tensor into a *tensor.Dense (what instructgo inspect
// reduces).
//
// It imports the standard library, gorgonia.org/tensor, gpu (the one bf16
// rounding, gpu.BF16Bits, for BF16 tensors it writes) and
// internal/atomicfile (atomic replacement of the file it writes).
package safetensors
