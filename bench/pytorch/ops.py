#!/usr/bin/env python3
"""PyTorch baselines of instructgo's GPU op benchmarks, timed the same way.

Times, on a CUDA GPU in bf16, what `instructgo bench` times as
attention/hs{64,128} T2048 {fwd,bwd} and crossentropy/V50257 N8192, plus a
large bf16 matrix product (PyTorch's cuBLAS rate: the machine's GEMM
ceiling as PyTorch sees it):

- attention: causal F.scaled_dot_product_attention (PyTorch's flash
  kernel) on q, k, v cut from one packed qkv tensor [B, T, 3, H, hs] as a
  GPT block does, B = 16384 / T sequences, C = 768 (H = 768 / hs). The
  forward runs with gradients enabled (so it keeps what the backward needs,
  as instructgo's forward keeps the log-sum-exp); the backward is
  torch.autograd.grad of that output into the packed qkv.
- cross-entropy: F.cross_entropy on bf16 logits [N, V] with random targets,
  forward and backward into the logits (the gradient in bf16, as
  instructgo's), without autocast, which would first copy the logits to
  float32.

Each figure is the median over samples timed with CUDA events after a
warm-up, each sample enough calls to last about 20 ms; inputs are random
normal values, never zeros. Prints one JSON object: per case the median
seconds per call and, where instructgo counts FLOPs, the rate with the same
count (bench/flops.go: AttentionFLOPs, 2·M·N·K).

Run on a GPU machine: python3 bench/pytorch/ops.py [--min-time 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def time_cuda(fn, min_time: float) -> dict:
    """Median seconds per call of fn, by CUDA events, after a warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    # Calls per sample: enough for about 20 ms.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end) / 1e3, 1e-6)
    per = max(1, int(0.02 / one))
    samples = []
    t0 = time.perf_counter()
    while len(samples) < 5 or (time.perf_counter() - t0 < min_time and len(samples) < 200):
        start.record()
        for _ in range(per):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / per)
    return {"seconds": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "samples": len(samples), "calls_per_sample": per}


def attention_flops(B: int, T: int, H: int, hs: int, backward: bool) -> float:
    """FlashAttention's count for causal attention, as bench.AttentionFLOPs."""
    f = 4.0 * B * H * hs * T * T / 2
    return f * 2.5 if backward else f


def attention_cases(min_time: float, dev) -> list[dict]:
    out = []
    T, C = 2048, 768
    B = 16384 // T
    for hs in (64, 128):
        H = C // hs
        qkv = torch.randn(B, T, 3, H, hs, device=dev, dtype=torch.bfloat16, requires_grad=True)

        def sdpa():
            q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # [B, H, T, hs] views
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        fwd = time_cuda(sdpa, min_time)
        y = sdpa()
        dy = torch.randn_like(y)
        bwd = time_cuda(lambda: torch.autograd.grad(y, qkv, dy, retain_graph=True), min_time)
        for name, r, is_bwd in (("fwd", fwd, False), ("bwd", bwd, True)):
            r.update(key=f"attention/hs{hs} T{T} {name}", shape=f"B{B} T{T} C{C} H{H} hs{hs} causal, bf16",
                     tflops=attention_flops(B, T, H, hs, is_bwd) / r["seconds"] / 1e12)
            out.append(r)
        del qkv, y, dy
    return out


def crossentropy_case(min_time: float, dev) -> dict:
    N, V = 8192, 50257
    logits = torch.randn(N, V, device=dev, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.randint(0, V, (N,), device=dev)

    def step():
        loss = F.cross_entropy(logits, targets)
        return torch.autograd.grad(loss, logits)

    r = time_cuda(step, min_time)
    # instructgo's count (bench.CrossEntropyBytes): the logits read once and
    # their gradient written once.
    r.update(key=f"crossentropy/V{V} N{N}", shape=f"{N}×{V} bf16, fwd + bwd",
             gbs=2 * N * V * 2 / r["seconds"] / 1e9)
    return r


def matmul_case(min_time: float, dev) -> dict:
    n = 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    r = time_cuda(lambda: a @ b, min_time)
    r.update(key=f"matmul/square {n}", shape=f"{n}×{n}×{n} bf16", tflops=2.0 * n ** 3 / r["seconds"] / 1e12)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-time", type=float, default=0.5, help="least seconds of samples per case")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("ops.py: torch sees no GPU")
    dev = torch.device("cuda")
    torch.manual_seed(1)
    cases = [matmul_case(args.min_time, dev)] + attention_cases(args.min_time, dev) + [crossentropy_case(args.min_time, dev)]
    print(json.dumps({
        "torch": torch.__version__, "cuda": torch.version.cuda, "device_name": torch.cuda.get_device_name(dev),
        "sdpa_flash": torch.backends.cuda.flash_sdp_enabled(), "cases": cases,
    }))


if __name__ == "__main__":
    main()
