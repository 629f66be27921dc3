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


def main():
    commands = {"lm": (check_lm, 2), "rm": (check_rm, 2), "save-random": (save_random, 1)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) - 2 != commands[sys.argv[1]][1]:
        sys.exit(__doc__)
    fn, _ = commands[sys.argv[1]]
    sys.exit(0 if fn(*sys.argv[2:]) else 1)


if __name__ == "__main__":
    main()
