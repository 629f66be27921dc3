"""Check instructgo checkpoints against Hugging Face transformers, both ways.

An instructgo run directory is meant to load as a Hugging Face GPT-2 model:
an LM checkpoint (pretrain, SFT, PPO) as GPT2LMHeadModel and a reward model
as GPT2ForSequenceClassification, whose score plus config.json's
instructgo_score_bias is instructgo's reward; and a GPT-2 checkpoint that
transformers saved is meant to load in instructgo. The commands compare
with instructgo's own outputs, written beforehand by the Go binary:

  lm MODEL_DIR generate.jsonl
      generate.jsonl is `instructgo generate --model MODEL_DIR --json`
      (greedy); transformers must decode the same tokens from each record's
      prompt_tokens.
  rm MODEL_DIR scores.jsonl
      scores.jsonl is `instructgo rm score --model MODEL_DIR --json` of
      comparison records; transformers must give the same rewards (to
      float32 rounding). Byte tokenizer: ids 0..255 are bytes, 256 ends
      the text.
  save-random DIR
      saves a small GPT2LMHeadModel with GPT-2's vocabulary and random
      weights (large enough that greedy decoding does not just repeat a
      token) with save_pretrained, for instructgo to load.
  save-random-llama DIR ARCH
      saves a random 2-layer llama or qwen2 causal LM with grouped-query
      attention (llama: untied head, llama3 rope scaling, sharded; qwen2:
      q/k/v biases, tied head, bf16 weights), and DIR/reference.json with
      its logits on fixed ids and its greedy tokens, for instructgo's
      TestHFCheckLlama to compare with.
  check-llama DIR
      loads a model instructgo saved (TestHFCheckLlama: an LM or a reward
      model) and compares with the logits or values and greedy tokens
      instructgo wrote to DIR/reference.json.

Each check prints what it compared and exits 1 on a difference.
"""

import json
import sys

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

BYTE_EOS = 256


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_lm(model_dir, gen_path):
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    eos = model.config.eos_token_id
    gens = read_jsonl(gen_path)
    same = 0
    for rec in gens:
        ids, want, got = rec["prompt_tokens"], rec["tokens"], []
        with torch.no_grad():
            for _ in range(len(want) + (1 if rec["stop"] == "eos" else 0)):
                nxt = int(torch.argmax(model(torch.tensor([ids + got])).logits[0, -1]))
                if nxt == eos:
                    break
                got.append(nxt)
        if got == want:
            same += 1
        else:
            print(f"LM differs on {rec['prompt']!r}: instructgo {want}, transformers {got}")
    print(f"LM {model_dir}: {same} of {len(gens)} greedy continuations identical")
    return same == len(gens) and same > 0


def check_rm(model_dir, scores_path):
    model = GPT2ForSequenceClassification.from_pretrained(model_dir).eval()
    with open(f"{model_dir}/config.json") as f:
        bias = json.load(f).get("instructgo_score_bias", 0.0)
    records = read_jsonl(scores_path)
    worst, n, largest = 0.0, 0, 1.0
    for rec in records:
        for resp, reward in zip(rec["responses"], rec["rewards"]):
            ids = list(rec["prompt"].encode()) + list(resp.encode()) + [BYTE_EOS]
            with torch.no_grad():
                score = float(model(torch.tensor([ids])).logits[0, 0]) + bias
            worst = max(worst, abs(score - reward))
            largest = max(largest, abs(reward))
            n += 1
    ok = n > 0 and worst <= 1e-4 * largest
    print(f"RM {model_dir}: {n} rewards, largest difference {worst:.2e} ({'ok' if ok else 'TOO LARGE'})")
    return ok


def save_random(out_dir):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=128, n_embd=64, n_layer=2, n_head=4)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3 if p.dim() > 1 else 0.5)
    model.save_pretrained(out_dir)
    print(f"saved a random GPT-2 ({sum(p.numel() for p in model.parameters())} parameters) to {out_dir}")
    return True


# The fixed ids the Llama checks compare logits on, and the greedy check's
# prompt and length.
LLAMA_IDS = [[5, 77, 3, 250, 18, 120, 9, 64, 200, 33, 1, 98], [140, 2, 2, 61, 257, 7, 190, 45, 12, 80, 150, 6]]
LLAMA_PROMPT, LLAMA_NEW = [17, 4, 230, 99], 16


def greedy(model, prompt, n):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(torch.argmax(model(torch.tensor([ids])).logits[0, -1])))
    return ids[len(prompt):]


def close(name, got, want):
    """Reports max |got - want| against 1e-4 of the largest |want|."""
    got, want = torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64)
    diff, scale = float((got - want).abs().max()), float(want.abs().max())
    ok = got.shape == want.shape and diff <= 1e-4 * max(scale, 1.0)
    print(f"{name}: largest difference {diff:.2e} of largest value {scale:.2f} ({'ok' if ok else 'TOO LARGE'})")
    return ok


def save_random_llama(out_dir, arch):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1 if arch == "llama" else 2)
    common = dict(vocab_size=258, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5)
    if arch == "llama":
        config = LlamaConfig(**common, tie_word_embeddings=False, rope_theta=500.0,
                             rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
        model = LlamaForCausalLM(config)
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True, rope_theta=1000.0))
    else:
        sys.exit(f"unknown arch {arch}")
    model = model.float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3 if p.dim() > 1 else 0.5)
            if arch == "qwen2":  # saved as bf16: compute with the rounded weights
                p.copy_(p.bfloat16().float())
        logits = model(torch.tensor(LLAMA_IDS)).logits
    tokens = greedy(model, LLAMA_PROMPT, LLAMA_NEW)
    if arch == "llama":
        model.save_pretrained(out_dir, max_shard_size="100KB")
    else:
        model.to(torch.bfloat16).save_pretrained(out_dir)
    with open(f"{out_dir}/reference.json", "w") as f:
        json.dump({"ids": LLAMA_IDS, "logits": logits.tolist(), "prompt": LLAMA_PROMPT, "greedy": tokens}, f)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved a random {type(model).__name__} ({n} parameters) to {out_dir}: greedy {tokens}")
    return True


def check_llama(model_dir):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    with open(f"{model_dir}/config.json") as f:
        config = json.load(f)
    with open(f"{model_dir}/reference.json") as f:
        ref = json.load(f)
    ids = torch.tensor(ref["ids"])
    if config["architectures"][0].endswith("ForSequenceClassification"):
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
        bias = config.get("instructgo_score_bias", 0.0)
        values = []
        for row in ref["ids"]:  # one unpadded sequence at a time: read at its last token
            with torch.no_grad():
                values.append(float(model(torch.tensor([row])).logits[0, 0]) + bias)
        return close(f"{type(model).__name__} {model_dir} rewards", values, ref["values"])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ok = close(f"{type(model).__name__} {model_dir} logits", model(ids).logits.tolist(), ref["logits"])
    tokens = greedy(model, ref["prompt"], len(ref["greedy"]))
    same = tokens == ref["greedy"]
    print(f"{type(model).__name__} {model_dir}: greedy tokens {'identical' if same else 'DIFFER'}: {tokens}")
    return ok and same


def main():
    commands = {"lm": (check_lm, 2), "rm": (check_rm, 2), "save-random": (save_random, 1),
                "save-random-llama": (save_random_llama, 2), "check-llama": (check_llama, 1)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) - 2 != commands[sys.argv[1]][1]:
        sys.exit(__doc__)
    fn, _ = commands[sys.argv[1]]
    sys.exit(0 if fn(*sys.argv[2:]) else 1)


if __name__ == "__main__":
    main()
