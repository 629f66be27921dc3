#!/usr/bin/env python3
"""TRL baseline for instructgo's PPO iteration (bench: ppo/<config> iteration).

Times PPO iterations of TRL's PPOTrainer (trl.experimental.ppo, TRL 1.12,
the last release that has it) on randomly initialised GPT-2 models -- a
policy, its frozen reference, a value model and a reward model
(GPT2ForSequenceClassification, one label), as instructgo's PPO has -- on
random prompts, with responses that always run to full length (no stop
token), so every iteration does the same work. One iteration is what TRL
calls an update: generate a response for every episode of the batch (in
batches of --minibatch, temperature 1, TRL's sampling with the scores kept),
score them (reference log-probabilities, values, rewards), then one PPO
epoch over minibatches of --minibatch episodes (policy and value in one
backward). TRL's batch of --episodes is per_device_train_batch_size =
minibatch times gradient_accumulation_steps = episodes / minibatch, split
into as many minibatches; Accelerate then steps the optimizer once per
iteration (instructgo steps once per minibatch: the same products, a few
AdamW passes fewer here). instructgo's iteration also has a
pretraining-mix (ptx) batch per minibatch and the policy's EMA, which TRL
lacks.

It also times the decoding TRL's rollouts rest on: Hugging Face generate
with the KV cache, --minibatch prompts of --prompt tokens, --response new
tokens, temperature 1 (bf16 autocast on a GPU), in generated tokens/s.

Precision: on a GPU TRL's bf16=True (autocast bf16 over float32 weights in
the update's forward and backward; TRL runs the rollout's generation and
scoring forwards on the unwrapped float32 models); float32 on the CPU.

Shapes: --config gpt2 (124M, the GPU shape of the issue: 256 episodes of 64
prompt + 64 response tokens, minibatch 64) or tiny (instructgo's tiny
config: vocab 258, 4 layers, 4 heads, 128 wide), the CPU shape
instructgo bench uses by default (64 episodes of 32 + 32, minibatch 32).

Needs torch, transformers, accelerate, datasets and trl==1.12.0 (the GPU
bundle carries the wheels beyond torch/transformers/accelerate and installs
them offline: gpu/cuda/bundle/trl-venv.sh).

Run: python3 bench/trl/ppo_iteration.py --device cuda --config gpt2 --episodes 256 --minibatch 64 --prompt 64 --response 64 --json
     python3 bench/trl/ppo_iteration.py --device cpu --config tiny --episodes 64 --minibatch 32 --prompt 32 --response 32 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402

CONFIGS = {
    "tiny": dict(vocab_size=258, n_positions=256, n_layer=4, n_head=4, n_embd=128),
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_layer=12, n_head=12, n_embd=768),
}


def make_tokenizer(vocab_size: int):
    """A word-level tokenizer of vocab_size tokens t0 … t{V-1}, the last
    the end-of-sequence and padding token (as GPT-2's <|endoftext|> serves
    both in TRL's examples). The prompts are token ids already: the trainer
    needs a tokenizer only to pad and to know the special ids."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="t0"))
    last = f"t{vocab_size - 1}"
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=last, pad_token=last, unk_token="t0")


