"""Load instructgo checkpoints with Hugging Face transformers and compare.

An instructgo run directory is meant to load as a Hugging Face GPT-2 model:
an LM checkpoint (pretrain, SFT, PPO) as GPT2LMHeadModel and a reward model
as GPT2ForSequenceClassification, whose score plus config.json's
instructgo_score_bias is instructgo's reward. This script checks that claim
against instructgo's own outputs, written beforehand by the Go binary:

  generate.jsonl  instructgo generate --model LM --prompts P --json (greedy)
  scores.jsonl    instructgo rm score --model RM --data S --json

It decodes the same prompts greedily with transformers and requires the
same tokens, and scores the same prompt/completion pairs and requires the
same rewards (to float32 rounding). The byte tokenizer is ids 0..255 for
bytes, 256 end of text, 257 padding.

usage: check_hf.py LM_DIR generate.jsonl RM_DIR scores.jsonl
"""

import json
import sys

import torch
from transformers import GPT2ForSequenceClassification, GPT2LMHeadModel

EOS = 256


def encode(text):
    return list(text.encode("utf-8"))


def check_lm(model_dir, generations):
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    same = 0
    for rec in generations:
        ids = encode(rec["prompt"])
        want = rec["tokens"]
        got = []
        with torch.no_grad():
            for _ in range(len(want) + (1 if rec["stop"] == "eos" else 0)):
                logits = model(torch.tensor([ids + got])).logits[0, -1]
                nxt = int(torch.argmax(logits))
                if nxt == EOS:
                    break
                got.append(nxt)
        if got == want:
            same += 1
        else:
            print(f"LM differs on {rec['prompt']!r}: instructgo {want}, transformers {got}")
    print(f"LM {model_dir}: {same} of {len(generations)} greedy continuations identical")
    return same == len(generations)


def check_rm(model_dir, records):
    model = GPT2ForSequenceClassification.from_pretrained(model_dir).eval()
    with open(f"{model_dir}/config.json") as f:
        bias = json.load(f).get("instructgo_score_bias", 0.0)
    worst, n = 0.0, 0
    for rec in records:
        for resp, reward in zip(rec["responses"], rec["rewards"]):
            ids = encode(rec["prompt"]) + encode(resp) + [EOS]
            with torch.no_grad():
                score = float(model(torch.tensor([ids])).logits[0, 0]) + bias
            worst = max(worst, abs(score - reward))
            n += 1
    ok = worst <= 1e-4 * max(1.0, max(abs(r) for rec in records for r in rec["rewards"]))
    print(f"RM {model_dir}: {n} rewards, largest difference {worst:.2e} ({'ok' if ok else 'TOO LARGE'})")
    return ok


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    lm_dir, gen_path, rm_dir, scores_path = sys.argv[1:]
    with open(gen_path) as f:
        gens = [json.loads(line) for line in f if line.strip()]
    with open(scores_path) as f:
        scores = [json.loads(line) for line in f if line.strip()]
    ok = check_lm(lm_dir, gens) & check_rm(rm_dir, scores)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
