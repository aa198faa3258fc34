#!/usr/bin/env python
"""Late fusion: average the class probabilities of separately trained single-stream classifiers.

Each member is a saved sequence-classification folder (e.g. the semantic-only `backbone` run, the `phonetic-only`
and `morphological-only` runs of `trainers/run_classification.py`); every member tokenises the texts with its own
saved tokenizer. The ensemble is evaluated on validation and test (no training, no selection on test) and a result
record in the format of `run_classification.py --results_file` is written.

    python trainers/late_fusion.py --model_dirs outputs/sst5/backbone-seed42 outputs/sst5/phonetic-only-seed42 \
        outputs/sst5/morphological-only-seed42 --data_dir sst5 --output_file results/sst5/late-seed42.json --seed 42
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

import msnn_hf  # noqa: F401  (registers the multi-stream Auto classes)
from msnn_hf.data import classification_files, load_classification_splits, validate_classification_splits
from msnn_hf.metrics.sst_metrics.sst_metrics import classification_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import (  # noqa: E402
    NAMED_LABELS,
    cli,
    git_commit,
    portable_paths,
    resolve_data_dir,
    scores_record,
    write_json_atomic,
)


@torch.no_grad()
def predict_probabilities(
    model_dir: str, texts: list[str], max_length: int = 64, batch_size: int = 64, device: str | None = None
) -> np.ndarray:
    """Softmax class probabilities `[N, num_labels]` of the classifier saved in `model_dir`."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()
    collator = DataCollatorWithPadding(tokenizer)
    chunks = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(texts[start : start + batch_size], truncation=True, max_length=max_length)
        batch = collator([{k: encoded[k][i] for k in encoded} for i in range(len(encoded["input_ids"]))])
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(chunks)


def member_record(model_dir: str) -> dict:
    """What a member's own run recorded (variant, streams, seed, metrics), read from its all_results.json."""
    path = Path(model_dir) / "all_results.json"
    record = json.loads(path.read_text()).get("record", {}) if path.is_file() else {}
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return {
        "model_dir": os.path.abspath(model_dir),
        "variant": record.get("variant"),
        "streams": config.get("streams"),
        "seed": record.get("seed"),
        "num_parameters": record.get("num_parameters"),
        "step_time_s": record.get("step_time_s"),
        "validation": (record.get("validation") or {}).get("macro_f1"),
        "test": (record.get("test") or {}).get("macro_f1"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model_dirs", nargs="+", required=True, help="Saved single-stream classifier folders."
    )
    parser.add_argument("--data_dir", default="sst5", help="Data folder, or a name under $MSNN_DATA_DIR.")
    parser.add_argument("--dataset_name", default=None, help="Or a Hub dataset id.")
    parser.add_argument("--text_column", default="text")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--label_names", default="sst5", help="Comma-separated label names or a known set.")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument(
        "--seed", type=int, default=None, help="Recorded only (the members carry their seeds)."
    )
    parser.add_argument("--output_file", required=True, help="Where to write the result JSON.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    started = time.time()
    args = parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    raw = load_classification_splits(dataset_name=args.dataset_name, data_dir=data_dir)
    raw = {split: raw[split] for split in ("validation", "test") if split in raw}
    names = NAMED_LABELS.get(args.label_names, args.label_names.split(",") if args.label_names else None)
    files = {} if args.dataset_name else classification_files(data_dir)
    labels = validate_classification_splits(
        raw, args.text_column, args.label_column, label_names=names, files=files
    )
    members = [member_record(d) for d in args.model_dirs]
    record: dict = {
        "variant": "late",
        "streams": [s for m in members for s in (m["streams"] or [])],
        "seed": args.seed,
        "members": members,
        "labels": labels.names,
        "hyperparameters": {"fusion": "mean of softmax probabilities", "max_seq_length": args.max_seq_length},
        "num_parameters": sum(m["num_parameters"] or 0 for m in members) or None,
        "step_time_s": sum(m["step_time_s"] or 0 for m in members) or None,
    }
    for split, dataset in raw.items():
        if args.max_eval_samples:
            dataset = dataset.select(range(min(args.max_eval_samples, len(dataset))))
        texts = list(dataset[args.text_column])
        gold = np.array([labels.value_to_id[v] for v in dataset[args.label_column]])
        probabilities = [
            predict_probabilities(d, texts, args.max_seq_length, args.batch_size) for d in args.model_dirs
        ]
        for member, probs in zip(members, probabilities):
            member[f"{split}_recomputed"] = classification_scores(probs.argmax(-1), gold, labels.num_labels)[
                "macro_f1"
            ]
        mean = np.mean(probabilities, axis=0)
        scores = classification_scores(mean.argmax(-1), gold, labels.num_labels)
        record[split] = scores_record(scores, labels.id2label)
        print(
            f"late fusion {split:<10} accuracy {scores['accuracy']:.4f}   macro-F1 {scores['macro_f1']:.4f}"
        )
    record.update(
        {
            "wall_time_s": time.time() - started,
            "git_commit": git_commit(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "command": [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)],
        }
    )
    record = portable_paths(record)  # committed: no machine-specific absolute paths
    write_json_atomic(args.output_file, record)
    return record


if __name__ == "__main__":
    raise SystemExit(cli(main, "late_fusion.py"))
