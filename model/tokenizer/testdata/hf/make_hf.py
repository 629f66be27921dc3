"""Make the tokenizer.json test files and the ids Hugging Face `tokenizers` gives.

Usage:
    python3 make_hf.py --retrain  # train and write the tokenizers, then expected.json
    python3 make_hf.py            # rewrite expected.json for the tokenizers here
    python3 make_hf.py --check    # compare with the committed expected.json
    python3 make_hf.py --bench    # encode speed of tokenizers on the text (tokens/s)

Training is not deterministic across runs, so the tokenizers are written
only with --retrain (or when missing); expected.json always comes from the
files as they are.

It trains two tiny tokenizers on multilingual.txt and writes them in the
layouts the models ship:

  byte-level BPE (GPT-2, Llama 3, Qwen2): one trained vocabulary saved with
    three pre-tokenizers: GPT-2's ByteLevel regex (bl_gpt2.json), Llama 3's
    Split pattern with ignore_merges (bl_llama3.json), Qwen2's pattern after
    an NFC normalizer (bl_qwen2.json);
  SentencePiece-style BPE with byte fallback (Llama 2, Mistral): <unk>, <s>,
    </s>, the 256 <0xNN> tokens, then the trained pieces; saved with Llama 2's
    Prepend/Replace normalizer (sp_llama2.json) and with a Metaspace
    pre-tokenizer, prepend_scheme "first" (sp_metaspace.json).

expected.json holds the splits of random strings by the three
pre-tokenizer patterns, and, for each file, the ids of the whole text encoded with
special-token text kept plain (encode_special_tokens) and with special
tokens matched, and the decoding of each. --check recomputes them with the
installed `tokenizers` and fails on any difference.
"""
import json
import os
import random
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Regex

HERE = os.path.dirname(os.path.abspath(__file__))

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

BL_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
              "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
SP_SPECIAL = ["<unk>", "<s>", "</s>"]
# A non-special added token: matched in text in both encode modes.
PLAIN_ADDED = "<tool>"

# Extra lines appended to the text to encode (not trained on).
EXTRA = "calling <tool> now<|im_end|>\n<s>[INST] hi [/INST]</s>  end"


def training_text(text):
    return text.splitlines() * 3


def byte_level():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=BL_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_text(read_text()), trainer)
    tok.add_tokens([PLAIN_ADDED])
    variants = {"bl_gpt2.json": tok.to_str()}

    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    variants["bl_llama3.json"] = json.dumps(j, ensure_ascii=False)

    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    variants["bl_qwen2.json"] = tok.to_str()
    return variants


def sentencepiece_style():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SP_SPECIAL, limit_alphabet=60,
                                  show_progress=False)
    tok.train_from_iterator(training_text(read_text()), trainer)
    trained = json.loads(tok.to_str())["model"]

    # Llama 2's layout: specials, the 256 byte tokens, then the pieces.
    vocab = {t: i for i, t in enumerate(SP_SPECIAL)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [m if isinstance(m, str) else " ".join(m) for m in trained["merges"]]
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SP_SPECIAL]
    base = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None, "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    tok = Tokenizer.from_str(json.dumps(base))
    tok.add_tokens([PLAIN_ADDED])
    variants = {"sp_llama2.json": tok.to_str()}

    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    j = json.loads(tok.to_str())
    j["decoder"] = {"type": "Sequence", "decoders": [j["decoder"], {"type": "ByteFallback"}, {"type": "Fuse"}]}
    variants["sp_metaspace.json"] = json.dumps(j, ensure_ascii=False)
    return variants


def read_text():
    with open(os.path.join(HERE, "multilingual.txt"), encoding="utf-8", newline="") as f:
        return f.read()


# Short texts at the edges of the pre-tokenizers and decoders: leading
# spaces, space runs, the text's own "▁", added tokens at either end.
EDGES = ["", " ", "  two", " x", "a  b", "\u2581\u2581y", "\n", "\u00a0", "<s>", "hello</s>world",
         "<|im_end|>", "x<tool>", "<tool>", "  <tool>  ", "\t\n  \n"]


def expected(name):
    tok = Tokenizer.from_file(os.path.join(HERE, name))
    text = read_text() + EXTRA
    out = {}
    for mode, plain in (("plain", True), ("special", False)):
        tok.encode_special_tokens = plain
        ids = tok.encode(text, add_special_tokens=False).ids
        out[mode] = {"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)}
    tok.encode_special_tokens = False
    out["edges"] = []
    for s in EDGES:
        ids = tok.encode(s, add_special_tokens=False).ids
        out["edges"].append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return out


# Characters the random pre-tokenizer cases are drawn from: ASCII and
# Unicode whitespace, letters, digits, apostrophes, punctuation, CJK.
PRETOK_ALPHABET = list("  \t\n\r\u00a0\u3000\u2003abcXYZ019'sdtlmv.,!-_(") + ["é", "ß", "中", "日", "ー", "😀", "٣"]
PRETOK_PATTERNS = {"gpt2": GPT2_PATTERN, "llama3": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN}


def pretok_cases():
    """Random strings and how each pattern splits them (Split, Isolated)."""
    rng = random.Random(17)
    inputs = ["".join(rng.choice(PRETOK_ALPHABET) for _ in range(rng.randint(1, 24))) for _ in range(150)]
    out = {}
    for name, pat in PRETOK_PATTERNS.items():
        split = pre_tokenizers.Split(Regex(pat), behavior="isolated", invert=False)
        out[name] = [[s, [p for p, _ in split.pre_tokenize_str(s)]] for s in inputs]
    return out


# Chat templates in the Jinja of the models' tokenizer_config.json files
# (ChatML, Qwen2-Instruct's with its default system message, Llama 3
# Instruct's), rendered for a few conversations.
CHAT_TEMPLATES = {
    "chatml": "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "qwen2": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
             "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
             "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}"
              "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
              "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
}
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hallo, wie geht's?"},
     {"role": "assistant", "content": "  Gut, danke!  \n"}, {"role": "user", "content": "日本語で？ 🤖\n\n  x  "}],
    [{"role": "user", "content": "  code:\n\tfunc f() {}\n"}, {"role": "assistant", "content": "ok"}],
]