def make_models(cfg_kw: dict, seed: int, device):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    torch.manual_seed(seed)
    eos = cfg_kw["vocab_size"] - 1
    lm = GPT2Config(**cfg_kw, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    sc = GPT2Config(**cfg_kw, num_labels=1, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    policy = GPT2LMHeadModel(lm)
    ref = GPT2LMHeadModel(lm)
    ref.load_state_dict(policy.state_dict())
    value = GPT2ForSequenceClassification(sc)
    reward = GPT2ForSequenceClassification(sc)
    for m in (policy, ref, value, reward):
        m.to(device)
    return policy, ref, value, reward


def count_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def time_generate(policy, prompts: torch.Tensor, new: int, pad_id: int, device, reps: int) -> dict:
    """Median seconds of one generate call of prompts with new tokens."""
    amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    mask = torch.ones_like(prompts)

    def once() -> float:
        t0 = time.perf_counter()
        with torch.no_grad(), amp:
            out = policy.generate(input_ids=prompts, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                  top_p=1.0, max_new_tokens=new, min_new_tokens=new, pad_token_id=pad_id)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if out.shape[1] != prompts.shape[1] + new:
            sys.exit(f"generate made {out.shape[1] - prompts.shape[1]} tokens, want {new}")
        return time.perf_counter() - t0

    once()  # warm-up
    ts = [once() for _ in range(reps)]
    med = statistics.median(ts)
    return {"seconds": med, "min_s": min(ts), "max_s": max(ts), "reps": reps,
            "tokens_per_s": prompts.shape[0] * new / med}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--episodes", type=int, default=64, help="episodes per iteration")
    ap.add_argument("--minibatch", type=int, default=32, help="episodes per minibatch (and per generation batch)")
    ap.add_argument("--prompt", type=int, default=32, help="prompt tokens per episode")
    ap.add_argument("--response", type=int, default=32, help="generated tokens per episode")
    ap.add_argument("--iterations", type=int, default=3, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    ap.add_argument("--generate-reps", type=int, default=3, help="timed generate calls")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()
    E, MB, P, G = args.episodes, args.minibatch, args.prompt, args.response
    cfg_kw = CONFIGS[args.config]
    if min(E, MB, P, G, args.iterations) <= 0 or args.warmup < 0 or E % MB or P + G > cfg_kw["n_positions"]:
        ap.error("need positive sizes, episodes a multiple of minibatch, prompt + response within the context")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no GPU")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)

    import datasets
    import transformers
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    tok = make_tokenizer(cfg_kw["vocab_size"])
    policy, ref, value, reward = make_models(cfg_kw, args.seed, device)
    V = cfg_kw["vocab_size"]
    gen = torch.Generator().manual_seed(args.seed)
    n_iter = args.warmup + args.iterations
    # Prompt tokens never the end/pad token, so no prompt position is masked.
    prompts = torch.randint(0, V - 1, (n_iter * E, P), generator=gen)
    dataset = Dataset.from_dict({"input_ids": prompts.tolist()})

    gen_stats = time_generate(policy, prompts[:MB].to(device), G, V - 1, device, args.generate_reps)

    class Clock(TrainerCallback):
        """Time stamps at the start and at the end of every iteration."""

        def __init__(self):
            self.stamps = []

        def _stamp(self):
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())

        def on_train_begin(self, *a, **k):
            self._stamp()

        def on_step_end(self, *a, **k):
            self._stamp()

    clock = Clock()
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = PPOConfig(
            output_dir=out_dir, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
            per_device_train_batch_size=MB, gradient_accumulation_steps=E // MB, num_mini_batches=E // MB,
            local_rollout_forward_batch_size=MB, num_ppo_epochs=1, response_length=G, total_episodes=n_iter * E,
            stop_token=None, missing_eos_penalty=None, num_sample_generations=0, temperature=1.0, kl_coef=0.02,
            learning_rate=1e-5, seed=args.seed, bf16=device.type == "cuda", use_cpu=device.type == "cpu",
            dataloader_num_workers=0,
        )
        trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             train_dataset=dataset, value_model=value, callbacks=[clock])
        t0 = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
    steps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]
    if len(steps) != n_iter:
        sys.exit(f"timed {len(steps)} iterations, expected {n_iter}")
    timed = steps[args.warmup:]
    med = statistics.median(timed)
    result = {
        "config": args.config, "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": args.threads, "episodes": E, "minibatch": MB, "prompt": P, "response": G,
        "precision": "bf16 autocast (update), fp32 rollouts" if device.type == "cuda" else "fp32",
        "params_policy": count_params(policy), "warmup": args.warmup, "iterations": args.iterations,
        "iteration_s_median": med, "iteration_s_min": min(timed), "iteration_s_max": max(timed),
        "iteration_s_all": steps, "train_s": total,
        "episodes_per_s": E / med, "generated_tokens_per_s_in_iteration": E * G / med,
        "generate": gen_stats,
        "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
        "datasets": datasets.__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"TRL PPO {args.config}: {E} episodes of {P}+{G} tokens, minibatch {MB}: median iteration "
              f"{med:.3f} s = {E / med:.1f} episodes/s; generate {gen_stats['tokens_per_s']:.0f} tokens/s")


if __name__ == "__main__":
    main()
