#!/usr/bin/env python
"""Roadmap step 4 on Flickr8k and DAQUAR: cross-attention vs integration, several seeds, resumable.

Every run is `trainers/run_captioning.py` in a subprocess with the same decoder budget: the converted ImageNet
EfficientNet-Lite0 frozen (its patch tokens computed once, `vl_prepare.py`), a GPT-2-shaped decoder trained from
scratch over a 2,048-piece BPE of the training captions (no GPT-2 weights are available offline), the same steps,
batch, learning-rate schedule and beam search for every model. Decoder sizes are chosen so that the trainable
parameters of (a)-(c) are equal within 2 % (checked before training; the counts are in every record):

* (a) ``ved``: transformers' `VisionEncoderDecoderModel`, cross-attention to the 49 patch tokens in every block;
* (b) ``li``: MS-VED with Linear Integration at every block (vision stream 96 wide);
* (c) ``dm-token``: MS-VED with Direct Mixing, one α per stream and token (vision stream 128 wide);
* (d) ``blind``: (a) fed all-zero patch tokens, the captions' language prior (no image information);
* (e) ``half-li`` / ``half-dm-token``: (b) / (c) 160 wide, about half of (a)'s parameters ("match with fewer").

DAQUAR (VQA as answer generation: the question is the prompt): ``vqa-ved``, ``vqa-dm-token``, ``vqa-li`` and
``vqa-blind`` on the same decoders. A finished run writes ``results/vl/<run>-seed<k>.json``; a rerun skips it, a killed
run resumes from its last checkpoint (``outputs/vl/runs/<run>-seed<k>/``, not in git). Several runners can share
the grid (lock files, as `sst5.py`).

    python trainers/experiments/vl.py --dry_run
    python trainers/experiments/vl.py                                  # the whole grid
    python trainers/experiments/vl.py --only ved,dm-token --seeds 42
    python trainers/experiments/vl.py --image_ablation                 # the finished runs with all-zero images
    python trainers/experiments/vl_alpha.py                            # α analysis of the DM-token runs
    python trainers/experiments/report_vl.py                           # docs/results_vl.md + figures
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINERS = REPO_ROOT / "trainers"
sys.path.insert(0, str(TRAINERS))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_common import acquire_lock, lock_holder, portable_paths, write_json_atomic  # noqa: E402
from vl_prepare import data_dirs, prepare  # noqa: E402

DEFAULT_SEEDS = (42, 43, 44)
PARAMETER_TOLERANCE = 0.02


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    description: str
    dataset: str = "flickr8k"
    multi_seed: bool = True
    group: str = ""  # the (a)-(e) letter of the issue
    extra: dict = field(default_factory=dict)


LI = ("--integration_type", "li", "--stream_hidden_size", "96", "--stream_intermediate_size", "192")
DM = ("--integration_type", "dm", "--alpha_granularity", "token", "--stream_hidden_size", "128")
HALF = ("--n_embd", "160")

RUNS: dict[str, Run] = {
    "ved": Run(
        ("--architecture", "ved"), "VisionEncoderDecoderModel: cross-attention in every block", group="a"
    ),
    "li": Run(LI, "MS-VED, Linear Integration at every block", group="b"),
    "dm-token": Run(DM, "MS-VED, Direct Mixing with alpha per token at every block", group="c"),
    "blind": Run(
        ("--architecture", "ved", "--blind"),
        "(a) fed all-zero patch tokens: no image",
        group="d",
        multi_seed=False,
    ),
    "dm-token-mix": Run(
        (*DM, "--integration_init", "mix"),
        "(c) without the gate (integration_init='mix'): is the closed start what holds MS-VED back?",
        group="c'",
    ),
    "half-li": Run(LI + HALF, "(b) at 160 wide: about half of (a)'s parameters", group="e"),
    "half-dm-token": Run(DM + HALF, "(c) at 160 wide: about half of (a)'s parameters", group="e"),
    "vqa-ved": Run(("--architecture", "ved"), "DAQUAR, (a)", dataset="daquar", multi_seed=False),
    "vqa-li": Run(LI, "DAQUAR, (b)", dataset="daquar", multi_seed=False),
    "vqa-dm-token": Run(DM, "DAQUAR, (c)", dataset="daquar", multi_seed=False),
    "vqa-blind": Run(
        ("--architecture", "ved", "--blind"),
        "DAQUAR, (d): answers from the question",
        dataset="daquar",
        multi_seed=False,
    ),
}
# (a)-(c) of one seed first, so partial results compare like with like; "half" runs after the comparison they
# depend on (the better of li / dm-token by validation CIDEr-D: report_vl.py says which).
DEFAULT_GRID = ("ved", "dm-token", "li", "blind", "vqa-ved", "vqa-dm-token", "vqa-li", "vqa-blind")
EQUAL_PARAMETERS = ("ved", "li", "dm-token")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=None, help=f"Comma-separated runs (default: {','.join(DEFAULT_GRID)})."
    )
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)))
    parser.add_argument(
        "--data_dir", default=None, help="The folder holding captions-flickr8k/ and vqa-daquar/."
    )
    # Budget (CPU, one core per run): 600 steps of 32 captions = 5 epochs of the 3,810 training captions;
    # DAQUAR 300 steps of 32 QA pairs = 12 epochs of its 796 training pairs.
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--vqa_steps", type=int, default=300)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_beams", type=int, default=3)
    parser.add_argument("--vocab_size", type=int, default=2048)
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "results" / "vl"))
    parser.add_argument("--outputs_dir", default=str(REPO_ROOT / "outputs" / "vl"))
    parser.add_argument("--dry_run", action="store_true")
    parser.add_argument(
        "--image_ablation",
        action="store_true",
        help="Only evaluate the finished runs with all-zero patch tokens (results/vl/zero-image_<run>-seed<k>.json).",
    )
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    names = [n.strip() for n in args.only.split(",")] if args.only else list(DEFAULT_GRID)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"Unknown run(s) {unknown}; known: {list(RUNS)}")
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    order = []
    for index, seed in enumerate(seeds):
        for name in names:
            if RUNS[name].multi_seed or index == 0:
                order.append((name, seed))
    return order


def result_path(args, name: str, seed: int) -> Path:
    return Path(args.results_dir) / f"{name}-seed{seed}.json"


def output_dir(args, name: str, seed: int) -> Path:
    return Path(args.outputs_dir) / "runs" / f"{name}-seed{seed}"


def is_finished(path: Path) -> bool:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return any(k.startswith("test_") for k in record.get("metrics", {}))


def training_command(args, name: str, seed: int, inputs: dict[str, str]) -> list[str]:
    run = RUNS[name]
    flickr, daquar = data_dirs(args.data_dir)
    vqa = run.dataset == "daquar"
    return [
        sys.executable, str(TRAINERS / "run_captioning.py"), *run.args,
        "--dataset", run.dataset, "--data_dir", str(daquar if vqa else flickr),
        "--tokenizer_name", inputs["tokenizer"],
        "--freeze_encoder", "--cache_encoder_features", "--image_features_file", inputs["features"],
        "--n_layer", "4", "--n_head", "4", *(() if "--n_embd" in run.args else ("--n_embd", "256")),
        "--output_dir", str(output_dir(args, name, seed)), "--results_file", str(result_path(args, name, seed)),
        "--seed", str(seed), "--max_steps", str(args.vqa_steps if vqa else args.steps),
        "--warmup_steps", "0.05", "--learning_rate", str(args.learning_rate), "--lr_scheduler_type", "linear",
        "--per_device_train_batch_size", str(args.batch_size), "--per_device_eval_batch_size", "64",
        "--max_target_length", "32", "--generation_max_length", "32" if not vqa else "8",
        "--generation_num_beams", str(args.num_beams),
        "--do_train", "--do_eval", "--predict_with_generate", "--eval_splits", "validation,test",
        "--save_strategy", "steps", "--save_steps", "200", "--save_total_limit", "1",
        "--logging_steps", "50", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
    ]  # fmt: skip


def ablation_path(args, name: str, seed: int) -> Path:
    return Path(args.results_dir) / f"zero-image_{name}-seed{seed}.json"


def ablation_command(args, name: str, seed: int, inputs: dict[str, str]) -> list[str]:
    """The trained model of a run evaluated on its test split with all-zero patch tokens (`--blind`): how much of
    its score comes from the image. Same generation settings as the run."""
    run = RUNS[name]
    flickr, daquar = data_dirs(args.data_dir)
    vqa = run.dataset == "daquar"
    architecture = ("--architecture", "ved") if "ved" in run.args else ()
    return [
        sys.executable, str(TRAINERS / "run_captioning.py"), *architecture,
        "--model_name_or_path", str(output_dir(args, name, seed)),
        "--dataset", run.dataset, "--data_dir", str(daquar if vqa else flickr),
        "--freeze_encoder", "--cache_encoder_features", "--image_features_file", inputs["features"], "--blind",
        "--output_dir", str(Path(args.outputs_dir) / "ablations" / f"{name}-seed{seed}"),
        "--results_file", str(ablation_path(args, name, seed)), "--seed", str(seed),
        "--per_device_eval_batch_size", "64", "--max_target_length", "32",
        "--generation_max_length", "32" if not vqa else "8", "--generation_num_beams", str(args.num_beams),
        "--do_eval", "--predict_with_generate", "--eval_splits", "test", "--report_to", "none",
        "--disable_tqdm", "true",
    ]  # fmt: skip


def run_ablations(args, order, inputs: dict[str, str]) -> list[str]:
    """Zero-image evaluations of the finished runs that lack one (the blind runs need none)."""
    failures = []
    for name, seed in order:
        if "--blind" in RUNS[name].args or not is_finished(result_path(args, name, seed)):
            continue
        path = ablation_path(args, name, seed)
        if path.is_file():
            continue
        cmd = ablation_command(args, name, seed, inputs)
        print(f"zero-image {name} seed {seed}: {shlex.join(cmd)}", flush=True)
        if subprocess.run(cmd, cwd=REPO_ROOT).returncode != 0 or not path.is_file():
            failures.append(f"zero-image_{name}-seed{seed}")
            continue
        record = portable_paths(json.loads(path.read_text()))
        record.update(experiment="vl-zero-image", run=name, seed=seed, reproduce=reproduce_command(args, name, seed)
                      + " --image_ablation")  # fmt: skip
        write_json_atomic(path, record)
    return failures


def reproduce_command(args, name: str, seed: int) -> str:
    parts = ["python trainers/experiments/vl.py", f"--only {name}", f"--seeds {seed}"]
    defaults = parse_args([])
    for option in ("steps", "vqa_steps", "learning_rate", "batch_size", "num_beams", "vocab_size"):
        if getattr(args, option) != getattr(defaults, option):
            parts.append(f"--{option} {getattr(args, option)}")
    return " ".join(parts)


def annotate(path: Path, args, name: str, seed: int) -> None:
    record = portable_paths(json.loads(path.read_text()))  # committed: no machine-specific paths
    run = RUNS[name]
    record.update(
        experiment="vl", run=name, seed=seed, group=run.group, description=run.description,
        reproduce=reproduce_command(args, name, seed),
    )  # fmt: skip
    write_json_atomic(path, record)


def check_parameters(args, inputs: dict[str, str]) -> dict[str, int]:
    """Trainable parameters of every captioning model, built as the runs build them; (a)-(c) must agree within
    `PARAMETER_TOLERANCE` (a decoder-size change that breaks it is caught before hours of training)."""
    import run_captioning as rc
    from lm_utils import count_parameters
    from transformers import HfArgumentParser

    counts = {}
    for name in [n for n in RUNS if RUNS[n].dataset == "flickr8k"]:
        cmd = training_command(args, name, 0, inputs)[2:]
        parser = HfArgumentParser((rc.ModelArguments, rc.DataArguments, rc.Seq2SeqTrainingArguments))
        margs, _, _ = parser.parse_args_into_dataclasses(args=cmd)
        model = rc.build_model(margs, rc.build_processor(margs))
        rc.freeze_encoder(model)
        counts[name] = count_parameters(model)
    base = counts["ved"]
    for name in EQUAL_PARAMETERS:
        if abs(counts[name] / base - 1) > PARAMETER_TOLERANCE:
            raise SystemExit(
                f"{name}: {counts[name]:,} trainable parameters vs ved's {base:,}: not within 2 %"
            )
    return counts


def status_of(args, name: str, seed: int) -> str:
    if is_finished(result_path(args, name, seed)):
        return "done"
    holder = lock_holder(Path(args.outputs_dir) / "runs" / f"{name}-seed{seed}.lock")
    if holder is not None:
        return f"running (runner pid {holder})"
    return "resume" if output_dir(args, name, seed).is_dir() else "todo"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    order = plan(args)
    if args.dry_run:
        for name, seed in order:
            print(f"{name:<16}{seed:>6}  {status_of(args, name, seed)}")
        return 0
    inputs = prepare(Path(args.outputs_dir), args.data_dir, args.vocab_size)
    if args.image_ablation:  # every finished run of the grid (all runs, every seed given), not only --only's
        every = [(n, s) for s in (int(x) for x in str(args.seeds).split(",") if x.strip()) for n in RUNS]
        failures = run_ablations(args, order if args.only else every, inputs)
        print(f"failed: {failures}" if failures else "zero-image evaluations done", flush=True)
        return 1 if failures else 0
    counts_file = Path(args.results_dir) / "parameters.json"
    if not counts_file.is_file():
        counts = check_parameters(args, inputs)
        counts_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(counts_file, {"trainable_parameters": counts, "relative_to_ved": {
            k: round(v / counts["ved"], 4) for k, v in counts.items()}})  # fmt: skip
        print(f"trainable parameters: {counts}", flush=True)
    failures = []
    for index, (name, seed) in enumerate(order, 1):
        label = f"[{index}/{len(order)}] {name} seed {seed}"
        status = status_of(args, name, seed)
        if status == "done" or status.startswith("running"):
            print(f"{label}: {status}, skipped", flush=True)
            continue
        lock = Path(args.outputs_dir) / "runs" / f"{name}-seed{seed}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        if not acquire_lock(lock):
            print(f"{label}: taken by another runner, skipped", flush=True)
            continue
        cmd = training_command(args, name, seed, inputs)
        print(f"{label}: {shlex.join(cmd)}", flush=True)
        started = time.time()
        try:
            returncode = subprocess.run(cmd, cwd=REPO_ROOT).returncode
        finally:
            lock.unlink(missing_ok=True)
        path = result_path(args, name, seed)
        if returncode != 0 or not is_finished(path):
            print(f"{label}: FAILED (exit code {returncode})", flush=True)
            failures.append(f"{name}-seed{seed}")
            continue
        annotate(path, args, name, seed)
        print(f"{label}: done in {time.time() - started:.0f}s -> {path}", flush=True)
    if failures:
        print(f"failed: {failures}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