def chat_cases():
    """Each template's rendering of each conversation, with and without the
    generation prompt, and its ids under bl_llama3.json (special tokens
    matched)."""
    import jinja2
    env = jinja2.Environment()
    tok = Tokenizer.from_file(os.path.join(HERE, "bl_llama3.json"))
    out = {"templates": CHAT_TEMPLATES, "conversations": CONVERSATIONS, "rendered": {}}
    for name, src in CHAT_TEMPLATES.items():
        tmpl = env.from_string(src)
        for i, conv in enumerate(CONVERSATIONS):
            for gen in (False, True):
                text = tmpl.render(messages=conv, add_generation_prompt=gen, bos_token="<|begin_of_text|>")
                ids = tok.encode(text, add_special_tokens=False).ids
                out["rendered"]["%s/%d/%s" % (name, i, "gen" if gen else "nogen")] = {"text": text, "ids": ids}
    return out


def bench(names):
    """Tokens per second of one encode call at a time, as Go's
    BenchmarkHFEncode measures, special-token text plain."""
    import time
    text = read_text() + EXTRA
    for name in names:
        tok = Tokenizer.from_file(os.path.join(HERE, name))
        tok.encode_special_tokens = True
        n = len(tok.encode(text, add_special_tokens=False).ids)
        reps, start = 2000, time.perf_counter()
        for _ in range(reps):
            tok.encode(text, add_special_tokens=False)
        print("%-18s %.2fM tokens/s" % (name, n * reps / (time.perf_counter() - start) / 1e6))


def normalized_specials():
    """sp_llama2.json with its special tokens marked normalized, as some
    Llama conversions have them: matched in normalized text."""
    with open(os.path.join(HERE, "sp_llama2.json"), encoding="utf-8") as f:
        j = json.load(f)
    for a in j["added_tokens"]:
        a["normalized"] = True
    tok = Tokenizer.from_str(json.dumps(j))
    out = []
    for s in EDGES + [read_text() + EXTRA]:
        ids = tok.encode(s, add_special_tokens=False).ids
        out.append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return out


def start_cases():
    """Encodings with the start token Hugging Face's tokenizer(text) adds
    (add_special_tokens=True): bl_llama3.json with Llama 3's post-processor
    (ByteLevel, then TemplateProcessing "<|begin_of_text|> $A"), and
    sp_llama2.json with the TemplateProcessing "<s> $A" that Llama 2's
    add_bos_token builds; special-token text plain, as Encode keeps it."""
    from tokenizers import processors
    out = {}
    for name, start, byte_level in (("bl_llama3.json", "<|begin_of_text|>", True), ("sp_llama2.json", "<s>", False)):
        tok = Tokenizer.from_file(os.path.join(HERE, name))
        tmpl = processors.TemplateProcessing(single=start + " $A", special_tokens=[(start, tok.token_to_id(start))])
        tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), tmpl]) if byte_level else tmpl
        tok.encode_special_tokens = True
        cases = [{"text": s, "ids": tok.encode(s).ids} for s in EDGES + ["Hello world", read_text()[:200]]]
        out[name] = {"post_processor": json.loads(tok.to_str())["post_processor"], "cases": cases}
    return out


def main():
    if "--bench" in sys.argv[1:]:
        bench(["bl_gpt2.json", "bl_llama3.json", "bl_qwen2.json", "sp_llama2.json", "sp_metaspace.json"])
        return
    check = "--check" in sys.argv[1:]
    names = ["bl_gpt2.json", "bl_llama3.json", "bl_qwen2.json", "sp_llama2.json", "sp_metaspace.json"]
    missing = any(not os.path.exists(os.path.join(HERE, n)) for n in names)
    if not check and ("--retrain" in sys.argv[1:] or missing):
        for name, data in {**byte_level(), **sentencepiece_style()}.items():
            # Re-serialise through the library so the file is what it saves.
            Tokenizer.from_str(data).save(os.path.join(HERE, name), pretty=False)
    got = {"extra": EXTRA, "files": {n: expected(n) for n in names}, "pretok": pretok_cases(),
           "sp_llama2_normalized_specials": normalized_specials(),
           "chat": chat_cases(), "start": start_cases()}
    path = os.path.join(HERE, "expected.json")
    if check:
        with open(path, encoding="utf-8") as f:
            want = json.load(f)
        if got != want:
            for n in names:
                if got["files"][n] != want["files"].get(n):
                    print("differs from expected.json:", n)
            for part in ("pretok", "chat", "sp_llama2_normalized_specials", "start"):
                if got[part] != want.get(part):
                    print("differs from expected.json:", part)
            sys.exit(1)
        print("tokenizers", __import__("tokenizers").__version__, "agrees with expected.json")
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(got, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
