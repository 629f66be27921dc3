#!/bin/sh
# The GPU bundle's entry point (see gpu/cuda/bundle/main.go). On the GPU
# machine, no Go needed, one command:
#
#   ./run.sh [OUTDIR [FLAGS]]   # default: $OUT, else ./gpu-report
#
# It runs the cuda parity tests, reports which cuBLAS/cuBLASLt the backend
# finds and loads (python3's NVIDIA wheels included), measures the launch
# path, instructgo bench at issue 16's shapes (GEMM, the GPT-2 SFT step at
# B16xT1024, attention hs64/hs128 at T2048, cross-entropy 8192x50257, the
# PPO iteration and its decoding), then the PyTorch and TRL baselines on the
# same machine, then smoke runs of the command line, all within -budget
# (default 8m), and writes OUTDIR/report.json (after every step),
# OUTDIR/summary.txt and OUTDIR/logs.tar.gz.
#
# FLAGS go to the runner: -budget, -timeout (each step, default 4m),
# -python (default python3: the interpreter with torch, transformers and
# accelerate), -tests REGEXP (the parity tests to run), -work DIR,
# -allow-fallback-gemm (measure GEMM and step speeds even without cuBLAS or
# cuBLASLt; also INSTRUCTGO_ALLOW_FALLBACK_GEMM=1), -skip-bench,
# -skip-baselines, -skip-smoke.
#
# Needs the NVIDIA driver (libcuda.so.1), an Ampere or newer GPU and glibc
# 2.34 or newer; cuBLAS and cuBLASLt 12 or 13 from a CUDA toolkit or
# python3's nvidia wheels (or INSTRUCTGO_CUBLAS=/path/to/libcublas.so.N).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${OUT:-$PWD/gpu-report}}
[ $# -gt 0 ] && shift
exec "$here/bundle-runner" -bundle "$here" -out "$out" "$@"
