#!/usr/bin/env python3
"""PyTorch baseline for instructgo's training step, on the CPU or a GPU.

Times one full GPT-2 language-model training step -- zero the gradients,
forward, cross-entropy loss, backward, global-norm gradient clipping, AdamW
update, the loss read back -- for the same model, shapes and optimizer
settings as instructgo's SFT step (`instructgo bench`, step/<config> sft;
`go test ./train -bench TrainStep` on the CPU), so the two tokens/s (and
model FLOP/s) figures can be compared directly.

The network mirrors model/ exactly: token + learned position embeddings,
pre-LayerNorm blocks (eps 1e-5) with causal multi-head attention from one
fused c_attn projection (C -> 3C) through F.scaled_dot_product_attention
(its flash kernel on a GPU) and a c_proj projection, an MLP C -> 4C -> C
with tanh-approximated GELU, a final LayerNorm and an LM head tied to the
token embedding; residual and embedding dropout (--dropout; instructgo's SFT
step uses 0.2; attention-probability dropout is not used). AdamW uses betas
(0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices and embeddings only (as
train/optim.go), a fixed lr of 1e-4, and clipping at global norm 1.0.

Precision (--dtype): fp32 everywhere, or bf16 the way instructgo's bf16
mode holds it -- float32 weights, gradients and AdamW state, the forward and
backward under torch.autocast(bfloat16) (bf16 matrix products and attention,
float32 accumulation, LayerNorm and the loss in float32). --compile wraps
the model in torch.compile (the first warm-up steps compile it).

Setup (CPU): bash bench/pytorch/setup.sh
Run:   .venv/bin/python bench/pytorch/train_step.py --config tiny --batch 16 --seq 128 --json
GPU:   python3 bench/pytorch/train_step.py --device cuda --dtype bf16 --config gpt2 --batch 16 --seq 1024 --dropout 0.2 [--compile] --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass

# The benchmark needs no NumPy; keep torch's import-time notice about it quiet.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    n_positions: int
    n_layer: int
    n_head: int
    n_embd: int


# The same named configurations as model/config.go.
CONFIGS = {
    "tiny": GPTConfig(vocab_size=258, n_positions=256, n_layer=4, n_head=4, n_embd=128),
    "gpt2": GPTConfig(vocab_size=50257, n_positions=1024, n_layer=12, n_head=12, n_embd=768),
}

# Parameter counts the Go code reports (model.Config.NumParams); the tied
# LM head is counted once.
GO_PARAMS = {"tiny": 859_136, "gpt2": 124_439_808}


def expected_params(cfg: GPTConfig) -> int:
    """Closed-form parameter count: wte, wpe, per block 12C^2 + 13C, ln_f."""
    C, L = cfg.n_embd, cfg.n_layer
    per_block = (
        2 * C  # ln_1 weight, bias
        + C * 3 * C + 3 * C  # attn.c_attn
        + C * C + C  # attn.c_proj
        + 2 * C  # ln_2
        + C * 4 * C + 4 * C  # mlp.c_fc
        + 4 * C * C + C  # mlp.c_proj
    )
    return cfg.vocab_size * C + cfg.n_positions * C + L * per_block + 2 * C


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, dropout: float):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, C] -> [B, H, T, C/H]
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig, dropout: float):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(cfg, dropout)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.mlp = MLP(cfg, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, dropout: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(Block(cfg, dropout) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2's initialisation, as model.InitGPT2: N(0, 0.02) for weights
        # and embeddings, N(0, 0.02/sqrt(2L)) for the residual projections,
        # zero biases, unit LayerNorm gains. (It does not change the timing.)
        proj_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, proj_std)
            elif p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.startswith("ln") or ".ln_" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        # LM head tied to the token embedding: logits = x · wteᵀ.
        return F.linear(x, self.wte.weight)


def make_optimizer(model: GPT, impl: str) -> tuple[torch.optim.AdamW, str]:
    """AdamW with decay on matrices and embeddings (dim >= 2) only.

    impl "auto" tries the fused kernel (CPU or CUDA) and falls back to foreach.
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": 0.1},
        {"params": plain, "weight_decay": 0.0},
    ]
    kw = dict(lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    order = ["fused", "foreach"] if impl == "auto" else [impl]
    err = None
    for name in order:
        flags = {
            "fused": dict(fused=True),
            "foreach": dict(foreach=True),
            "for-loop": dict(foreach=False),
        }[name]
        try:
            return torch.optim.AdamW(groups, **kw, **flags), name
        except (RuntimeError, ValueError) as e:  # fused unsupported on this build/device
            err = e
    raise SystemExit(f"AdamW implementation {impl!r} unavailable: {err}")


def flops_per_token(cfg: GPTConfig, n_params: int, T: int) -> float:
    """llm.c's training cost per token: 6·N + 6·L·C·T (as model.FLOPsPerToken)."""
    return 6.0 * n_params + 6.0 * cfg.n_layer * cfg.n_embd * T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step (B)")
    ap.add_argument("--seq", type=int, default=128, help="tokens per sequence (T)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="fp32, or bf16 autocast over float32 weights and optimizer state")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--dropout", type=float, default=0.0, help="residual and embedding dropout")
    ap.add_argument("--optim", choices=["auto", "fused", "foreach", "for-loop"], default="auto",
                    help="AdamW implementation (auto: fused if this build has it on the device)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()

    cfg = CONFIGS[args.config]
    B, T = args.batch, args.seq
    if B <= 0 or T <= 0 or T > cfg.n_positions or args.steps <= 0 or args.warmup < 0:
        ap.error(f"need B > 0, 0 < T <= {cfg.n_positions}, steps > 0, warmup >= 0")
    if not 0 <= args.dropout < 1:
        ap.error("need 0 <= dropout < 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no GPU")
    device = torch.device(args.device)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = GPT(cfg, args.dropout).to(device)  # float32 weights
    model.train()

    # parameters() yields the tied wte weight once, like the Go count.
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != expected_params(cfg) or n_params != GO_PARAMS[args.config]:
        sys.exit(f"parameter count {n_params} != expected {expected_params(cfg)} "
                 f"/ Go's {GO_PARAMS[args.config]}")

    opt, opt_impl = make_optimizer(model, args.optim)
    params = list(model.parameters())
    forward = torch.compile(model) if args.compile else model
    autocast = torch.autocast(device_type=args.device, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    # Random tokens over the whole vocabulary; targets are the next tokens.
    gen = torch.Generator().manual_seed(args.seed)
    data = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=gen)
    x, y = data[:, :-1].contiguous().to(device), data[:, 1:].contiguous().to(device)

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = forward(x)
            # Mean cross-entropy over all B·T next-token targets (autocast
            # computes it in float32).
            loss = F.cross_entropy(logits.view(B * T, cfg.vocab_size), y.view(B * T))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lv = loss.item()  # the Go step reads its loss back too (and it waits for the GPU)
        return time.perf_counter() - t0, lv

    where = torch.cuda.get_device_name(device) if args.device == "cuda" else f"{args.threads} threads"
    if not args.json:
        print(f"{args.config}: {n_params} params, B={B} T={T}, {where}, {args.dtype}, "
              f"{'compiled' if args.compile else 'eager'}, torch {torch.__version__}, AdamW {opt_impl}")
    losses = []
    warm_start = time.perf_counter()
    for _ in range(args.warmup):
        losses.append(step()[1])
    warmup_s = time.perf_counter() - warm_start
    times = []
    for i in range(args.steps):
        dt, lv = step()
        times.append(dt)
        losses.append(lv)
        if not args.json:
            print(f"  step {i + 1}/{args.steps}: {dt * 1e3:.1f} ms  loss {lv:.4f}")
    if not all(math.isfinite(v) for v in losses):
        sys.exit(f"non-finite loss: {losses}")

    med = statistics.median(times)
    tokens = B * T
    fpt = flops_per_token(cfg, n_params, T)
    result = {
        "config": args.config,
        "B": B,
        "T": T,
        "threads": args.threads,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if args.device == "cuda" else platform.processor(),
        "dtype": args.dtype,
        "compile": args.compile,
        "dropout": args.dropout,
        "warmup_s": warmup_s,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "optimizer": f"AdamW {opt_impl}",
        "params": n_params,
        "warmup": args.warmup,
        "steps": args.steps,
        "step_s_median": med,
        "step_s_min": min(times),
        "step_s_max": max(times),
        "tokens_per_s": tokens / med,
        "flops_per_token": fpt,
        "gflops_per_s": fpt * tokens / med / 1e9,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "model": asdict(cfg),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"median {med * 1e3:.1f} ms (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}) "
              f"= {tokens / med:,.0f} tokens/s, {result['gflops_per_s']:.2f} GFLOP/s (llm.c count)")


if __name__ == "__main__":
    main()
