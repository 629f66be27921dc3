#!/usr/bin/env bash
# Runs a command with the cgo environment of the cuda build:
#
#   with-cuda.sh INCLUDE_DIR STUB_DIR COMMAND [ARG...]
#
# INCLUDE_DIR holds the CUDA driver API header cuda.h (12.x or 13.x). For
# 13.x headers the compat directory gpu/cuda/compat/cuda13 goes first on the
# include path (see its cuda.h). STUB_DIR receives a stub libcuda.so.1
# generated from that header (gen-libcuda-stub.sh), regenerated when
# missing or older than the header, and is given to the linker with -L
# only: binaries record DT_NEEDED libcuda.so.1 and load the real driver at
# run time. Nothing here sets a run-time library path.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: with-cuda.sh INCLUDE_DIR STUB_DIR COMMAND [ARG...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
inc=$(cd "$1" 2>/dev/null && pwd) || { echo "with-cuda.sh: no include directory $1 (run third_party/cuda/install.sh, or set CUDA_HOME)" >&2; exit 1; }
stub=$2
shift 2
[[ -f $inc/cuda.h ]] || { echo "with-cuda.sh: no cuda.h in $inc" >&2; exit 1; }
ver=$(sed -nE 's/^#define CUDA_VERSION[[:space:]]+([0-9]+).*/\1/p' "$inc/cuda.h" | head -n1)
incflags="-I$inc"
if [[ ${ver:-0} -ge 13000 ]]; then
	incflags="-I$(cd "$here/../compat/cuda13" && pwd) $incflags"
fi
mkdir -p "$stub"
stub=$(cd "$stub" && pwd)
if [[ ! -f $stub/libcuda.so.1 || $inc/cuda.h -nt $stub/libcuda.so.1 || $here/gen-libcuda-stub.sh -nt $stub/libcuda.so.1 ]]; then
	# shellcheck disable=SC2086
	bash "$here/gen-libcuda-stub.sh" "$stub" $incflags
fi
export CGO_ENABLED=1
export CGO_CFLAGS="-O2 -g $incflags"
export CGO_LDFLAGS="-L$stub"
echo "cuda build: CUDA_VERSION $ver, CGO_CFLAGS=$CGO_CFLAGS, CGO_LDFLAGS=$CGO_LDFLAGS (stub, link time only)" >&2
exec "$@"
