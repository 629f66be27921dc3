#!/bin/sh
# The GPU bundle's entry point (see gpu/cuda/bundle/main.go). On the GPU
# machine, no Go needed:
#
#   ./run.sh [OUTDIR [FLAGS]]   # default: $OUT, else ./gpu-report
#
# FLAGS go to the runner: -timeout (each step, default 4m), -budget (all
# steps, default 8m, to fit one 10-minute command of a 15-minute GPU
# session), -skip-bench. It runs the cuda parity tests, `instructgo
# --device cuda info`, a short pretraining run, a few steps of every
# pipeline stage, then the benchmarks, and writes OUTDIR/report.json (after
# every step) and OUTDIR/logs/. Needs the NVIDIA driver (libcuda.so.1), an Ampere or newer
# GPU, glibc 2.34 or newer, and for the cuBLAS path libcublas.so.12 or .13 on
# the library path (or INSTRUCTGO_CUBLAS=/path/to/libcublas.so.12).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${OUT:-$PWD/gpu-report}}
[ $# -gt 0 ] && shift
exec "$here/bundle-runner" -bundle "$here" -out "$out" "$@"
